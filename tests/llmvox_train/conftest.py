"""A tiny reference-format TTS dataset and a fitted embedded codec, made once per test session.

Sixteen 0.5 s harmonic tones (random f0, 24 kHz) with two-letter "words" as their text, and a
512-entry WorldCodec (48-d features) fitted on them in a few seconds: the real codec path, small
enough that the trainer runs in seconds. Model width = 16 (text table) + 48 (codec) = 64.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from vxlib import audio

SR = 24000
N_UTTERANCES = 16
TEXT_DIM = 16
FEATURE_DIM = 48


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> dict:
    """{"dataset": JSON path, "codec_dir": fitted WorldCodec dir, "root": folder}."""
    from vxlib.codec.world_codec import WorldCodec, WorldCodecConfig

    root = tmp_path_factory.mktemp("llmvox_corpus")
    rng = np.random.default_rng(0)
    letters = "abcdefghij"
    rows, wavs = [], []
    t = np.arange(int(0.5 * SR)) / SR
    for i in range(N_UTTERANCES):
        f0 = rng.uniform(90, 250)
        wav = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 20))
        wav = (0.1 * wav * np.minimum(1, np.minimum(t, 0.5 - t) / 0.02) + 0.005 * rng.standard_normal(t.size)).astype(np.float32)
        audio.save(root / "wavs" / f"utt{i:02d}.wav", wav, SR)
        wavs.append(wav)
        text = " ".join("".join(rng.choice(list(letters), 2)) for _ in range(2))
        rows.append({"speech_folder": "wavs", "speech_file": f"utt{i:02d}.wav", "answer_text": text, "id": f"utt{i:02d}"})
    (root / "dataset.json").write_text(json.dumps(rows, indent=1))
    cfg = WorldCodecConfig(codebook_size=512, feature_dim=FEATURE_DIM, kmeans_iters=3)
    WorldCodec.fit(wavs, cfg).save(root / "codec")
    return {"dataset": root / "dataset.json", "codec_dir": root / "codec", "root": root}


@pytest.fixture
def tiny_config(tiny_corpus, tmp_path):
    """A TrainConfig for a 1-layer, 64-wide GPT on the tiny corpus, writing under tmp_path."""
    from vxlib.llmvox.train import TrainConfig

    return TrainConfig(
        dataset=str(tiny_corpus["dataset"]), val_fraction=0.25, codec={"type": "world", "dir": str(tiny_corpus["codec_dir"])},
        cache_dir=str(tiny_corpus["root"] / "token_cache"), text_embedding="default", text_embedding_dim=TEXT_DIM,
        n_layer=1, n_head=2, n_embd=TEXT_DIM + FEATURE_DIM, block_size=64, learning_rate=3e-3, min_lr=3e-4,
        warmup_iters=2, lr_decay_iters=40, max_iters=40, batch_size=4, gradient_accumulation_steps=2,
        out_dir=str(tmp_path / "run"), eval_interval=20, log_interval=1, checkpoint_interval=1000,
        tracking="none", device="cpu", dtype="float32", compile=False, seed=0,
    )
