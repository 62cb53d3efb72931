import numpy as np
import pytest

from vxlib.eval.spectral import (MCD_CONSTANT, MCEP_ALPHA, mcd_from_mel_cepstra, mel_cepstral_distortion,
                                 mel_cepstrum_from_envelope)


def envelope_from_mel_cepstra(mcep: np.ndarray, bins: int = 513, alpha: float = MCEP_ALPHA) -> np.ndarray:
    """Power envelope defined by mel-cepstra: log|H(w)| = sum_m c_m cos(m beta(w)) (SPTK definition)."""
    w = np.linspace(0.0, np.pi, bins)
    beta = w + 2.0 * np.arctan(alpha * np.sin(w) / (1.0 - alpha * np.cos(w)))
    log_amplitude = np.cos(beta[:, None] * np.arange(mcep.shape[1])[None]) @ mcep.T  # (bins, frames)
    return np.exp(2.0 * log_amplitude.T)


def test_mel_cepstrum_recovers_known_coefficients(rng):
    mcep = rng.normal(0.0, 0.3, (6, 25)) / (1 + np.arange(25)) ** 0.5  # decaying, like speech
    mcep[:, 0] = -3.0
    assert np.abs(mel_cepstrum_from_envelope(envelope_from_mel_cepstra(mcep)) - mcep).max() < 5e-3


def test_mcd_constant_and_c0_exclusion(rng):
    a = rng.normal(size=(50, 25))
    assert MCD_CONSTANT == pytest.approx(6.1418, abs=1e-4)  # 10 sqrt(2) / ln 10
    b = a.copy()
    b[:, 0] += 5.0  # energy only: excluded
    assert mcd_from_mel_cepstra(b, a) == 0.0
    b[:, 3] += 0.1  # one coefficient off by 0.1 in every frame
    assert mcd_from_mel_cepstra(b, a) == pytest.approx(0.1 * MCD_CONSTANT)
    assert mcd_from_mel_cepstra(b, a, align=False) == pytest.approx(0.1 * MCD_CONSTANT)


def test_dtw_absorbs_a_time_stretch(rng):
    a = np.cumsum(rng.normal(size=(40, 25)), axis=0)  # smooth trajectories
    stretched = np.repeat(a, 2, axis=0)  # same content, twice as slow
    assert mcd_from_mel_cepstra(stretched, a) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="equal frame counts"):
        mcd_from_mel_cepstra(stretched, a, align=False)


def test_mcd_on_speech(speech, rng):
    wav, sr = speech
    assert mel_cepstral_distortion(wav, wav, sr) == 0.0
    light = wav + rng.normal(0, 0.002, wav.shape).astype(np.float32)
    heavy = wav + rng.normal(0, 0.02, wav.shape).astype(np.float32)
    mcd_light, mcd_heavy = mel_cepstral_distortion(light, wav, sr), mel_cepstral_distortion(heavy, wav, sr)
    assert 0.0 < mcd_light < mcd_heavy
