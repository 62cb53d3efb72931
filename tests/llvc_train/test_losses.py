"""Loss values on constructed inputs, against hand computations."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from vxlib.llvc.losses import (MelSTFTLoss, MultiResolutionMelLoss, discriminator_loss, feature_matching_loss,
                               generator_adversarial_loss)

CONFIG = {"data": {"sr": 16000}, "aux_mel": {"type": "multires", "c": 10, "params": {
    "num_mels": 80, "hop_size": [120, 240, 50], "win_size": [600, 1200, 240], "n_fft": [1024, 2048, 512],
    "fmin": 0.0, "fmax": None}}}


def test_discriminator_loss_lsgan_values():
    real = [torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 0.0]])]
    fake = [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, -1.0]])]
    total, real_terms, fake_terms = discriminator_loss(real, fake)
    # disc 0: perfect (0 + 0); disc 1: real mean((0.5^2, 1^2)) = 0.625, fake mean(1, 1) = 1
    assert [float(t) for t in real_terms] == pytest.approx([0.0, 0.625])
    assert [float(t) for t in fake_terms] == pytest.approx([0.0, 1.0])
    assert float(total) == pytest.approx(1.625)


def test_discriminator_loss_is_zero_only_for_real_one_fake_zero():
    ones, zeros = [torch.ones(2, 5)], [torch.zeros(2, 5)]
    assert float(discriminator_loss(ones, zeros)[0]) == 0.0
    assert float(discriminator_loss(zeros, ones)[0]) == pytest.approx(2.0)  # swapped roles: maximal


def test_generator_adversarial_loss_values():
    total, terms = generator_adversarial_loss([torch.full((2, 3), 0.5), torch.ones(1, 4), torch.tensor([[-1.0]])])
    assert [float(t) for t in terms] == pytest.approx([0.25, 0.0, 4.0])
    assert float(total) == pytest.approx(4.25)


def test_feature_matching_loss_values_and_real_side_detached():
    real = [[torch.zeros(1, 2, 3, requires_grad=True), torch.ones(1, 4, requires_grad=True)]]
    fake = [[torch.full((1, 2, 3), 0.5, requires_grad=True), torch.full((1, 4), 3.0, requires_grad=True)]]
    loss = feature_matching_loss(real, fake)
    assert float(loss.detach()) == pytest.approx(0.5 + 2.0)
    loss.backward()
    assert real[0][0].grad is None and real[0][1].grad is None
    assert torch.allclose(fake[0][0].grad, torch.full((1, 2, 3), 1 / 6))


def _speechlike(seconds=0.5, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 25)) + 0.05 * rng.standard_normal(t.size)
    return torch.tensor(0.3 * x / np.abs(x).max(), dtype=torch.float32)[None, None]


def test_mel_loss_zero_for_identical_and_log2_plus_one_for_doubled():
    loss = MultiResolutionMelLoss.from_config(CONFIG)
    y = _speechlike()
    assert float(loss(y, y)) == pytest.approx(0.0, abs=1e-7)
    # |STFT(2y)| = 2|STFT(y)| wherever the power exceeds the 1e-8 floor: spectral convergence 1,
    # log distance ln 2, for every resolution and so for their mean
    assert float(loss(2 * y, y)) == pytest.approx(1 + math.log(2), abs=1e-3)


def test_mel_stft_loss_matches_a_numpy_librosa_computation():
    sr, n_fft, hop, win = 16000, 1024, 120, 600
    y, x = _speechlike(seed=1), 0.7 * _speechlike(seed=2) + 0.2 * _speechlike(seed=1)
    got = float(MelSTFTLoss(sr, n_fft, hop, win, 80)(x, y))

    def mel_mag(a):
        spec = librosa.stft(a[0, 0].double().numpy(), n_fft=n_fft, hop_length=hop, win_length=win, window="hann",
                            center=True, pad_mode="reflect")
        mag = np.sqrt(np.maximum(np.abs(spec) ** 2, 1e-8))
        return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=80) @ mag

    mx, my = mel_mag(x), mel_mag(y)
    expected = np.linalg.norm(my - mx) / np.linalg.norm(my) + np.mean(np.abs(np.log(mx) - np.log(my)))
    assert got == pytest.approx(expected, rel=1e-4)


def test_mel_loss_rejects_bad_settings_and_too_short_audio():
    with pytest.raises(ValueError, match="same length"):
        MultiResolutionMelLoss(16000, [1024, 512], [120], [600, 240])
    with pytest.raises(ValueError, match="needs more than 1024 samples"):
        MultiResolutionMelLoss.from_config(CONFIG)(torch.zeros(1, 1, 800), torch.zeros(1, 1, 800))
    with pytest.raises(NotImplementedError, match="multires"):
        MultiResolutionMelLoss.from_config({**CONFIG, "aux_mel": {**CONFIG["aux_mel"], "type": "rvc"}})
