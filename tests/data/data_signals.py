"""Synthetic speech-like test signals for the data tests (no TTS needed, fast, exactly known f0)."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def vowel(
    sr: int = 16000,
    seconds: float = 0.6,
    f0: float = 120.0,
    formants: tuple[float, ...] = (600.0, 1200.0, 2500.0),
    vibrato: float = 0.03,
    lead: float = 0.0,
    tail: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """A glottal-pulse train at ``f0`` (with a slow +-``vibrato`` relative wobble, so log-f0 has a
    spread) through second-order formant resonators, with ``lead``/``tail`` seconds of near-silence."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    inst_f0 = f0 * (1 + vibrato * np.sin(2 * np.pi * 3.0 * t))  # (n,)
    phase = np.cumsum(inst_f0 / sr)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    x = pulses
    for fc in formants:  # resonator: pole pair at fc with 80 Hz bandwidth
        r = np.exp(-np.pi * 80.0 / sr)
        x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], x)
    x *= np.hanning(n) ** 0.25
    x = 0.5 * x / np.abs(x).max()
    rng = np.random.default_rng(seed)
    pad = lambda s: 1e-4 * rng.standard_normal(int(s * sr))  # noqa: E731
    return np.concatenate([pad(lead), x, pad(tail)]).astype(np.float32)
