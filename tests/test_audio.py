"""vxlib.audio: formats, the bad-input matrix, resampling accuracy, block reads and saving."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile as sf

from vxlib import audio
from vxlib.audio import AudioError, ClippingWarning

SR = 16000


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_freq_and_level(x: np.ndarray, sr: int) -> tuple[float, float]:
    """Frequency of the spectral peak (parabolic interpolation) and RMS level in dB."""
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    frac = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + frac) * sr / len(x), 20 * np.log10(np.sqrt(np.mean(x**2)))


# ---------------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("subtype,tol", [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6),
                                         ("PCM_32", 1e-8), ("FLOAT", 0.0)])
def test_wav_subtypes_load_as_float(tmp_path, subtype, tol):
    x = sine(440, SR, 0.5)
    p = tmp_path / f"{subtype}.wav"
    sf.write(p, x, SR, subtype=subtype)
    y, sr = audio.load(p)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - x)) <= tol + 1e-7


@pytest.mark.parametrize("ext,fmt,subtype,tol", [(".flac", "FLAC", "PCM_16", 1e-4), (".ogg", "OGG", "VORBIS", 0.05)])
def test_flac_and_ogg(tmp_path, ext, fmt, subtype, tol):
    x = sine(440, SR, 1.0)
    p = tmp_path / f"a{ext}"
    sf.write(p, x, SR, format=fmt, subtype=subtype)
    y, sr = audio.load(p)
    assert sr == SR and len(y) == len(x)
    assert np.sqrt(np.mean((y - x) ** 2)) < tol


def test_stereo_is_mixed_down_or_kept(tmp_path):
    left, right = sine(440, SR, 0.2, 0.4), sine(660, SR, 0.2, 0.2)
    p = tmp_path / "stereo.wav"
    sf.write(p, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    mono, _ = audio.load(p)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    both, _ = audio.load(p, mono=False)
    assert both.shape == (2, len(left))
    np.testing.assert_allclose(both[1], right, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# bad input: each case gets a clear error naming the file and the problem
# ---------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    p = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        audio.load(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
        audio.load(p)


def test_wav_without_samples(tmp_path):
    p = tmp_path / "nosamples.wav"
    sf.write(p, np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError, match=r"nosamples\.wav: contains no audio samples"):
        audio.load(p)


def test_unreadable_file(tmp_path):
    p = tmp_path / "garbage.wav"
    p.write_bytes(b"this is not a RIFF file at all" * 10)
    with pytest.raises(AudioError, match=r"garbage\.wav: unreadable or corrupt"):
        audio.load(p)


def test_truncated_wav(tmp_path):
    p = tmp_path / "cut.wav"
    sf.write(p, sine(440, SR, 1.0), SR, subtype="PCM_16")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated WAV file: the data chunk declares 32000 bytes"):
        audio.load(p)


def test_nan_and_inf(tmp_path):
    x = sine(440, SR, 0.1)
    x[10], x[20] = np.nan, np.inf
    p = tmp_path / "nan.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains 2 NaN/inf values \(first at sample 10\)"):
        audio.load(p)


def test_unsupported_format(tmp_path):
    p = tmp_path / "speech.xyz"
    p.write_bytes(b"\x00\x01" * 100)
    with pytest.raises(AudioError, match=r"speech\.xyz: unsupported format '\.xyz'"):
        audio.load(p)


def test_clipping_warns(tmp_path):
    x = sine(440, SR, 0.2, amp=1.5)
    p = tmp_path / "hot.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    with pytest.warns(ClippingWarning, match=r"hot\.wav: .* exceed full scale"):
        audio.load(p)
    q = tmp_path / "flat.wav"
    sf.write(q, np.clip(x, -1, 1), SR, subtype="PCM_16")
    with pytest.warns(ClippingWarning, match=r"flat\.wav: clipped"):
        audio.load(q)


def test_clean_file_does_not_warn(tmp_path):
    p = tmp_path / "clean.wav"
    sf.write(p, sine(440, SR, 0.2, amp=0.9), SR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audio.load(p)


def test_save_refuses_bad_audio(tmp_path):
    with pytest.raises(AudioError, match=r"bad\.wav: contains 1 NaN/inf"):
        audio.save(tmp_path / "bad.wav", np.array([0.0, np.nan], np.float32), SR)
    with pytest.raises(AudioError, match=r"empty\.wav: refusing to write audio of shape \(0,\)"):
        audio.save(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError, match=r"x\.mp4: unsupported output format"):
        audio.save(tmp_path / "x.mp4", np.zeros(10, np.float32), SR)
    assert not list(tmp_path.glob(".*tmp")), "no temp files left behind"


def test_save_roundtrip(tmp_path):
    x = sine(440, SR, 0.3)
    p = audio.save(tmp_path / "sub" / "x.wav", x, SR)
    assert sf.info(p).subtype == "PCM_16"
    y, sr = audio.load(p)
    assert sr == SR and np.max(np.abs(y - x)) < 1e-4
    audio.save(tmp_path / "f.wav", x, SR, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load(tmp_path / "f.wav")[0], x)


# ---------------------------------------------------------------------------------------------
# resampling
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("orig,target,freq", [(44100, 16000, 1000.0), (16000, 24000, 3000.0), (24000, 16000, 5000.0),
                                              (22050, 24000, 440.0), (48000, 16000, 7000.0)])
def test_resample_keeps_frequency_and_level(orig, target, freq):
    x = sine(freq, orig, 1.0, amp=0.5)
    y = audio.resample(x, orig, target)
    assert len(y) == round(len(x) * target / orig)
    core = slice(len(y) // 10, -len(y) // 10)  # ignore the edges' filter transients
    f_in, lvl_in = peak_freq_and_level(x[len(x) // 10 : -len(x) // 10], orig)
    f_out, lvl_out = peak_freq_and_level(y[core], target)
    assert abs(f_out - freq) < 0.5 and abs(f_in - freq) < 0.5
    assert abs(lvl_out - lvl_in) < 0.1  # dB


def test_resample_removes_content_above_new_nyquist():
    x = sine(10000, 48000, 1.0)  # above 8 kHz: must not alias into the 16 kHz output
    y = audio.resample(x, 48000, 16000)
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) < 1e-3


def test_load_resamples_on_request(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, sine(1000, 44100, 0.5), 44100, subtype="FLOAT")
    y, sr = audio.load(p, sr=16000)
    assert sr == 16000 and len(y) == 8000


@pytest.mark.parametrize("quality", ["VHQ", "HQ"])
def test_stream_resampler_matches_one_shot(quality):
    x = sine(700, 24000, 2.0) + sine(2300, 24000, 2.0, 0.2)
    rs = audio.StreamResampler(24000, 16000, quality=quality)
    pieces = [rs.process(x[i : i + 333]) for i in range(0, len(x), 333)] + [rs.flush()]
    y = np.concatenate(pieces)
    ref = audio.resample(x, 24000, 16000, quality=quality)
    assert len(y) == len(ref)
    assert np.max(np.abs(y - ref)) < 1e-4


def test_hq_stream_resampler_holds_back_less():
    """The live chain's reason for HQ: output starts within the first 53 ms TTS chunk."""
    chunk = sine(300, 24000, 1280 / 24000)
    assert len(audio.StreamResampler(24000, 16000, quality="HQ").process(chunk)) > 400
    assert len(audio.StreamResampler(24000, 16000, quality="VHQ").process(chunk)) < len(
        audio.StreamResampler(24000, 16000, quality="HQ").process(chunk))


# ---------------------------------------------------------------------------------------------
# block reads
# ---------------------------------------------------------------------------------------------
def test_iter_blocks_equals_load(tmp_path):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 10_007).astype(np.float32)
    p = tmp_path / "n.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    blocks = list(audio.iter_blocks(p, 1000))
    assert [len(b) for b in blocks] == [1000] * 10 + [7]
    np.testing.assert_array_equal(np.concatenate(blocks), x)


def test_iter_blocks_resampled(tmp_path):
    x = sine(500, 44100, 3.0)
    p = tmp_path / "r.wav"
    sf.write(p, x, 44100, subtype="FLOAT")
    y = np.concatenate(list(audio.iter_blocks(p, 4096, sr=16000)))
    ref = audio.resample(x, 44100, 16000)
    assert len(y) == len(ref) and np.max(np.abs(y - ref)) < 1e-4


def test_iter_blocks_constant_memory(tmp_path):
    p = tmp_path / "long.wav"
    n = SR * 120  # 2 minutes: 7.7 MB as float32
    with sf.SoundFile(p, "w", SR, 1, subtype="PCM_16") as f:
        for _ in range(120):
            f.write(sine(300, SR, 1.0))
    tracemalloc.start()
    total = 0
    for b in audio.iter_blocks(p, 4096):
        total += len(b)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == n
    assert peak < 1_000_000, f"peak {peak} bytes while streaming a {n * 4} byte signal"


def test_iter_blocks_reports_nan_position(tmp_path):
    x = sine(440, SR, 1.0)
    x[12345] = np.nan
    p = tmp_path / "late_nan.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"late_nan\.wav \(samples 12288\.\.16000\): contains 1 NaN/inf values \(first at sample 12345\)"):
        list(audio.iter_blocks(p, 4096))
