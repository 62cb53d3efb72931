"""Tiny stacks for the streaming tests: a 1-layer random GPT over (a) the reduced golden
WavTokenizer (fast decode) and (b) a small WorldCodec fitted on a synthetic voiced signal (the
embedded codec)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vxlib.codec.wavtokenizer import WavTokenizer
from vxlib.codec.world_codec import WorldCodec, WorldCodecConfig
from vxlib.llmvox.model import GPTConfig
from vxlib.llmvox.stream import TTSStack

REDUCED = dict(encoder_dim=32, encoder_filters=8)  # hard-coded sizes of the reduced golden model


def voiced_signal(seconds: float = 2.0, sr: int = 24000, seed: int = 0) -> np.ndarray:
    """A harmonic tone whose pitch wobbles (100-160 Hz) with a little noise: speech-like for WORLD."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 130 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 30)) + 0.01 * rng.standard_normal(t.size)
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def golden_codec(golden_dir) -> WavTokenizer:
    d = golden_dir / "wavtokenizer"
    return WavTokenizer.from_pretrained(d / "wavtokenizer_reduced.yaml", d / "wavtokenizer_reduced.ckpt", **REDUCED)


@pytest.fixture(scope="session")
def world_codec() -> WorldCodec:
    cfg = WorldCodecConfig(codebook_size=32, feature_dim=64, kmeans_iters=5, kmeans_seed_frames=200)
    return WorldCodec.fit([voiced_signal()], cfg)


def tiny_stack(codec, seed: int = 0) -> TTSStack:
    config = GPTConfig(n_layer=1, n_head=2, n_embd=32 + codec.feature_dim, vocab_size=codec.codebook_size, block_size=1024)
    return TTSStack.random_demo(codec, config, seed=seed)


@pytest.fixture(scope="session")
def golden_stack(golden_codec) -> TTSStack:
    return tiny_stack(golden_codec)


@pytest.fixture(scope="session")
def world_stack(world_codec) -> TTSStack:
    return tiny_stack(world_codec)


def stream_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("llmvox-stream")]
