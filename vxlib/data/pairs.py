"""The paired dataset LLVC trains on: layout, manifest, dataset card and validation.

Layout (the reference LLVC data layout, so the paper's own data reads unchanged)::

    <root>/train/PREFIX_original.wav   source utterance, mono, ``sample_rate`` Hz
    <root>/train/PREFIX_converted.wav  the same utterance converted by the teacher, same length
    <root>/val/...   <root>/dev/...
    <root>/manifest.jsonl              one row per pair (see :class:`PairRecord`)
    <root>/dataset_card.json, .md      counts, hours and speakers per split, teacher settings
    <root>/.shards/                    per-shard manifests, merged into manifest.jsonl

Readers (the LLVC trainer) use :func:`list_pairs` and :func:`validate_dataset`; writers
(:mod:`vxlib.data.make_pairs`) use :func:`write_shard_manifest`, :func:`merge_shards`.
Source utterances (LibriSpeech, the local corpus, a plain folder) are :class:`Utterance` rows.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vxlib import audio

__all__ = [
    "SPLITS",
    "ORIGINAL_SUFFIX",
    "CONVERTED_SUFFIX",
    "DatasetError",
    "Utterance",
    "PairRecord",
    "ValidationReport",
    "pair_paths",
    "list_pairs",
    "validate_dataset",
    "read_manifest",
    "write_jsonl",
    "shard_manifest_path",
    "write_shard_manifest",
    "merge_shards",
    "dataset_card",
]

SPLITS = ("train", "val", "dev")
ORIGINAL_SUFFIX = "_original.wav"
CONVERTED_SUFFIX = "_converted.wav"
MANIFEST = "manifest.jsonl"
SHARD_DIR = ".shards"

PathLike = str | os.PathLike


class DatasetError(ValueError):
    """A dataset or source folder that cannot be used; the message names every bad file."""


@dataclass(frozen=True)
class Utterance:
    """One source recording: ``id`` is unique within its set and becomes the pair's PREFIX."""

    id: str
    path: Path
    speaker: str
    text: str = ""


@dataclass(frozen=True)
class PairRecord:
    """One manifest row; the pair's files are :func:`pair_paths` ``(root, split, prefix)``."""

    prefix: str
    split: str
    speaker: str
    text: str
    duration: float  # seconds, of both halves
    source: str  # the source file the original was made from
    teacher: str
    f0_method: str | None
    converted_gain: float  # scale applied to the teacher output to keep it below full scale


def pair_paths(root: PathLike, split: str, prefix: str) -> tuple[Path, Path]:
    """``(original, converted)`` paths of one pair."""
    d = Path(root) / split
    return d / f"{prefix}{ORIGINAL_SUFFIX}", d / f"{prefix}{CONVERTED_SUFFIX}"


def _scan_split(root: Path, split: str) -> tuple[dict[str, Path], dict[str, Path]]:
    d = root / split
    if not d.is_dir():
        raise DatasetError(f"{d}: split folder not found (a dataset has {'/'.join(SPLITS)} folders)")
    originals = {p.name[: -len(ORIGINAL_SUFFIX)]: p for p in d.glob(f"*{ORIGINAL_SUFFIX}")}
    converted = {p.name[: -len(CONVERTED_SUFFIX)]: p for p in d.glob(f"*{CONVERTED_SUFFIX}")}
    return originals, converted


def _missing_halves(root: Path, split: str, originals: dict, converted: dict) -> list[str]:
    problems = []
    for prefix in sorted(originals.keys() - converted.keys()):
        problems.append(f"{pair_paths(root, split, prefix)[1]}: missing (its original exists)")
    for prefix in sorted(converted.keys() - originals.keys()):
        problems.append(f"{pair_paths(root, split, prefix)[0]}: missing (its converted file exists)")
    return problems


def list_pairs(root: PathLike, split: str) -> list[tuple[str, Path, Path]]:
    """All pairs of one split as ``(prefix, original_path, converted_path)``, sorted by prefix.

    Raises :class:`DatasetError` naming every pair with a missing half, so a trainer never
    silently trains on fewer pairs than the folder seems to hold. Audio content is not read
    here; :func:`validate_dataset` does that.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r} (expected one of {SPLITS})")
    root = Path(root)
    originals, converted = _scan_split(root, split)
    problems = _missing_halves(root, split, originals, converted)
    if problems:
        raise DatasetError(f"{root / split}: {len(problems)} incomplete pair(s):\n  " + "\n  ".join(problems))
    return [(p, originals[p], converted[p]) for p in sorted(originals)]


@dataclass
class ValidationReport:
    """What :func:`validate_dataset` found: pair counts and hours per split, and every problem by file."""

    root: Path
    pairs: dict[str, int] = field(default_factory=dict)
    hours: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self) -> "ValidationReport":
        if self.problems:
            shown = self.problems[:50]
            more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
            raise DatasetError(
                f"{self.root}: invalid dataset, {len(self.problems)} problem(s):\n  " + "\n  ".join(shown) + more
            )
        return self


def _check_half(path: Path, sample_rate: int) -> tuple[int | None, str | None]:
    """Frames of one half, or a problem description naming it."""
    try:
        meta = audio.info(path)
        if meta.sample_rate != sample_rate:
            return None, f"{path}: sample rate {meta.sample_rate} Hz, expected {sample_rate} Hz"
        if meta.channels != 1:
            return None, f"{path}: {meta.channels} channels, expected mono"
        x, _ = audio.load(path)
    except audio.AudioError as err:  # unreadable, truncated, empty, NaN/inf
        return None, str(err)
    if not np.abs(x).max() > 0:
        return None, f"{path}: all samples are zero"
    return meta.frames, None


def validate_dataset(
    root: PathLike, sample_rate: int = 16000, splits: tuple[str, ...] = SPLITS, raise_on_error: bool = True
) -> ValidationReport:
    """Check every pair: both halves present, readable, mono, ``sample_rate``, finite, non-silent,
    and of equal length. A split folder may be empty (e.g. ``val`` with ``val_percent=0``) but must exist.

    Returns the report; with ``raise_on_error`` (default) a report with problems raises
    :class:`DatasetError` listing each bad file by name.
    """
    root = Path(root)
    report = ValidationReport(root)
    if not root.is_dir():
        report.problems.append(f"{root}: dataset folder not found")
        return report.raise_if_invalid() if raise_on_error else report
    for split in splits:
        try:
            originals, converted = _scan_split(root, split)
        except DatasetError as err:
            report.problems.append(str(err))
            continue
        report.problems += _missing_halves(root, split, originals, converted)
        frames_total, n = 0, 0
        for prefix in sorted(originals.keys() & converted.keys()):
            n_orig, bad_orig = _check_half(originals[prefix], sample_rate)
            n_conv, bad_conv = _check_half(converted[prefix], sample_rate)
            report.problems += [b for b in (bad_orig, bad_conv) if b]
            if n_orig is not None and n_conv is not None:
                if n_orig != n_conv:
                    report.problems.append(
                        f"{root / split}/{prefix}: length mismatch, original {n_orig} samples, converted {n_conv}"
                    )
                else:
                    frames_total += n_orig
                    n += 1
        report.pairs[split] = n
        report.hours[split] = frames_total / sample_rate / 3600
    return report.raise_if_invalid() if raise_on_error else report


# ---------------------------------------------------------------- manifests and the card


def write_jsonl(path: PathLike, rows: list[dict]) -> Path:
    """Write rows as JSON lines atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(path: PathLike) -> list[dict]:
    """Rows of a JSON-lines manifest; a bad line raises naming the file and line number."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.exists():
        raise DatasetError(f"{path}: manifest not found")
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise DatasetError(f"{path}:{i}: not valid JSON ({err})") from err
    return rows


def shard_manifest_path(root: PathLike, num_shards: int, shard_index: int) -> Path:
    return Path(root) / SHARD_DIR / f"manifest-{shard_index:05d}-of-{num_shards:05d}.jsonl"


def write_shard_manifest(root: PathLike, num_shards: int, shard_index: int, records: list[PairRecord], settings: dict) -> Path:
    """One shard's rows plus (first line) the settings it ran with, so the merge can check that
    all shards were made the same way."""
    rows = [{"settings": settings}] + [asdict(r) for r in records]
    return write_jsonl(shard_manifest_path(root, num_shards, shard_index), rows)


def merge_shards(root: PathLike, sample_rate: int | None = None, validate: bool = True) -> dict:
    """Merge all shard manifests into ``manifest.jsonl`` and write the dataset card.

    Refuses (naming them) when shards are missing or were made with different settings, and by
    default validates the whole dataset first (at ``sample_rate``, default: the shards' ``target_sr``).
    Returns the card (a dict).
    """
    root = Path(root)
    parts = sorted((root / SHARD_DIR).glob("manifest-*-of-*.jsonl"))
    if not parts:
        raise DatasetError(f"{root / SHARD_DIR}: no shard manifests to merge (run make_pairs first)")
    counts = {int(p.stem.split("-of-")[1]) for p in parts}
    if len(counts) != 1:
        raise DatasetError(f"{root}: shard manifests from different --num_shards runs: {[p.name for p in parts]}")
    num_shards = counts.pop()
    missing = [shard_manifest_path(root, num_shards, i).name for i in range(num_shards) if not shard_manifest_path(root, num_shards, i).exists()]
    if missing:
        raise DatasetError(f"{root / SHARD_DIR}: {len(missing)} of {num_shards} shards not finished: {missing}")
    settings, rows = None, []
    for p in parts:
        head, *body = read_manifest(p)
        if settings is None:
            settings = head["settings"]
        elif head["settings"] != settings:
            raise DatasetError(f"{p}: made with different settings than the other shards: {head['settings']} vs {settings}")
        rows += body
    rows.sort(key=lambda r: (SPLITS.index(r["split"]), r["prefix"]))
    sample_rate = sample_rate or settings.get("target_sr", 16000)
    if validate:
        validate_dataset(root, sample_rate=sample_rate)
        on_disk = {(s, p) for s in SPLITS for p, _, _ in list_pairs(root, s)}
        in_manifest = {(r["split"], r["prefix"]) for r in rows}
        stray = sorted(on_disk - in_manifest)
        if stray:
            raise DatasetError(f"{root}: pairs on disk that no shard wrote (left from another run?): {stray[:20]}")
    write_jsonl(root / MANIFEST, rows)
    card = dataset_card(rows, settings, sample_rate)
    (root / "dataset_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (root / "dataset_card.md").write_text(_card_markdown(card), encoding="utf-8")
    return card


def dataset_card(rows: list[dict], settings: dict, sample_rate: int) -> dict:
    """Counts, hours and speakers per split, plus the settings that made the data."""
    per_split: dict[str, dict] = {}
    by_split: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_split[r["split"]].append(r)
    for split in SPLITS:
        rs = by_split.get(split, [])
        speakers = sorted({r["speaker"] for r in rs})
        per_split[split] = {
            "pairs": len(rs),
            "hours": round(sum(r["duration"] for r in rs) / 3600, 4),
            "num_speakers": len(speakers),
            "speakers": speakers,
        }
    return {"sample_rate": sample_rate, "splits": per_split, "settings": settings}


def _card_markdown(card: dict) -> str:
    lines = [
        "# Dataset card",
        "",
        f"Pairs `PREFIX_original.wav` / `PREFIX_converted.wav`, {card['sample_rate']} Hz mono, equal lengths.",
        "",
        "| split | pairs | hours | speakers |",
        "|---|---|---|---|",
    ]
    for split, s in card["splits"].items():
        names = ", ".join(s["speakers"][:12]) + (" ..." if len(s["speakers"]) > 12 else "")
        lines.append(f"| {split} | {s['pairs']} | {s['hours']:.3f} | {s['num_speakers']} ({names}) |")
    lines += ["", "## Settings", "", "```json", json.dumps(card["settings"], indent=2), "```", ""]
    return "\n".join(lines)
