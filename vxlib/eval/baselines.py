"""The systems of the LLVC paper's latency/quality table, behind one interface, scored alike.

A :class:`System` converts one utterance and reports how long it took; :func:`run_system` runs it
over an evaluation set and writes ``<out_dir>/<utterance>.wav``; :func:`score_run` scores those
files with :func:`vxlib.eval.evaluate_system` and adds the timing figures, so every row of the
table comes from the same files-in, files-out path::

    evalset = evaluation_set("data/pairs", "dev", "runs/x/eval_set", max_utterances=20)
    systems = teacher_systems(teacher, 16000) + llvc_systems(model, 16000, chunk_factors=(1, 2, 4))
    runs = [run_system(s, evalset.sources, f"runs/x/systems/{s.slug}") for s in systems]
    results = [score_ground_truth(evalset, metrics)] + [score_run(r, evalset, metrics) for r in runs]
    markdown_table(results)

(:func:`reuse_scores` gives a run whose outputs equal an already scored run's, such as exact-mode
streaming against offline LLVC, that run's quality figures after checking the equality.)

Rows (the paper's Table 1, as far as they run here):

==================== ==========================================================================
ground truth         the teacher outputs stored in the data set (``PREFIX_converted.wav``), which
                     LLVC is trained to imitate: :func:`score_ground_truth`
teacher              the teacher on whole utterances: the quality ceiling of the distillation
teacher + SOLA       the teacher on 100 ms blocks with SOLA crossfades
                     (:class:`vxlib.stream.sola.SolaStreamer`): the paper's RVC / QuickVC streaming
                     baselines. With the user's RVC checkpoints as the teacher this is the paper's
                     RVC baseline; QuickVC is not implemented in vxlib
LLVC offline         one forward pass over the utterance
LLVC exact cf=n      :class:`vxlib.llvc.StreamingConverter` ``mode="exact"``: equal to offline
LLVC reference cf=n  ``mode="reference"``: the reference ``infer_stream``, defects included
==================== ==========================================================================

Streaming systems are fed one step (``chunk_samples``) per call, back to back as fast as they take
it, as the reference's scripts do; speed, per-chunk compute, end-to-end latency and under-runs
come from the per-chunk timing records via :func:`vxlib.eval.streaming_figures`. Offline systems
report speed only (their latency is the utterance). Output samples beyond full scale are clipped,
as a sound card would, and counted (``clipped_samples``) with a warning naming the file.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from vxlib import audio
from vxlib.audio import AudioError, ClippingWarning
from vxlib.data.pairs import DatasetError, list_pairs, read_manifest
from vxlib.eval.metrics import AUDIO_EXTENSIONS, SystemResult, evaluate_system
from vxlib.eval.streaming import StreamingFigures, streaming_figures
from vxlib.stream.sola import SolaConfig, SolaStreamer
from vxlib.stream.timing import ChunkTiming, TimingLog

__all__ = ["slug", "System", "OfflineSystem", "StreamingSystem", "teacher_systems", "llvc_systems", "EvaluationSet",
           "evaluation_set", "SystemRun", "run_system", "score_run", "score_ground_truth", "reuse_scores", "output_differences",
           "PAIRED_METRICS"]

PathLike = str | os.PathLike
PAIRED_METRICS = ("mcd", "f0")  # compare with the same utterance's ground truth: trivial for the ground truth itself


# ---------------------------------------------------------------------------------------------
# Systems
# ---------------------------------------------------------------------------------------------
def slug(name: str) -> str:
    """A system name as a folder / metric name: ``"LLVC exact cf=1"`` -> ``"llvc_exact_cf_1"``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class System(ABC):
    """A voice-conversion system as the evaluation harness sees it.

    Contract: ``convert(wav)`` takes one utterance, 1-D float32 at ``sample_rate``, and returns
    ``(converted, timings)``: the converted utterance, same rate and length, time-aligned with the
    input; and the per-chunk :class:`~vxlib.stream.ChunkTiming` records of a streaming run (empty
    for an offline system). ``chunk_samples`` is ``None`` for an offline system, else the samples
    per streaming step; ``lookahead_samples`` is the output held back beyond a step, so that
    ``chunk_samples + lookahead_samples`` is the algorithmic latency.
    """

    name: str
    sample_rate: int
    chunk_samples: int | None = None
    lookahead_samples: int = 0

    @abstractmethod
    def convert(self, wav: np.ndarray) -> tuple[np.ndarray, list[ChunkTiming]]: ...

    @property
    def slug(self) -> str:
        return slug(self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, sample_rate={self.sample_rate})"


class OfflineSystem(System):
    """A whole-utterance converter, e.g. ``lambda wav: teacher.convert(wav, sr)`` or LLVC's ``convert``."""

    def __init__(self, name: str, sample_rate: int, convert: Callable[[np.ndarray], np.ndarray]):
        self.name, self.sample_rate, self._convert = name, int(sample_rate), convert

    def convert(self, wav: np.ndarray) -> tuple[np.ndarray, list[ChunkTiming]]:
        return np.asarray(self._convert(wav), dtype=np.float32), []


class Streamer(Protocol):
    """What :class:`StreamingSystem` drives: :class:`vxlib.llvc.StreamingConverter` and
    :class:`vxlib.stream.sola.SolaStreamer` both are one."""

    chunk_samples: int
    lookahead: int
    timings: TimingLog

    def process(self, block) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...


class StreamingSystem(System):
    """Feeds an utterance to a :class:`Streamer` one step at a time, then flushes it."""

    def __init__(self, name: str, sample_rate: int, streamer: Streamer):
        self.name, self.sample_rate, self.streamer = name, int(sample_rate), streamer
        self.chunk_samples, self.lookahead_samples = streamer.chunk_samples, streamer.lookahead

    def convert(self, wav: np.ndarray) -> tuple[np.ndarray, list[ChunkTiming]]:
        self.streamer.timings.clear()
        step = self.chunk_samples
        pieces = [self.streamer.process(wav[i:i + step]) for i in range(0, wav.shape[0], step)]
        pieces.append(self.streamer.flush())
        return np.concatenate(pieces), list(self.streamer.timings.records)


def teacher_systems(teacher, sample_rate: int, sola: SolaConfig | None = SolaConfig(),
                    name: str = "teacher") -> list[System]:
    """The teacher offline (the quality ceiling) and, unless ``sola`` is None, run chunked with SOLA.

    ``teacher``: a :class:`vxlib.data.teachers.base.Teacher` (``vxlib.data.make_pairs.make_teacher``).
    """
    def convert(wav: np.ndarray) -> np.ndarray:
        return teacher.convert(wav, sample_rate)

    systems: list[System] = [OfflineSystem(name, sample_rate, convert)]
    if sola is not None:
        systems.append(StreamingSystem(f"{name} + SOLA", sample_rate, SolaStreamer(convert, sample_rate, sola)))
    return systems


def llvc_systems(model, sample_rate: int, chunk_factors: Sequence[int] = (1, 2, 4),
                 modes: Sequence[str] = ("exact", "reference"), offline: bool = True) -> list[System]:
    """LLVC offline (unless ``offline=False``) and streaming in each mode at each chunk factor.

    ``model``: an eval-mode :class:`vxlib.llvc.Net` (as :func:`vxlib.llvc.load_model` returns it).
    """
    from vxlib.llvc import StreamingConverter, convert

    systems: list[System] = []
    if offline:
        systems.append(OfflineSystem("LLVC offline", sample_rate, lambda wav: convert(model, wav)))
    for mode in modes:
        for cf in chunk_factors:
            systems.append(StreamingSystem(f"LLVC {mode} cf={cf}", sample_rate,
                                           StreamingConverter(model, chunk_factor=cf, mode=mode)))
    return systems


# ---------------------------------------------------------------------------------------------
# The evaluation set: one split of a paired data set, laid out for the metrics harness
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationSet:
    """Utterances of one split: ``sources`` (system input, ``PREFIX_original.wav``) by utterance key;
    ``ground_truth_dir`` / ``source_dir`` hold ``<key>.wav`` links to the converted / original halves
    (the harness pairs files by key, so the two halves need separate folders); ``texts`` are the
    manifest's texts, or None when the manifest has none (WER then uses a transcript of the source)."""

    dataset_dir: Path
    split: str
    sources: dict[str, Path]
    ground_truth_dir: Path
    source_dir: Path
    texts: dict[str, str] | None
    sample_rate: int

    @property
    def references(self) -> dict[str, Any]:
        """The ``texts`` / ``source`` argument for :func:`vxlib.eval.evaluate_system`'s WER."""
        return {"texts": self.texts} if self.texts is not None else {"source": self.source_dir}


def _clear_audio(folder: Path) -> None:
    """Remove the audio files and links (broken ones too) directly in ``folder``."""
    for p in folder.iterdir():
        if (p.is_symlink() or p.is_file()) and p.suffix.lower() in AUDIO_EXTENSIONS:
            p.unlink()


def _link(target: Path, link: Path) -> None:
    """A symlink where the file system allows one, else a copy."""
    try:
        link.symlink_to(target.resolve())
    except OSError:
        shutil.copyfile(target, link)


def evaluation_set(dataset_dir: PathLike, split: str, work_dir: PathLike,
                   max_utterances: int | None = None) -> EvaluationSet:
    """The first ``max_utterances`` pairs (sorted by prefix; all when None) of ``split``.

    ``work_dir/ground_truth`` and ``work_dir/source`` are rebuilt with links to the chosen pairs.
    Raises :class:`DatasetError` for an incomplete pair or files whose sample rates differ.
    """
    root, work = Path(dataset_dir), Path(work_dir)
    pairs = list_pairs(root, split)
    if not pairs:
        raise DatasetError(f"{root / split}: no pairs")
    if max_utterances is not None:
        if max_utterances < 1:
            raise ValueError(f"max_utterances must be >= 1 or None, got {max_utterances}")
        pairs = pairs[:max_utterances]
    rates = {p: audio.info(p).sample_rate for _, original, converted in pairs for p in (original, converted)}
    sample_rate = rates[pairs[0][1]]
    odd = [f"{p} ({sr} Hz)" for p, sr in rates.items() if sr != sample_rate]
    if odd:
        raise DatasetError(f"{root / split}: sample rates differ from {pairs[0][1]} ({sample_rate} Hz): " + ", ".join(odd))

    ground_truth_dir, source_dir = work / "ground_truth", work / "source"
    for d in (ground_truth_dir, source_dir):
        d.mkdir(parents=True, exist_ok=True)
        _clear_audio(d)  # links from an earlier selection would be scored too
    for prefix, original, converted in pairs:
        _link(converted, ground_truth_dir / f"{prefix}.wav")
        _link(original, source_dir / f"{prefix}.wav")

    manifest = root / "manifest.jsonl"
    texts = None
    if manifest.exists():
        by_prefix = {r.get("prefix"): r.get("text", "") for r in read_manifest(manifest) if r.get("split") == split}
        chosen = {prefix: (by_prefix.get(prefix) or "").strip() for prefix, _, _ in pairs}
        texts = chosen if all(chosen.values()) else None
    return EvaluationSet(root, split, {prefix: original for prefix, original, _ in pairs}, ground_truth_dir,
                         source_dir, texts, sample_rate)


# ---------------------------------------------------------------------------------------------
# Running and scoring
# ---------------------------------------------------------------------------------------------
@dataclass
class SystemRun:
    """One system over an evaluation set: its output files and what the conversion cost."""

    system: str
    out_dir: Path
    files: dict[str, Path]
    sample_rate: int
    audio_s: float
    processing_s: float  # wall time of the convert calls
    chunk_samples: int | None
    lookahead_samples: int
    timings: list[ChunkTiming] = field(default_factory=list)
    clipped_samples: int = 0

    @property
    def figures(self) -> StreamingFigures | None:
        """Streaming figures over every chunk of every utterance (None for an offline system)."""
        if self.chunk_samples is None:
            return None
        return streaming_figures(self.timings, self.sample_rate, self.chunk_samples, self.lookahead_samples)

    def summary(self) -> dict[str, float]:
        """Speed (x real time; ``rtf`` its inverse), the streaming figures when streaming, and the
        clipped sample count: the timing columns of the table."""
        figures = self.figures
        if figures is not None:
            out = figures.to_dict()
        else:
            rtf = self.processing_s / self.audio_s
            out = {"audio_s": self.audio_s, "processing_s": self.processing_s, "rtf": rtf, "speed": 1.0 / rtf}
        out["clipped_samples"] = self.clipped_samples
        return out


def run_system(system: System, sources: Mapping[str, PathLike], out_dir: PathLike) -> SystemRun:
    """Convert every source with ``system``; write ``<out_dir>/<key>.wav`` (float WAV, lossless).

    Audio files already in ``out_dir`` are removed first (they would be scored with this run).
    A source whose rate is not the system's is refused (nothing is resampled behind your back);
    so is a system output of the wrong length.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clear_audio(out)
    files: dict[str, Path] = {}
    timings: list[ChunkTiming] = []
    audio_s = processing_s = 0.0
    clipped = 0
    for key, src in sources.items():
        meta = audio.info(src)
        if meta.sample_rate != system.sample_rate:
            raise AudioError(f"{src}: {meta.sample_rate} Hz, but {system.name} works at {system.sample_rate} Hz "
                             "(resample the data set first)")
        wav, sr = audio.load(src)
        t0 = time.perf_counter()
        y, records = system.convert(wav)
        processing_s += time.perf_counter() - t0
        if y.shape != wav.shape:
            raise ValueError(f"{src}: {system.name} returned shape {y.shape} for input {wav.shape} "
                             "(systems must return the input's length, time-aligned)")
        over = int(np.count_nonzero(np.abs(y) > 1.0))
        if over:
            warnings.warn(f"{out / f'{key}.wav'}: {system.name} output exceeds full scale in {over} samples "
                          f"(peak {np.abs(y).max():.3f}); clipped to [-1, 1]", ClippingWarning, stacklevel=2)
            y = np.clip(y, -1.0, 1.0)
            clipped += over
        files[key] = audio.save(out / f"{key}.wav", y, sr, subtype="FLOAT")
        timings.extend(records)
        audio_s += wav.shape[0] / sr
    if not files:
        raise ValueError(f"{system.name}: no sources to convert")
    return SystemRun(system.name, out, files, system.sample_rate, audio_s, processing_s, system.chunk_samples,
                     system.lookahead_samples, timings, clipped)


def score_run(run: SystemRun, evalset: EvaluationSet, metrics: Sequence[str], **options: Any) -> SystemResult:
    """:func:`vxlib.eval.evaluate_system` on the run's files against the set's ground truth (10 s
    Resemblyzer pieces cut from the joined ground-truth files), with the run's timing summary added.
    ``options`` go to ``evaluate_system`` (``asr``, ``target``, ``f0_method``, ...)."""
    result = evaluate_system(run.out_dir, evalset.ground_truth_dir, name=run.system, metrics=metrics,
                             concat_ground_truth=True, **evalset.references, **options)
    result.summary.update(run.summary())
    return result


def score_ground_truth(evalset: EvaluationSet, metrics: Sequence[str], name: str = "ground truth",
                       **options: Any) -> SystemResult:
    """The ground-truth row: its own files scored like a system's, without the paired metrics
    (:data:`PAIRED_METRICS`), which would compare each file with itself."""
    unpaired = [m for m in metrics if m not in PAIRED_METRICS]
    return evaluate_system(evalset.ground_truth_dir, evalset.ground_truth_dir, name=name, metrics=unpaired,
                           concat_ground_truth=True, **evalset.references, **options)


def reuse_scores(run: SystemRun, reference: SystemRun, scored: SystemResult, tolerance: float = 1e-4) -> SystemResult:
    """``run``'s row with the quality metrics of ``reference`` (already ``scored``), after checking that
    every output of ``run`` equals ``reference``'s within ``tolerance`` (e.g. exact-mode streaming vs
    offline LLVC); the timing summary is ``run``'s own. Raises ``ValueError`` naming the first
    utterance that differs more. Saves re-running ASR and MOS models on identical audio."""
    diffs = output_differences(run, reference)
    worst = max(diffs, key=diffs.get)
    if diffs[worst] > tolerance:
        raise ValueError(f"{run.files[worst]}: differs from {reference.files[worst]} by {diffs[worst]:.3g} "
                         f"> {tolerance:g}; score {run.system} on its own")
    rows = [{**r, "system": run.system, "file": str(run.files[r["utterance"]])} for r in scored.rows]
    timing_keys = set(reference.summary()) | set(run.summary())
    summary = {k: v for k, v in scored.summary.items() if k not in timing_keys}
    summary.update(system=run.system, **run.summary(), max_abs_diff_to_scored=diffs[worst])
    return SystemResult(run.system, rows, summary)


def output_differences(run: SystemRun, reference: SystemRun) -> dict[str, float]:
    """Max |difference| per utterance between two runs' outputs (e.g. streaming vs offline)."""
    missing = sorted(reference.files.keys() ^ run.files.keys())
    if missing:
        raise ValueError(f"{run.system} and {reference.system} converted different utterances: {missing[:5]}")
    diffs = {}
    for key, path in run.files.items():
        a, _ = audio.load(path)
        b, _ = audio.load(reference.files[key])
        diffs[key] = float(np.abs(a - b).max())
    return diffs
