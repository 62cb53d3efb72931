"""Evaluate a folder of converted speech: the metrics harness behind the CLI and notebook 03.

    result = evaluate_system("runs/llvc_cf1/out", "data/f_8312/dev_gt", name="LLVC cf=1",
                             metrics=("resemblyzer", "dnsmos", "wer", "mcd"), texts="dev_texts.json")
    figures = streaming_figures(converter.timings.records, 16000, converter.chunk_samples, converter.lookahead)
    result.summary.update(figures.to_dict())
    results_table([gt, teacher, sola, result])   # pandas DataFrame, one row per system

Files are matched across folders by *utterance key*: the file name without extension and without
a trailing ``_converted`` / ``_original`` (the LLVC dataset layout), so ``dev/12_converted.wav``
(teacher output), ``dev/12_original.wav`` (source) and ``out/12.wav`` (a system) are one utterance.
Folders are searched recursively for .wav/.flac/.ogg; two files with one key are an error.

Metrics (names for ``metrics=``):

=============== ================================================================= =====================
name            what                                                              needs
=============== ================================================================= =====================
``resemblyzer`` mean dot product with 10 s ground-truth pieces (the LLVC eval)     ``ground_truth``
``speaker_sim`` cosine with the target voice embedding (mean of target files)      ``target`` or ground truth
``dnsmos``      DNSMOS P.835 SIG/BAK/OVRL and P.808 MOS                            --
``wvmos``       WVMOS (evaluation environment only)                                its weights
``wer``         WER/CER of an ASR transcript after normalisation                   ``texts`` or ``source``
``mcd``         DTW-aligned mel-cepstral distortion, dB                             paired ground truth
``f0``          f0 RMSE (Hz, cents), correlation, voicing error                    paired ground truth
=============== ================================================================= =====================

"Paired ground truth" is the file with the same key in ``ground_truth`` (for LLVC: the teacher's
output for that source). Per-utterance numbers are averaged into the system summary, except WER
and CER, which are corpus-level (total edits / total reference words).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from vxlib.audio import AudioError, load, resample
from vxlib.eval import speaker
from vxlib.eval.f0 import f0_metrics
from vxlib.eval.mos import dnsmos, wvmos
from vxlib.eval.spectral import mel_cepstral_distortion
from vxlib.eval.text import error_rates

__all__ = ["METRICS", "DEFAULT_METRICS", "AUDIO_EXTENSIONS", "TABLE_COLUMNS", "utterance_key", "find_audio",
           "load_texts", "SystemResult", "evaluate_system", "results_table", "markdown_table"]

PathLike = str | os.PathLike

METRICS = ("resemblyzer", "speaker_sim", "dnsmos", "wvmos", "wer", "mcd", "f0")
DEFAULT_METRICS = ("resemblyzer", "dnsmos")  # the reference eval.py's pair, with DNSMOS for WVMOS
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
_PAIR_SUFFIX = re.compile(r"_(converted|original)$")

# (summary key, column title) in the order of the LLVC paper's table, then the extra metrics.
TABLE_COLUMNS = (
    ("e2e_latency_ms_mean", "e2e latency (ms)"), ("speed", "speed (x RT)"),
    ("dnsmos_ovrl", "DNSMOS OVRL"), ("dnsmos_p808", "DNSMOS P.808"), ("wvmos", "WVMOS"),
    ("resemblyzer", "Resemblyzer"), ("speaker_sim", "target sim"), ("wer", "WER"), ("cer", "CER"),
    ("mcd_db", "MCD (dB)"), ("f0_rmse_cents", "f0 RMSE (cents)"), ("f0_corr", "f0 corr"), ("vde", "VDE"),
)


def utterance_key(path: PathLike) -> str:
    """File name without extension and without a trailing ``_converted`` / ``_original``."""
    return _PAIR_SUFFIX.sub("", Path(path).stem)


def find_audio(folder: PathLike) -> dict[str, Path]:
    """``{utterance key: path}`` for every audio file under ``folder`` (recursive), sorted by key."""
    root = Path(folder)
    if not root.is_dir():
        raise AudioError(f"{root}: not a directory")
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        key = utterance_key(path)
        if key in found:
            raise AudioError(f"{path}: same utterance key {key!r} as {found[key]} (keys must be unique per folder)")
        found[key] = path
    if not found:
        raise AudioError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return dict(sorted(found.items()))


def load_texts(texts: PathLike | Mapping[str, str]) -> dict[str, str]:
    """Reference texts by utterance key: a mapping, a JSON object file, or a TSV file (``key<TAB>text``)."""
    if isinstance(texts, Mapping):
        return {utterance_key(k): str(v) for k, v in texts.items()}
    path = Path(texts)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: texts file not found")
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object {{utterance: text}}")
        return {utterance_key(k): str(v) for k, v in data.items()}
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, text = line.partition("\t")
        if not sep:
            raise ValueError(f"{path}:{lineno}: expected 'utterance<TAB>text'")
        out[utterance_key(key)] = text.strip()
    return out


@dataclass
class SystemResult:
    """One system's evaluation: ``rows`` (one dict per utterance) and ``summary`` (one dict)."""

    name: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.name, "summary": self.summary, "utterances": self.rows}


# -- cached embeddings of fixed reference sets (ground truth is shared by every system) ----------
def _file_identity(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    return tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)


@functools.lru_cache(maxsize=8)
def _piece_embeddings(files: tuple[tuple[str, int, int], ...], concatenate: bool) -> np.ndarray:
    """``(P, 256)`` embeddings of the 10 s ground-truth pieces; files read at 16 kHz as the reference does."""
    wavs = [load(f[0], sr=speaker.SPEAKER_SAMPLE_RATE)[0] for f in files]
    pieces = speaker.split_ground_truth(wavs, speaker.SPEAKER_SAMPLE_RATE, concatenate=concatenate)
    return np.stack([speaker.speaker_embedding(p, speaker.SPEAKER_SAMPLE_RATE, name=f"ground-truth piece {i}")
                     for i, p in enumerate(pieces)])


@functools.lru_cache(maxsize=8)
def _transcripts(asr, files: tuple[tuple[str, int, int], ...]) -> tuple[str, ...]:
    """Transcripts of source files, once per transcriber and file set (shared by every system)."""
    return tuple(asr.transcribe_file(f[0]) for f in files)


@functools.lru_cache(maxsize=8)
def _voice_embedding(files: tuple[tuple[str, int, int], ...]) -> np.ndarray:
    embs = [speaker.speaker_embedding(*load(f[0]), name=f[0]) for f in files]
    return speaker.target_embedding(np.stack(embs))


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(finite)) if finite else float("nan")


def evaluate_system(converted: PathLike, ground_truth: PathLike | None = None, *, name: str | None = None,
                    metrics: Sequence[str] = DEFAULT_METRICS, texts: PathLike | Mapping[str, str] | None = None,
                    source: PathLike | None = None, target: PathLike | None = None,
                    concat_ground_truth: bool = False, asr=None, f0_method: str = "harvest",
                    wvmos_checkpoint: PathLike | None = None) -> SystemResult:
    """Score every audio file in ``converted`` with ``metrics`` (see the module doc for what each needs).

    ``asr``: a :class:`vxlib.asr.Transcriber` (default: the cached Whisper tiny.en).
    ``concat_ground_truth``: join ground-truth files before cutting 10 s pieces (short-utterance corpora).
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    files = find_audio(converted)
    gt_files = find_audio(ground_truth) if ground_truth is not None else None
    name = name or Path(converted).name

    def need(what: str, value: Any, metric: str) -> None:
        if value is None:
            raise ValueError(f"metric {metric!r} needs {what}")

    paired = [m for m in metrics if m in ("mcd", "f0")]
    if paired:
        need("ground_truth (paired files)", gt_files, paired[0])
        missing = [k for k in files if k not in gt_files]
        if missing:
            raise AudioError(f"{ground_truth}: no paired ground truth for {len(missing)} converted files "
                             f"(e.g. {', '.join(missing[:5])}); {paired} compare files with the same key")

    # Speaker references, computed once per ground-truth set and process.
    pieces = voice = None
    if "resemblyzer" in metrics:
        need("ground_truth", gt_files, "resemblyzer")
        pieces = _piece_embeddings(_file_identity(gt_files.values()), concat_ground_truth)
    if "speaker_sim" in metrics:
        voice_files = find_audio(target) if target is not None else gt_files
        need("target or ground_truth", voice_files, "speaker_sim")
        voice = _voice_embedding(_file_identity(voice_files.values()))

    references: dict[str, str] = {}
    if "wer" in metrics:
        from vxlib.asr import load_transcriber

        asr = asr or load_transcriber()
        if texts is not None:
            references = load_texts(texts)
        elif source is not None:
            src = {k: p for k, p in find_audio(source).items() if k in files}
            references = dict(zip(src, _transcripts(asr, _file_identity(src.values()))))
        else:
            raise ValueError("metric 'wer' needs texts (corpus text) or source (audio to transcribe)")
        missing = [k for k in files if k not in references]
        if missing:
            raise ValueError(f"no reference text for {len(missing)} utterances (e.g. {', '.join(missing[:5])})")

    rows: list[dict[str, Any]] = []
    hypotheses: list[str] = []
    for key, path in files.items():
        wav, sr = load(path)
        row: dict[str, Any] = {"system": name, "utterance": key, "file": str(path), "sr": sr,
                               "duration_s": len(wav) / sr}
        if pieces is not None or voice is not None:
            emb = speaker.speaker_embedding(wav, sr, name=str(path))
            if pieces is not None:
                row["resemblyzer"] = float(speaker.reference_similarity(emb[None], pieces)[0])
            if voice is not None:
                row["speaker_sim"] = float(speaker.target_similarity(emb[None], voice)[0])
        if "dnsmos" in metrics:
            row.update(dnsmos(wav, sr, name=str(path)))
        if "wvmos" in metrics:
            row["wvmos"] = wvmos(wav, sr, wvmos_checkpoint, name=str(path))
        if "wer" in metrics:
            hyp = asr.transcribe(wav, sr)
            rates = error_rates([references[key]], [hyp], names=[key])
            row.update(reference_text=references[key], transcript=hyp, wer=rates.wer, cer=rates.cer)
            hypotheses.append(hyp)
        if paired:
            ref, ref_sr = load(gt_files[key])
            row["ground_truth_file"] = str(gt_files[key])
            if "mcd" in metrics:
                row["mcd_db"] = mel_cepstral_distortion(wav, ref, sr, ref_sr)
            if "f0" in metrics:
                row.update(f0_metrics(wav, resample(ref, ref_sr, sr), sr, method=f0_method))
        rows.append(row)

    summary: dict[str, Any] = {"system": name, "utterances": len(rows),
                               "audio_s": float(sum(r["duration_s"] for r in rows))}
    numeric = [k for k in rows[0] if isinstance(rows[0][k], (int, float)) and k not in ("sr", "duration_s")]
    for k in numeric:
        summary[k] = _mean([r.get(k) for r in rows])
    if "wer" in metrics:
        corpus = error_rates([references[k] for k in files], hypotheses, names=list(files))
        summary.update(corpus.to_dict())
    return SystemResult(name, rows, summary)


def _summary(result: SystemResult | Mapping[str, Any]) -> Mapping[str, Any]:
    return result.summary if isinstance(result, SystemResult) else result


def results_table(results: Sequence[SystemResult | Mapping[str, Any]]):
    """One row per system (index: system name), columns in :data:`TABLE_COLUMNS` order (only those
    any system has), then any other numeric summary figure. Returns a pandas DataFrame."""
    import pandas as pd

    summaries = [dict(_summary(r)) for r in results]
    for s, r in zip(summaries, results):
        s.setdefault("system", r.name if isinstance(r, SystemResult) else "?")
    frame = pd.DataFrame(summaries).set_index("system")
    ordered = [k for k, _ in TABLE_COLUMNS if k in frame.columns]
    rest = [c for c in frame.columns if c not in ordered]
    return frame[ordered + rest]


def markdown_table(results: Sequence[SystemResult | Mapping[str, Any]], digits: int = 3) -> str:
    """The paper-style table (:data:`TABLE_COLUMNS` present in any result) as GitHub Markdown; "–" where
    a system lacks a figure."""
    summaries = [_summary(r) for r in results]
    cols = [(k, title) for k, title in TABLE_COLUMNS if any(k in s for s in summaries)]
    lines = ["| system | " + " | ".join(t for _, t in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r, s in zip(results, summaries):
        label = r.name if isinstance(r, SystemResult) else s.get("system", "?")
        cells = []
        for k, _ in cols:
            v = s.get(k)
            cells.append("–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
