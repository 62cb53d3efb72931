"""vxlib.pitch: RVC's quantisation and shift against the reference table, and the extractors."""

from __future__ import annotations

import numpy as np
import pytest

from vxlib import pitch


@pytest.fixture(scope="module")
def rvc_dir(golden_dir):
    return golden_dir / "rvc"


def test_coarse_table_matches_reference(rvc_dir):
    f0 = np.load(rvc_dir / "in_f0_table_hz.npy")
    for key in ("+0", "+12", "-5"):
        shifted = pitch.transpose_f0(f0, int(key))
        if key != "+0":
            np.testing.assert_allclose(shifted, np.load(rvc_dir / f"out_f0_table_hz_key{key}.npy"), rtol=1e-12, atol=0)
        coarse = pitch.coarse_pitch(shifted)
        assert coarse.dtype == np.int64
        np.testing.assert_array_equal(coarse, np.load(rvc_dir / f"out_f0_table_coarse_key{key}.npy"))


def test_coarse_range_and_unvoiced():
    coarse = pitch.coarse_pitch(np.array([0.0, 1.0, 49.0, 50.0, 1100.0, 5000.0]))
    assert coarse.tolist()[0] == 1 and coarse.tolist()[1] == 1  # unvoiced and below floor -> 1
    assert coarse[3] == 1 and coarse[4] == 255 and coarse[5] == 255
    assert np.all(np.diff(pitch.coarse_pitch(np.linspace(50, 1100, 500))) >= 0)


def test_transpose_doubles_at_plus_12():
    f0 = np.array([0.0, 100.0, 220.0])
    np.testing.assert_allclose(pitch.transpose_f0(f0, 12), [0.0, 200.0, 440.0])


def test_f0_relative_reference_example(golden_dir):
    import json

    ex = json.loads((golden_dir / "rvc" / "golden.json").read_text())["f0_relative_example"]
    out = pitch.transpose_f0(np.array(ex["in"], dtype=float), ex["f0_up_key"], pitch.F0_RELATIVE_REFERENCE_HZ)
    np.testing.assert_allclose(out, ex["out_hz"], rtol=1e-12)
    assert pitch.coarse_pitch(out).tolist() == ex["out_coarse"]
    with pytest.raises(ValueError, match="unvoiced"):
        pitch.transpose_f0(np.zeros(4), 12, pitch.F0_RELATIVE_REFERENCE_HZ)


def _tone(f0_hz: float, seconds: float = 0.6, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    # a few harmonics so every estimator sees a speech-like periodic signal
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0_hz * t) for k in (1, 2, 3)).astype(np.float64)


@pytest.mark.parametrize("method", ["dio", "harvest", pytest.param("crepe", marks=pytest.mark.slow), "crepe-tiny"])
def test_extractors_track_a_tone(method):
    x = _tone(180.0)
    # the pipeline's crepe is "full" (slow on CPU); "tiny" runs the same post-processing quickly
    f0 = pitch.crepe_f0(x, model="tiny") if method == "crepe-tiny" else pitch.extract_f0(x, method)
    assert f0.dtype == np.float64
    assert abs(len(f0) - len(x) // pitch.HOP) <= 1  # 100 frames/s
    voiced = f0[10:-10]
    assert (voiced > 0).all()
    np.testing.assert_allclose(np.median(voiced), 180.0, rtol=0.02)


def test_extractor_silence_is_unvoiced():
    f0 = pitch.extract_f0(np.zeros(8000), "dio")
    assert (f0 == 0).all()


def test_rmvpe_and_bad_input_fail_clearly(tmp_path):
    # the method itself is tested in test_rmvpe.py; here: what goes wrong without its weights
    with pytest.raises(ValueError, match=r"'rmvpe' needs .*rmvpe\.pt \(assets/rmvpe/rmvpe\.pt.*--rmvpe_path"):
        pitch.extract_f0(np.zeros(1600), "rmvpe")
    with pytest.raises(FileNotFoundError, match=r"rmvpe\.pt: RMVPE weights not found"):
        pitch.extract_f0(np.zeros(1600), "rmvpe", rmvpe_path=tmp_path / "rmvpe.pt")
    with pytest.raises(ValueError, match="unknown f0 method 'pm'"):
        pitch.extract_f0(np.zeros(1600), "pm")
    with pytest.raises(ValueError, match="1-D"):
        pitch.extract_f0(np.zeros((2, 1600)), "dio")
