import numpy as np
import pytest

from vxlib.audio import AudioError, resample
from vxlib.eval.mos import WVMOSUnavailable, dnsmos, wvmos


def test_dnsmos_ranks_clean_above_noisy_and_resamples_explicitly(speech, rng):
    wav, sr = speech  # 22.05 kHz
    clean = dnsmos(wav, sr)
    assert set(clean) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in clean.values())
    # another rate goes through vxlib.audio.resample: same numbers as resampling first
    assert dnsmos(resample(wav, sr, 16000), 16000) == pytest.approx(clean, abs=1e-6)
    noisy = dnsmos(np.clip(wav + rng.normal(0, 0.05, wav.shape), -1, 1).astype(np.float32), sr)
    assert noisy["dnsmos_bak"] < clean["dnsmos_bak"] - 1.0  # background-noise score collapses
    assert noisy["dnsmos_ovrl"] < clean["dnsmos_ovrl"]


def test_mos_input_errors(speech):
    wav, sr = speech
    with pytest.raises(AudioError, match="loud.wav.*full scale"):
        dnsmos(wav * 10, sr, name="loud.wav")
    with pytest.raises(AudioError, match="silence"):
        dnsmos(np.zeros(16000, np.float32), 16000)


def test_wvmos_without_weights_says_what_is_missing(tmp_path, speech):
    with pytest.raises(WVMOSUnavailable, match="missing.ckpt.*evaluation environment"):
        wvmos(*speech, checkpoint=tmp_path / "missing.ckpt")
