"""The embedded WORLD teacher: contract (length, alignment, determinism), pitch and formant changes,
profiles as data. Synthetic vowels with known f0 keep it fast; the real-voice effect
(Resemblyzer, Whisper) is a slow test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_signals import vowel

from vxlib.data.teachers.base import Teacher
from vxlib.data.teachers.world import PROFILE_DIR, WorldProfile, WorldTeacher, warp_envelope, world_analyze

SR = 16000


def median_f0(x: np.ndarray) -> float:
    f0 = world_analyze(x, SR, "dio")[0]
    return float(np.median(f0[f0 > 0]))


def test_default_profile_is_data_and_loads():
    data = json.loads((PROFILE_DIR / "default.json").read_text())
    p = WorldProfile.load("default")
    assert p.log_f0_mean == data["log_f0_mean"] and p.formant_shift == data["formant_shift"]
    assert 150 < np.exp(p.log_f0_mean) < 250  # a higher-pitched target than typical male sources
    assert "paper" not in p.name


def test_bad_profiles_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="default"):  # lists the shipped profiles
        WorldProfile.load("no_such_profile")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "log_f0_mean": 5.0, "formant_sift": 1.1}))
    with pytest.raises(ValueError, match=r"missing keys \['formant_shift', 'log_f0_std'\].*unknown keys \['formant_sift'\]"):
        WorldProfile.load(bad)


def test_is_a_teacher_and_describes_its_settings():
    t = WorldTeacher(f0_method="dio", f0_up_key=12)
    assert isinstance(t, Teacher)
    d = t.describe()
    assert d["teacher"] == "world" and d["f0_method"] == "dio" and d["f0_up_key"] == 12
    assert d["profile"]["name"] == "default"
    with pytest.raises(ValueError, match="harvest"):
        WorldTeacher(f0_method="rmvpe")


def test_same_length_finite_and_deterministic():
    x = vowel(seconds=0.5, lead=0.1, tail=0.1)
    t = WorldTeacher(f0_method="dio")
    y1, y2 = t.convert(x, SR), t.convert(x, SR)
    assert y1.shape == x.shape and y1.dtype == np.float32
    assert np.isfinite(y1).all()
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(np.sqrt(np.mean(y1**2)), np.sqrt(np.mean(x**2)), rtol=1e-4)  # loudness kept


def test_time_aligned_onset_and_offset():
    x = vowel(seconds=0.4, lead=0.3, tail=0.3)
    y = WorldTeacher(f0_method="dio").convert(x, SR)

    def active(s):  # 10 ms frames above -30 dB of the loudest
        e = np.array([np.mean(s[i : i + 160] ** 2) for i in range(0, len(s) - 160, 160)])
        on = np.flatnonzero(10 * np.log10(e + 1e-12) > 10 * np.log10(e.max()) - 30)
        return on[0], on[-1]

    (a0, a1), (b0, b1) = active(x), active(y)
    assert abs(int(a0) - int(b0)) <= 2 and abs(int(a1) - int(b1)) <= 2  # within 20 ms


def test_f0_up_key_12_doubles_pitch():
    x = vowel(seconds=0.8, f0=110.0)
    y = WorldTeacher(f0_method="dio", f0_up_key=12).convert(x, SR)
    assert median_f0(y) / median_f0(x) == pytest.approx(2.0, rel=0.05)


def test_pitch_maps_to_profile_statistics():
    profile = WorldProfile("t", log_f0_mean=float(np.log(200.0)), log_f0_std=0.1, formant_shift=1.0)
    teacher = WorldTeacher(profile, f0_method="dio")
    for source_f0 in (100.0, 150.0):
        f0 = world_analyze(vowel(seconds=0.8, f0=source_f0), SR, "dio")[0]
        mapped = teacher.map_f0(f0)
        voiced = f0 > 0
        assert np.array_equal(mapped > 0, voiced)  # voicing untouched
        assert np.log(mapped[voiced]).mean() == pytest.approx(np.log(200.0), abs=1e-9)
        assert np.log(mapped[voiced]).std() == pytest.approx(0.1, abs=1e-9)
    y = teacher.convert(vowel(seconds=0.8, f0=100.0), SR)
    assert median_f0(y) == pytest.approx(200.0, rel=0.06)


def test_warp_envelope_moves_a_peak_by_the_factor():
    bins = np.arange(513)
    sp = np.exp(-0.5 * ((bins - 100) / 8.0) ** 2)[None, :].repeat(3, 0) + 1e-3  # (F=3, K=513), peak at bin 100
    warped = warp_envelope(sp, 1.2)
    assert warped.shape == sp.shape
    assert np.argmax(warped[0]) == 120
    np.testing.assert_array_equal(warp_envelope(sp, 1.0), sp)


def test_formants_move_up_end_to_end():
    x = vowel(seconds=0.8, f0=110.0, formants=(700.0, 1220.0, 2600.0))
    y = WorldTeacher(WorldProfile("t", float(np.log(110.0)), 0.05, formant_shift=1.2), f0_method="dio").convert(x, SR)

    def first_formant(s):
        sp = world_analyze(s, SR, "dio")[1].mean(axis=0)  # (K,)
        freqs = np.linspace(0, SR / 2, len(sp))
        band = (freqs > 400) & (freqs < 1100)
        return freqs[band][np.argmax(sp[band])]

    assert first_formant(y) / first_formant(x) == pytest.approx(1.2, rel=0.06)


def test_bad_input_and_silence():
    t = WorldTeacher(f0_method="dio")
    with pytest.raises(ValueError, match="1-D"):
        t.convert(np.zeros((2, 100), np.float32), SR)
    x = vowel(seconds=0.3)
    x[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        t.convert(x, SR)
    silent = np.zeros(4000, np.float32)
    np.testing.assert_array_equal(t.convert(silent, SR), silent)


@pytest.mark.slow
def test_measured_effect_on_real_voices(tmp_path):
    """Speaker similarity drops well below copy-synthesis and Whisper still understands it."""
    from vxlib.data.corpus import build_corpus
    from vxlib.data.effect import measure_teacher_effect
    from vxlib.data.pairs import Utterance

    summary = build_corpus(tmp_path / "c", voices=["flite:awb", "flite:rms"], sentences_per_voice=2, num_dev_speakers=0, progress=False)
    utts = [Utterance(r["id"], tmp_path / "c" / "train" / r["path"], r["speaker"], r["text"]) for r in summary.rows]
    effect = measure_teacher_effect(WorldTeacher(), utts, progress=False)
    assert effect["copy_synthesis_similarity"] > 0.9
    assert effect["similarity"] < effect["copy_synthesis_similarity"] - 0.1
    assert effect["f0_ratio"] > 1.2  # male sources -> the default (higher) target
    assert effect["wer_converted"] < 0.5
