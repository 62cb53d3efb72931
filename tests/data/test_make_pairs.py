"""The pair writer: layout, manifest and card, the reference val split, resumability, sharding +
merge, validation by name, and the CLI. Sources are a tiny LibriSpeech-shaped fixture of
synthetic vowels; the teacher is the WORLD teacher with dio (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from data_signals import vowel

from vxlib import audio
from vxlib.data.make_pairs import TEACHERS, main, make_pairs, make_teacher, plan_pairs, read_source, shard_jobs
from vxlib.data.pairs import DatasetError, list_pairs, merge_shards, read_manifest, validate_dataset
from vxlib.data.teachers.world import WorldTeacher

REPO = Path(__file__).resolve().parents[2]


def write_set(root: Path, speakers: dict[str, int], sr: int = 22050) -> Path:
    """LibriSpeech layout at ``sr`` (not 16 kHz, so the writer must resample)."""
    for s, (spk, n) in enumerate(speakers.items()):
        d = root / spk / "100"
        d.mkdir(parents=True)
        lines = []
        for k in range(n):
            utt = f"{spk}-100-{k:04d}"
            sf.write(d / f"{utt}.flac", vowel(sr=sr, seconds=0.25 + 0.05 * k, f0=100 + 15 * s, seed=k), sr)
            lines.append(f"{utt} WORDS OF {utt}")
        (d / f"{spk}-100.trans.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("ls")
    return write_set(base / "train", {"11": 4, "22": 3, "33": 3}), write_set(base / "dev", {"44": 2})


@pytest.fixture(scope="module")
def teacher() -> WorldTeacher:
    return make_teacher("world", f0_method="dio", f0_up_key=None, profile=None)


@pytest.fixture(scope="module")
def dataset(sources, teacher, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("pairs") / "ds"
    result = make_pairs(*sources, out, teacher, val_percent=0.2, random_seed=42, progress=False)
    return out, result


def test_layout_lengths_and_rate(dataset):
    out, result = dataset
    assert result["pairs"] == 12 and result["written"] == 12
    report = validate_dataset(out)
    assert report.ok and report.pairs == {"train": 8, "val": 2, "dev": 2}
    for split in ("train", "val", "dev"):
        for prefix, orig, conv in list_pairs(out, split):
            a, b = audio.info(orig), audio.info(conv)
            assert a.sample_rate == b.sample_rate == 16000 and a.channels == b.channels == 1
            assert a.frames == b.frames
    # the original is the 22.05 kHz source resampled to 16 kHz, nothing else (PCM_16 rounding)
    prefix, original, _ = list_pairs(out, "dev")[0]
    source = next(r["source"] for r in read_manifest(out) if r["prefix"] == prefix)
    np.testing.assert_allclose(audio.load(original)[0], audio.load(source, sr=16000)[0], atol=1 / 32768)


def test_val_split_matches_the_reference_algorithm(dataset, sources):
    out, _ = dataset
    stems = sorted(p.stem for p in sources[0].rglob("*.flac"))
    files = np.array(stems)
    np.random.seed(42)  # reference _infer_folder.val_split: sort by stem, seed, shuffle, take int(n * p)
    np.random.shuffle(files)
    expected = sorted(files[: int(len(files) * 0.2)])
    assert [p for p, _, _ in list_pairs(out, "val")] == expected


def test_manifest_and_card(dataset):
    out, result = dataset
    rows = read_manifest(out)
    assert len(rows) == 12 and {r["split"] for r in rows} == {"train", "val", "dev"}
    row = next(r for r in rows if r["prefix"] == "44-100-0001")
    assert row["split"] == "dev" and row["speaker"] == "44" and row["text"] == "WORDS OF 44-100-0001"
    assert row["teacher"] == "world" and row["f0_method"] == "dio"
    assert row["duration"] == pytest.approx(0.30, abs=1e-3)
    card = json.loads((out / "dataset_card.json").read_text())
    assert card == result["card"]
    assert card["splits"]["dev"] == {"pairs": 2, "hours": pytest.approx(0.55 / 3600, abs=1e-4), "num_speakers": 1, "speakers": ["44"]}
    assert card["splits"]["train"]["speakers"] == ["11", "22", "33"]
    assert card["settings"]["teacher"]["teacher"] == "world" and card["settings"]["random_seed"] == 42
    md = (out / "dataset_card.md").read_text()
    assert "| dev | 2 |" in md


def test_second_run_writes_nothing(dataset, sources, teacher):
    out, _ = dataset
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    again = make_pairs(*sources, out, teacher, val_percent=0.2, random_seed=42, progress=False)
    assert again["written"] == 0 and again["pairs"] == 12
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before
    assert again["card"] == dataset[1]["card"]


def test_shards_then_merge_equal_one_run(dataset, sources, teacher, tmp_path):
    out, _ = dataset
    sharded = tmp_path / "sharded"
    for i in (1, 0, 2):
        r = make_pairs(*sources, sharded, teacher, val_percent=0.2, random_seed=42, num_shards=3, shard_index=i, progress=False)
        assert r["card"] is None and r["pairs"] == 4
    card = merge_shards(sharded)
    assert card["splits"] == json.loads((out / "dataset_card.json").read_text())["splits"]
    assert read_manifest(sharded) == read_manifest(out)
    for split in ("train", "val", "dev"):
        for (p, o, c), (_, o2, c2) in zip(list_pairs(out, split), list_pairs(sharded, split)):
            np.testing.assert_array_equal(audio.load(c)[0], audio.load(c2)[0])


def test_shard_plan_is_a_partition(sources):
    jobs = plan_pairs(read_source(sources[0]), read_source(sources[1]), 0.2, 42)
    parts = [shard_jobs(jobs, 3, i) for i in range(3)]
    assert sorted(j.prefix for p in parts for j in p) == sorted(j.prefix for j in jobs)
    with pytest.raises(ValueError, match="shard_index"):
        shard_jobs(jobs, 3, 3)


def test_merge_names_a_missing_shard(sources, teacher, tmp_path):
    make_pairs(*sources, tmp_path / "d", teacher, val_percent=0.2, num_shards=2, shard_index=1, progress=False)
    with pytest.raises(DatasetError, match=r"1 of 2 shards not finished: \['manifest-00000-of-00002.jsonl'\]"):
        merge_shards(tmp_path / "d")


def test_validation_names_missing_half_and_length_mismatch(dataset, tmp_path):
    import shutil

    out = tmp_path / "broken"
    shutil.copytree(dataset[0], out)
    (out / "train" / "11-100-0000_converted.wav").unlink()
    x, sr = audio.load(out / "dev" / "44-100-0000_converted.wav")
    audio.save(out / "dev" / "44-100-0000_converted.wav", x[:-7], sr)
    audio.save(out / "val" / (list_pairs(out, "val")[0][0] + "_original.wav"), np.full(100, 0.1, np.float32), 22050)
    report = validate_dataset(out, raise_on_error=False)
    text = "\n".join(report.problems)
    assert "train/11-100-0000_converted.wav: missing (its original exists)" in text
    assert "dev/44-100-0000: length mismatch, original 4000 samples, converted 3993" in text
    assert "sample rate 22050 Hz, expected 16000 Hz" in text
    assert len(report.problems) == 3
    with pytest.raises(DatasetError, match="11-100-0000_converted.wav: missing"):
        list_pairs(out, "train")
    with pytest.raises(DatasetError, match="3 problem"):
        validate_dataset(out)


def test_dev_sharing_train_speakers_is_refused(sources, teacher, tmp_path):
    with pytest.raises(DatasetError, match="shares 3 speaker"):
        make_pairs(sources[0], sources[0], tmp_path / "x", teacher, progress=False)


def test_teacher_registry():
    assert set(TEACHERS) >= {"world", "rvc"}
    with pytest.raises(ValueError, match="unknown teacher 'nope'"):
        make_teacher("nope")
    t = make_teacher("world", f0_method="dio", f0_up_key=12, profile=None)
    assert t.describe()["f0_up_key"] == 12 and t.describe()["profile"]["name"] == "default"
    # importing the writer (or asking for rvc without its checkpoints) must not import the RVC teacher
    code = ("import sys, vxlib.data.make_pairs as m\n"
            "try: m.make_teacher('rvc', f0_method='rmvpe')\n"
            "except ValueError as e: assert 'model_path' in str(e) and 'hubert_path' in str(e)\n"
            "print('vxlib.data.teachers.rvc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False", out.stderr


def test_cli_folder_layout_and_merge_only(tmp_path, capsys):
    for spk, n in (("a", 3), ("b", 2)):
        for k in range(n):
            audio.save(tmp_path / "src" / spk / f"{spk}{k}.wav", vowel(seconds=0.25, seed=k), 16000)
    audio.save(tmp_path / "devsrc" / "c" / "c0.wav", vowel(seconds=0.25), 16000)
    args = ["--train_set_path", str(tmp_path / "src"), "--dev_set_path", str(tmp_path / "devsrc"), "--out_path", str(tmp_path / "out"),
            "--val_percent", "0.2", "--random_seed", "1", "--f0_method", "dio", "--f0_up_key", "12", "--teacher", "world"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "6 pairs, 6 written" in printed and "val         1 pairs" in printed
    rows = read_manifest(tmp_path / "out")
    assert {r["speaker"] for r in rows} == {"a", "b", "c"} and all(r["text"] == "" for r in rows)
    assert main(["--out_path", str(tmp_path / "out"), "--merge_only"]) == 0
    with pytest.raises(SystemExit):
        main(["--out_path", str(tmp_path / "out")])  # sources required unless --merge_only


@pytest.mark.slow
def test_process_workers_give_the_same_pairs(dataset, sources, teacher, tmp_path):
    r = make_pairs(*sources, tmp_path / "w2", teacher, val_percent=0.2, random_seed=42, workers=2, progress=False)
    assert r["written"] == 12
    for split in ("train", "val", "dev"):
        for (_, _, c), (_, _, c2) in zip(list_pairs(dataset[0], split), list_pairs(tmp_path / "w2", split)):
            np.testing.assert_array_equal(audio.load(c)[0], audio.load(c2)[0])
