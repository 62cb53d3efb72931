"""Fixtures for the LLVC trainer tests: a small synthetic paired dataset and a test-sized config.

The "teacher" of the synthetic pairs is a fixed linear filter and gain, which a generator can
learn; the tests check mechanics (orientation, checkpoints, resumption, DDP), not voice quality.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from vxlib import audio

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "experiments" / "llvc_tiny" / "config.json"
SR = 16000


def harmonic_utterance(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A voiced-speech-like signal: gliding f0 with 1/k harmonics, amplitude-modulated syllables."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    x += 0.01 * rng.standard_normal(n)
    return (0.4 * x / np.abs(x).max()).astype(np.float32)


def teacher(x: np.ndarray) -> np.ndarray:
    return (0.8 * lfilter([0.5, 0.3, 0.2], [1.0, -0.3], x)).astype(np.float32)


def write_pairs(root: Path, counts: dict[str, list[float]], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, durations in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i, seconds in enumerate(durations):
            x = harmonic_utterance(rng, seconds)
            audio.save(root / split / f"utt{i:03d}_original.wav", x, SR, subtype="FLOAT")
            audio.save(root / split / f"utt{i:03d}_converted.wav", teacher(x), SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    return write_pairs(root, {"train": [0.6, 0.4, 0.5, 0.7, 0.3, 0.45, 0.55, 0.65],
                              "val": [0.4, 0.3], "dev": [0.35, 0.5, 0.25]})


def small_config() -> dict:
    """The llvc_tiny config shrunk further so a step takes ~0.1-0.3 s on one shared core."""
    c = json.loads(TINY_CONFIG.read_text())
    c = copy.deepcopy(c)
    c["data"]["wav_len"] = 4096
    c["segment_size"] = 2048
    c["batch_size"] = 2
    c["eval_batch_size"] = 2
    c["model_params"].update(enc_dim=16, dec_dim=8, num_enc_layers=2)
    cc = c["model_params"]["convnet_config"]
    for k in ("out_channels", "kernel_sizes", "dilations"):
        cc[k] = cc[k][:3]
    c["discriminator_width_divisor"] = 16
    c["periods"] = [2, 3]
    c["log_interval"] = 1
    c["checkpoint_interval"] = 1000
    c["aux_fairseq"]["checkpoint_path"] = "/nonexistent/hubert_base_ls960.pt"
    c["test_dir"] = None
    return c


@pytest.fixture
def config() -> dict:
    return small_config()


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core machine two threads per process mostly wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
