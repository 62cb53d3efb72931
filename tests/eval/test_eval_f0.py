import numpy as np
import pytest

from vxlib.audio import AudioError
from vxlib.eval.f0 import extract_f0, f0_metrics, f0_metrics_from_tracks

SR = 16000
T = np.arange(2 * SR) / SR


def tone(f_hz: np.ndarray | float, harmonics: int = 1) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(f_hz, T.shape)) / SR
    return (0.5 * sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))).astype(np.float32)


def test_sine_f0_with_dio():
    f0 = extract_f0(tone(220.0), SR, method="dio")
    inner = f0[5:-5]  # edges: the analysis window hangs over the signal ends
    assert (inner > 0).all()
    assert np.abs(inner - 220.0).max() < 1.0


def test_harmonic_tone_f0_with_harvest():
    f0 = extract_f0(tone(220.0, harmonics=8), SR, method="harvest")
    assert np.abs(f0[5:-5] - 220.0).max() < 1.0


def test_glide_shifted_by_100_cents():
    glide = 150.0 * 2.0 ** (T / T[-1])  # 150 -> 300 Hz
    m = f0_metrics(tone(glide * 2 ** (100 / 1200), 8), tone(glide, 8), SR)
    assert m["f0_rmse_cents"] == pytest.approx(100.0, abs=5.0)
    assert m["f0_corr"] > 0.99
    assert m["vde"] < 0.03
    assert m["f0_rmse_hz"] == pytest.approx(np.mean(glide) * (2 ** (1 / 12) - 1), rel=0.15)


def test_voicing_error_when_half_is_silent():
    ref = tone(200.0, 8)
    half = ref.copy()
    half[SR:] = 0.0
    assert f0_metrics(half, ref, SR)["vde"] == pytest.approx(0.5, abs=0.05)


def test_metrics_from_known_tracks():
    ref = np.array([0, 100, 200, 400, 0, 0], float)
    hyp = np.array([0, 100, 400, 400, 0, 150], float)  # one octave error, one false voicing
    m = f0_metrics_from_tracks(hyp, ref)
    assert m["vde"] == pytest.approx(1 / 6)
    assert m["f0_voiced_frames"] == 3
    assert m["f0_rmse_hz"] == pytest.approx(np.sqrt(200.0**2 / 3))
    assert m["f0_rmse_cents"] == pytest.approx(np.sqrt(1200.0**2 / 3))


def test_misaligned_pair_is_refused():
    with pytest.raises(AudioError, match="differ by 100 ms"):
        f0_metrics(tone(200.0)[: -SR // 10], tone(200.0), SR)
