"""Baseline systems behind one interface: evaluation sets, runs, timing summaries and scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vxlib import audio
from vxlib.audio import AudioError, ClippingWarning
from vxlib.data.pairs import DatasetError
from vxlib.data.teachers.base import Teacher
from vxlib.eval.baselines import (OfflineSystem, System, evaluation_set, llvc_systems, output_differences,
                                  reuse_scores, run_system, score_ground_truth, score_run, teacher_systems)
from vxlib.eval.metrics import SystemResult
from vxlib.llvc.inference import build_model, load_config
from vxlib.run import REPO_ROOT

SR = 16000
TEXTS = {"a": "first sentence", "b": "second sentence", "c": "third sentence"}


def vowel(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A voiced, vowel-like signal: harmonics with a 1/k tilt, a little vibrato and breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 4 * t))) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) + 0.01 * rng.standard_normal(t.size)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


class HalfGain(Teacher):
    """A stand-in teacher: deterministic, same length, aligned; its output is the input at half level."""

    name = "half"

    def convert(self, wav: np.ndarray, sr: int) -> np.ndarray:
        return 0.5 * np.asarray(wav, np.float32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A paired data set whose dev "teacher outputs" are the originals at half level, with texts."""
    root = tmp_path_factory.mktemp("pairs")
    rows = []
    for split in ("train", "val", "dev"):
        (root / split).mkdir()
    for i, key in enumerate(TEXTS):
        x = vowel(0.6 + 0.1 * i, 110 + 30 * i, i)
        audio.save(root / "dev" / f"{key}_original.wav", x, SR, subtype="FLOAT")
        audio.save(root / "dev" / f"{key}_converted.wav", HalfGain().convert(x, SR), SR, subtype="FLOAT")
        rows.append({"prefix": key, "split": "dev", "text": TEXTS[key]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def evalset(dataset, tmp_path_factory):
    return evaluation_set(dataset, "dev", tmp_path_factory.mktemp("evalset"), max_utterances=2)


@pytest.fixture(scope="module")
def tiny_llvc():
    torch.manual_seed(0)
    return build_model(load_config(REPO_ROOT / "experiments" / "llvc_tiny" / "config.json")).eval()


def test_evaluation_set_links_halves_apart_with_texts(dataset, evalset, tmp_path):
    assert list(evalset.sources) == ["a", "b"]  # the first max_utterances by prefix
    assert evalset.sample_rate == SR and evalset.texts == {"a": TEXTS["a"], "b": TEXTS["b"]}
    assert evalset.references == {"texts": evalset.texts}
    gt, _ = audio.load(evalset.ground_truth_dir / "a.wav")
    src, _ = audio.load(evalset.source_dir / "a.wav")
    np.testing.assert_array_equal(gt, 0.5 * src)
    assert sorted(p.name for p in evalset.ground_truth_dir.iterdir()) == ["a.wav", "b.wav"]
    again = evaluation_set(dataset, "dev", tmp_path, max_utterances=1)  # a smaller selection replaces the links
    again = evaluation_set(dataset, "dev", tmp_path, max_utterances=1)
    assert sorted(p.name for p in again.ground_truth_dir.iterdir()) == ["a.wav"]


def test_evaluation_set_refuses_incomplete_pairs_and_mixed_rates(dataset, tmp_path):
    bad = tmp_path / "bad"
    for split in ("train", "val", "dev"):
        (bad / split).mkdir(parents=True)
    audio.save(bad / "dev" / "x_original.wav", vowel(0.3, 120, 0), SR)
    with pytest.raises(DatasetError, match="x_converted.wav: missing"):
        evaluation_set(bad, "dev", tmp_path / "w")
    audio.save(bad / "dev" / "x_converted.wav", vowel(0.3, 120, 0), 22050)
    with pytest.raises(DatasetError, match="x_converted.wav \\(22050 Hz\\)"):
        evaluation_set(bad, "dev", tmp_path / "w")


def test_teacher_offline_and_sola_reproduce_an_aligned_teacher(evalset, tmp_path):
    offline, sola = teacher_systems(HalfGain(), SR)
    assert (offline.name, sola.name, sola.slug) == ("teacher", "teacher + SOLA", "teacher_sola")
    assert offline.chunk_samples is None and (sola.chunk_samples, sola.lookahead_samples) == (1600, 256)
    runs = {s.name: run_system(s, evalset.sources, tmp_path / s.slug) for s in (offline, sola)}
    for key, source in evalset.sources.items():
        x, _ = audio.load(source)
        y, sr = audio.load(runs["teacher"].files[key])
        assert sr == SR and audio.info(runs["teacher"].files[key]).subtype == "FLOAT"
        np.testing.assert_array_equal(y, 0.5 * x)
        # SOLA may move a block by whole pitch periods (up to 12 ms) to join waveforms in phase:
        # exact up to its first join, the same level throughout.
        z, _ = audio.load(runs["teacher + SOLA"].files[key])
        assert z.shape == x.shape
        np.testing.assert_allclose(z[:1600 - 256], 0.5 * x[:1600 - 256], atol=1e-6)
        assert np.sqrt(np.mean(z**2)) == pytest.approx(np.sqrt(np.mean((0.5 * x) ** 2)), rel=0.02)
    assert set(runs["teacher"].summary()) == {"audio_s", "processing_s", "rtf", "speed", "clipped_samples"}
    streaming = runs["teacher + SOLA"].summary()
    assert streaming["algorithmic_latency_ms"] == pytest.approx(116.0)
    assert streaming["e2e_latency_ms_mean"] > 116.0 and streaming["speed"] > 0
    assert streaming["chunks"] == sum(audio.info(p).frames // 1600 for p in evalset.sources.values())  # full blocks


def test_llvc_exact_streaming_equals_offline_and_reference_mode_runs(evalset, tiny_llvc, tmp_path):
    systems = llvc_systems(tiny_llvc, SR, chunk_factors=(1, 2), modes=("exact", "reference"))
    assert [s.name for s in systems] == ["LLVC offline", "LLVC exact cf=1", "LLVC exact cf=2",
                                         "LLVC reference cf=1", "LLVC reference cf=2"]
    runs = {s.name: run_system(s, evalset.sources, tmp_path / s.slug) for s in systems}
    for name in ("LLVC exact cf=1", "LLVC exact cf=2"):
        assert max(output_differences(runs[name], runs["LLVC offline"]).values()) < 1e-5
    assert max(output_differences(runs["LLVC reference cf=1"], runs["LLVC offline"]).values()) > 0
    summary = runs["LLVC exact cf=2"].summary()
    assert summary["algorithmic_latency_ms"] == pytest.approx((2 * 208 + 16) / 16)  # chunk + look-ahead L
    assert summary["chunks"] > 0 and summary["chunk_ms_p99"] >= summary["chunk_ms_p50"] > 0


def test_reuse_scores_checks_equality_and_keeps_its_own_timing(evalset, tiny_llvc, tmp_path):
    offline, exact, reference = llvc_systems(tiny_llvc, SR, chunk_factors=(1,), modes=("exact", "reference"))
    runs = [run_system(s, evalset.sources, tmp_path / s.slug) for s in (offline, exact, reference)]
    rows = [{"system": offline.name, "utterance": k, "file": str(p), "mcd_db": 3.0} for k, p in runs[0].files.items()]
    scored = SystemResult(offline.name, rows, {"system": offline.name, "mcd_db": 3.0, **runs[0].summary()})
    reused = reuse_scores(runs[1], runs[0], scored)
    assert reused.name == exact.name and reused.summary["mcd_db"] == 3.0
    assert reused.summary["e2e_latency_ms_mean"] == runs[1].summary()["e2e_latency_ms_mean"]
    assert reused.summary["max_abs_diff_to_scored"] < 1e-5
    assert {r["file"] for r in reused.rows} == {str(p) for p in runs[1].files.values()}
    with pytest.raises(ValueError, match="score LLVC reference cf=1 on its own"):
        reuse_scores(runs[2], runs[0], scored, tolerance=0.0)


def test_scores_join_metrics_and_timing_ground_truth_drops_paired_metrics(evalset, tmp_path):
    run = run_system(teacher_systems(HalfGain(), SR, sola=None)[0], evalset.sources, tmp_path / "teacher")
    result = score_run(run, evalset, ["mcd"])
    assert result.summary["mcd_db"] == pytest.approx(0.0, abs=1e-6)  # the teacher reproduces the ground truth
    assert result.summary["speed"] == run.summary()["speed"]
    truth = score_ground_truth(evalset, ["mcd"])
    assert truth.name == "ground truth" and "mcd_db" not in truth.summary and truth.summary["utterances"] == 2


class _Broken(System):
    def __init__(self, name, sample_rate, fn):
        self.name, self.sample_rate, self.fn = name, sample_rate, fn

    def convert(self, wav):
        return self.fn(wav), []


def test_run_system_refuses_wrong_rates_and_lengths_and_reports_clipping(evalset, tmp_path):
    with pytest.raises(AudioError, match="a_original.wav: 16000 Hz, but x works at 22050 Hz"):
        run_system(OfflineSystem("x", 22050, lambda w: w), evalset.sources, tmp_path / "r")
    with pytest.raises(ValueError, match="short returned shape"):
        run_system(_Broken("short", SR, lambda w: w[:-1]), evalset.sources, tmp_path / "s")
    with pytest.warns(ClippingWarning, match="loud output exceeds full scale"):
        run = run_system(OfflineSystem("loud", SR, lambda w: 10 * w), evalset.sources, tmp_path / "loud")
    with pytest.warns(ClippingWarning, match="clipped"):  # full-scale runs: the loader notices too
        y, _ = audio.load(run.files["a"])
    assert np.abs(y).max() == 1.0 and run.clipped_samples == run.summary()["clipped_samples"] > 0
    (tmp_path / "loud" / "stale.wav").write_bytes((tmp_path / "loud" / "a.wav").read_bytes())
    run_system(OfflineSystem("quiet", SR, lambda w: w), evalset.sources, tmp_path / "loud")
    assert sorted(p.name for p in (tmp_path / "loud").iterdir()) == ["a.wav", "b.wav"]  # old outputs are gone
