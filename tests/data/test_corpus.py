"""Local corpus builder and voices: files at the right rate/length, manifest, dev speakers
disjoint, determinism, resumability. Uses the fast subprocess voices (espeak-ng, flite) and
skips, naming the binary, where they are not installed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vxlib import audio
from vxlib.data.corpus import build_corpus, read_corpus, read_sentences, trim_silence
from vxlib.data.pairs import DatasetError
from vxlib.data.voices import available_voices, get_voice

SENTENCES = ["The cat sat on the mat.", "A red boat sails at dawn.", "Please close the door.", "Birds sing in the tall trees."]
VOICES = ["espeak:en-us+m3", "espeak:en-gb-x-rp+f4", "flite:slt"]


def need(*binaries: str) -> None:
    for b in binaries:
        if shutil.which(b) is None:
            pytest.skip(f"binary '{b}' not installed")


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "sentences.txt"
    path.write_text("\n".join(SENTENCES) + "\n\n")
    return path


@pytest.fixture(scope="module")
def corpus(sentences, tmp_path_factory):
    need("espeak-ng", "flite")
    out = tmp_path_factory.mktemp("corpus") / "c"
    return out, build_corpus(out, sentences, voices=VOICES, sentences_per_voice=2, num_dev_speakers=1, seed=3, progress=False)


def test_shipped_sentence_list():
    sentences = read_sentences()
    assert len(sentences) >= 300
    words = [len(s.split()) for s in sentences]
    assert min(words) >= 4 and max(words) <= 20


def test_sentence_list_errors(tmp_path):
    dup = tmp_path / "dup.txt"
    dup.write_text("One two three four.\nFive six seven eight.\nOne two three four.\n")
    with pytest.raises(DatasetError, match=r"dup.txt: sentence 3 repeats sentence 1"):
        read_sentences(dup)
    with pytest.raises(DatasetError, match="not found"):
        read_sentences(tmp_path / "none.txt")


def test_trim_silence_keeps_100_ms():
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(sr // 2) / sr).astype(np.float32)
    x = np.concatenate([np.zeros(sr), tone, np.zeros(sr)])
    y = trim_silence(x, sr, keep=0.1)
    nz = np.flatnonzero(y)
    lead, tail = nz[0], len(y) - 1 - nz[-1]
    assert nz[-1] - nz[0] + 1 == len(tone) - 1  # the tone itself is untouched (its first sample is 0)
    assert 1600 <= lead <= 1600 + 400 and 1600 <= tail <= 1600 + 400  # ~100 ms kept, within one 25 ms frame


def test_files_rate_length_and_manifest(corpus):
    out, summary = corpus
    assert summary.written == 6 and summary.already_present == 0 and not summary.skipped_voices
    for split in ("train", "dev"):
        for u in read_corpus(out / split):
            meta = audio.info(u.path)
            assert meta.sample_rate == 16000 and meta.channels == 1
            assert 0.5 < meta.duration < 5.0
            assert u.text in SENTENCES
    rows = summary.rows
    assert len(rows) == 6 and {r["voice"] for r in rows} == set(VOICES)
    for r in rows:
        assert r["duration"] == pytest.approx(audio.info(out / r["split"] / r["path"]).duration, abs=1e-3)
        x, _ = audio.load(out / r["split"] / r["path"])
        assert np.abs(x).max() == pytest.approx(0.9, abs=2e-3)  # one peak level for all engines


def test_dev_speakers_disjoint_from_train(corpus):
    out, summary = corpus
    train = {u.speaker for u in read_corpus(out / "train")}
    dev = {u.speaker for u in read_corpus(out / "dev")}
    assert len(dev) == 1 and dev == set(summary.dev_speakers) and not train & dev
    table = {row["split"]: row for row in summary.table()}
    assert table["dev"]["utterances"] == 2 and table["train"]["utterances"] == 4


def test_second_run_writes_nothing(corpus, sentences):
    out, first = corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    again = build_corpus(out, sentences, voices=VOICES, sentences_per_voice=2, num_dev_speakers=1, seed=3, progress=False)
    assert again.written == 0 and again.already_present == 6
    assert again.rows == first.rows
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before


def test_deterministic_for_a_seed_and_stable_per_voice(sentences, tmp_path):
    need("espeak-ng", "flite")
    a = build_corpus(tmp_path / "a", sentences, voices=VOICES, sentences_per_voice=2, seed=3, progress=False)
    b = build_corpus(tmp_path / "b", sentences, voices=VOICES[:2], sentences_per_voice=2, seed=3, progress=False, num_dev_speakers=0)
    ids = lambda s: {(r["voice"], r["id"], r["text"]) for r in s.rows}  # noqa: E731
    assert ids(b) <= ids(a)  # dropping a voice does not change what the others read
    x, _ = audio.load(tmp_path / "a" / a.rows[0]["split"] / a.rows[0]["path"])
    y, _ = audio.load(tmp_path / "b" / b.rows[0]["split"] / b.rows[0]["path"])
    np.testing.assert_array_equal(x, y)  # the synthesis itself is deterministic


def test_same_person_across_backends_is_one_speaker(sentences, tmp_path):
    need("flite", "text2wave")
    if get_voice("festival:cmu_us_slt_arctic_hts").missing():
        pytest.skip(get_voice("festival:cmu_us_slt_arctic_hts").missing())
    s = build_corpus(tmp_path / "c", sentences, voices=["flite:slt", "festival:cmu_us_slt_arctic_hts", "flite:awb"],
                     sentences_per_voice=1, dev_speakers=["slt"], progress=False)
    dev_voices = {r["voice"] for r in s.rows if r["split"] == "dev"}
    assert dev_voices == {"flite:slt", "festival:cmu_us_slt_arctic_hts"}  # both SLT voices held out together
    assert {r["sample_rate"] for r in s.rows} == {16000}  # festival's 32 kHz HTS output resampled


def test_single_voice_corpus_at_24k_and_missing_voices(sentences, tmp_path):
    need("flite")
    s = build_corpus(tmp_path / "c", sentences, voices=["flite:rms", "flite:nobody"], sentences_per_voice=2,
                     num_dev_speakers=0, sample_rate=24000, progress=False)
    assert set(s.skipped_voices) == {"flite:nobody"}
    assert "flite has no voice 'nobody'" in s.skipped_voices["flite:nobody"]
    assert audio.info(tmp_path / "c" / "train" / s.rows[0]["path"]).sample_rate == 24000
    assert not read_corpus(tmp_path / "c" / "dev")
    with pytest.raises(DatasetError, match="none of the requested voices"):
        build_corpus(tmp_path / "d", sentences, voices=["flite:nobody"], progress=False)
    with pytest.raises(DatasetError, match="need more than 1 speaker"):
        build_corpus(tmp_path / "e", sentences, voices=["flite:rms"], progress=False)
    with pytest.raises(ValueError, match="bad voice spec"):
        get_voice("nobackend")


def test_unknown_espeak_variant_is_reported_not_silently_replaced():
    need("espeak-ng")  # espeak-ng itself would fall back to its default voice without a word
    assert "no variant 'nosuch'" in get_voice("espeak:en-us+nosuch").missing()
    assert get_voice("espeak:en-us+m3").missing() is None


def test_available_voices_reports_why(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    voices, skipped = available_voices(["espeak:en-us+m3", "flite:slt"])
    assert voices == [] and "binary 'espeak-ng' not found" in skipped["espeak:en-us+m3"]


@pytest.mark.slow
def test_piper_joe_voice(sentences, tmp_path):
    if get_voice("piper:joe").missing():
        pytest.skip(get_voice("piper:joe").missing())
    s = build_corpus(tmp_path / "c", sentences, voices=["piper:joe"], sentences_per_voice=1, num_dev_speakers=0, sample_rate=24000, progress=False)
    assert s.rows[0]["speaker"] == "joe" and audio.info(tmp_path / "c" / "train" / s.rows[0]["path"]).sample_rate == 24000
