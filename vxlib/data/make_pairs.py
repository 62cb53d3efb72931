"""Make LLVC's paired data: source utterances -> teacher -> ``<out>/{train,val,dev}`` pairs.

Mirrors the reference ``minimal_rvc._infer_folder`` (same flags, same data layout, same
train/val membership for the same files and seed: ids sorted, ``np.random.seed(seed)``-style
shuffle, the first ``int(n * val_percent)`` go to val), with what a multi-day job needs on top:

- any :class:`~vxlib.data.teachers.base.Teacher` from a registry (``world`` embedded, ``rvc`` the
  official RVC models, imported only when asked for);
- deterministic sharding: shard ``i`` of ``N`` converts every N-th pair of the sorted plan and
  writes only its own files and ``.shards/manifest-i-of-N.jsonl``; a merge step then validates
  the dataset and writes ``manifest.jsonl`` and the dataset card;
- resumable: a pair whose two files exist is not converted again (files appear atomically).

CLI (``python -m vxlib.data.make_pairs -h``)::

    python -m vxlib.data.make_pairs --train_set_path LibriSpeech/train-clean-360 \\
        --dev_set_path LibriSpeech/dev-clean --out_path data/f_8312_ls360 --flatten \\
        --teacher rvc --model_path f_8312_32k-325.pth --hubert_path checkpoint_best_legacy_500.pt \\
        --f0_method rmvpe --rmvpe_path rmvpe.pt --f0_up_key 12 --num_shards 8 --shard_index 0
    ...  (shards 1..7, anywhere)
    python -m vxlib.data.make_pairs --out_path data/f_8312_ls360 --merge_only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from vxlib import audio
from vxlib.data import corpus, librispeech
from vxlib.data.pairs import (
    SPLITS,
    DatasetError,
    PairRecord,
    Utterance,
    merge_shards,
    pair_paths,
    write_shard_manifest,
)
from vxlib.data.teachers.base import Teacher

__all__ = [
    "TEACHERS",
    "make_teacher",
    "read_source",
    "PairJob",
    "plan_pairs",
    "shard_jobs",
    "write_pairs",
    "make_pairs",
    "main",
]

PathLike = str | os.PathLike
LAYOUTS = ("auto", "librispeech", "corpus", "folder")
AUDIO_SUFFIXES = (".wav", ".flac")
PEAK_LIMIT = 0.99  # converted audio above this is scaled down (PCM_16 would clip); the gain is recorded


# ---------------------------------------------------------------- teachers


def _world(**options) -> Teacher:
    from vxlib.data.teachers.world import WorldTeacher

    return WorldTeacher(**options)


def _rvc(model_path: PathLike | None = None, hubert_path: PathLike | None = None, **options) -> Teacher:
    if model_path is None or hubert_path is None:
        raise ValueError(
            "the rvc teacher needs model_path (an official RVC synthesizer .pth) and hubert_path "
            "(a ContentVec/HuBERT fairseq checkpoint, e.g. checkpoint_best_legacy_500.pt)"
        )
    from vxlib.data.teachers.rvc import RVCTeacher

    return RVCTeacher(model_path, hubert_path, **options)


# name -> factory(**options); a factory imports its teacher only when called.
TEACHERS: dict[str, Callable[..., Teacher]] = {"world": _world, "rvc": _rvc}


def make_teacher(name: str, **options) -> Teacher:
    """Build a teacher by registry name; options that are ``None`` are left to the teacher's defaults.

    ``world``: ``profile, f0_method (harvest|dio), f0_up_key``.
    ``rvc``: ``model_path, hubert_path`` (required), ``f0_method, f0_up_key, rmvpe_path, device``, see
    :class:`vxlib.data.teachers.rvc.RVCTeacher`.
    """
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r} (known: {sorted(TEACHERS)})")
    return TEACHERS[name](**{k: v for k, v in options.items() if v is not None})


# ---------------------------------------------------------------- sources


def _read_audio_folder(root: Path) -> list[Utterance]:
    """Any folder of .wav/.flac files; the speaker is the first sub-folder (or ``root``'s name)."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"{root}: no .wav or .flac files found")
    utts = []
    for p in files:
        rel = p.relative_to(root)
        speaker = rel.parts[0] if len(rel.parts) > 1 else root.name
        utts.append(Utterance(p.stem, p, speaker))
    return utts


def read_source(path: PathLike, layout: str = "auto") -> list[Utterance]:
    """Utterances of one source set, sorted by id.

    ``layout``: ``librispeech`` (``<speaker>/<chapter>/*.flac`` + transcripts), ``corpus`` (a part of
    :func:`vxlib.data.corpus.build_corpus`), ``folder`` (any audio files, speaker = first
    sub-folder), or ``auto``: corpus if it has a corpus manifest, LibriSpeech if it has
    ``*.trans.txt``, else folder. Ids must be unique (they become file names).
    """
    root = Path(path)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not root.is_dir():
        raise DatasetError(f"{root}: source folder not found")
    if layout == "auto":
        layout = "corpus" if corpus.is_corpus(root) else "librispeech" if librispeech.is_librispeech(root) else "folder"
    reader = {"librispeech": librispeech.read_librispeech, "corpus": corpus.read_corpus, "folder": _read_audio_folder}[layout]
    utts = reader(root)
    seen: dict[str, Path] = {}
    dups = []
    for u in utts:
        if u.id in seen:
            dups.append(f"{u.path} and {seen[u.id]}")
        seen[u.id] = u.path
    if dups:
        raise DatasetError(f"{root}: {len(dups)} file(s) share an id (file stem): {dups[:10]}")
    return utts


# ---------------------------------------------------------------- planning


@dataclass(frozen=True)
class PairJob:
    prefix: str
    split: str
    utterance: Utterance


def plan_pairs(train: list[Utterance], dev: list[Utterance], val_percent: float, random_seed: int) -> list[PairJob]:
    """Every pair to make, sorted by (split, prefix). Val is drawn from ``train`` as the reference
    does (per utterance, not per speaker); ``dev`` must not share speakers with ``train``."""
    if not 0.0 <= val_percent <= 1.0:
        raise ValueError(f"val_percent must be within [0, 1], got {val_percent}")
    librispeech.check_speaker_disjoint(train, dev)
    train = sorted(train, key=lambda u: u.id)
    order = np.arange(len(train))
    np.random.RandomState(random_seed).shuffle(order)  # the same permutation as np.random.seed + shuffle
    val_ids = {train[i].id for i in order[: int(len(train) * val_percent)]}
    jobs = [PairJob(u.id, "val" if u.id in val_ids else "train", u) for u in train]
    jobs += [PairJob(u.id, "dev", u) for u in dev]
    return sorted(jobs, key=lambda j: (SPLITS.index(j.split), j.prefix))


def shard_jobs(jobs: list[PairJob], num_shards: int, shard_index: int) -> list[PairJob]:
    """Shard ``shard_index`` of ``num_shards``: every ``num_shards``-th job (balanced across splits)."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need num_shards >= 1 and 0 <= shard_index < num_shards, got {shard_index} of {num_shards}")
    return jobs[shard_index::num_shards]


# ---------------------------------------------------------------- conversion

_worker_teacher: Teacher | None = None


def _init_worker(teacher: Teacher, threads: int) -> None:
    global _worker_teacher
    _worker_teacher = teacher
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def _convert_one(job: PairJob, out_path: Path, target_sr: int, teacher: Teacher | None = None) -> tuple[PairRecord, bool]:
    """Write one pair unless both files exist; returns its manifest record and whether it was written."""
    teacher = teacher or _worker_teacher
    desc = teacher.describe()
    original, converted = pair_paths(out_path, job.split, job.prefix)
    gain, written = 1.0, False
    if original.exists() and converted.exists():
        frames = audio.info(original).frames
    else:
        wav, _ = audio.load(job.utterance.path, sr=target_sr)
        out = np.asarray(teacher.convert(wav, target_sr), dtype=np.float32)
        if out.shape != wav.shape:
            raise DatasetError(f"{job.utterance.path}: teacher {teacher.name} returned shape {out.shape} for input {wav.shape}")
        if not np.isfinite(out).all():
            raise DatasetError(f"{job.utterance.path}: teacher {teacher.name} returned NaN/inf")
        top = float(np.abs(out).max())
        if top > PEAK_LIMIT:
            gain = PEAK_LIMIT / top
            out = out * gain
        audio.save(original, wav, target_sr)
        audio.save(converted, out, target_sr)  # written last: its presence marks the pair done
        frames, written = len(wav), True
    record = PairRecord(
        prefix=job.prefix,
        split=job.split,
        speaker=job.utterance.speaker,
        text=job.utterance.text,
        duration=round(frames / target_sr, 4),
        source=str(job.utterance.path),
        teacher=desc.get("teacher", teacher.name),
        f0_method=desc.get("f0_method"),
        converted_gain=round(gain, 6),
    )
    return record, written


def write_pairs(
    jobs: list[PairJob], teacher: Teacher, out_path: PathLike, target_sr: int = 16000, workers: int = 1, progress: bool = True
) -> tuple[list[PairRecord], int]:
    """Convert and write ``jobs``; returns ``(records in job order, number of pairs written)``.

    ``workers > 1`` runs that many processes, each with a pickled copy of ``teacher`` and one
    intra-op thread (for CPU teachers; a GPU teacher runs one process per GPU via sharding).
    """
    out_path = Path(out_path)
    for split in SPLITS:
        (out_path / split).mkdir(parents=True, exist_ok=True)
    results: dict[int, tuple[PairRecord, bool]] = {}
    bar = tqdm(total=len(jobs), desc=f"pairs ({teacher.name})", unit="pair", disable=not progress)
    if workers <= 1:
        for i, job in enumerate(jobs):
            results[i] = _convert_one(job, out_path, target_sr, teacher)
            bar.update()
    else:
        ctx = get_context("spawn")  # fork after torch/onnxruntime threads started is unsafe
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(teacher, 1)) as pool:
            futures = {pool.submit(_convert_one, job, out_path, target_sr): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    ordered = [results[i] for i in range(len(jobs))]
    return [r for r, _ in ordered], sum(w for _, w in ordered)


def make_pairs(
    train_set_path: PathLike,
    dev_set_path: PathLike,
    out_path: PathLike,
    teacher: Teacher,
    layout: str = "auto",
    val_percent: float = 0.02,
    random_seed: int = 42,
    target_sr: int = 16000,
    num_shards: int = 1,
    shard_index: int = 0,
    merge: bool | None = None,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Plan, convert this shard's pairs and (when ``merge``, default: single shard) merge.

    Returns ``{"out_path", "shard", "pairs", "written", "seconds", "card"}`` (``card`` is None when
    not merged). ``val_percent=0.02, random_seed=42`` are the paper's values.
    """
    t0 = time.perf_counter()
    out_path = Path(out_path)
    train = read_source(train_set_path, layout)
    dev = read_source(dev_set_path, layout)
    jobs = shard_jobs(plan_pairs(train, dev, val_percent, random_seed), num_shards, shard_index)
    records, written = write_pairs(jobs, teacher, out_path, target_sr, workers, progress)
    settings = {
        "train_set_path": str(train_set_path),
        "dev_set_path": str(dev_set_path),
        "layout": layout,
        "val_percent": val_percent,
        "random_seed": random_seed,
        "target_sr": target_sr,
        "num_shards": num_shards,
        "teacher": teacher.describe(),
    }
    write_shard_manifest(out_path, num_shards, shard_index, records, settings)
    card = None
    if merge if merge is not None else num_shards == 1:
        card = merge_shards(out_path, sample_rate=target_sr)
    return {
        "out_path": out_path,
        "shard": f"{shard_index}/{num_shards}",
        "pairs": len(records),
        "written": written,
        "seconds": round(time.perf_counter() - t0, 2),
        "card": card,
    }


# ---------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vxlib.data.make_pairs",
        description="Convert source speech with a teacher into LLVC's <out>/{train,val,dev} pairs.",
    )
    p.add_argument("--train_set_path", help="source set for train/val (e.g. LibriSpeech/train-clean-360, or <corpus>/train)")
    p.add_argument("--dev_set_path", help="source set for dev, speakers unseen in train (e.g. LibriSpeech/dev-clean)")
    p.add_argument("--out_path", required=True, help="dataset folder to write")
    p.add_argument("--flatten", action="store_true", help="sources are in LibriSpeech layout (the reference flag; same as --layout librispeech)")
    p.add_argument("--layout", choices=LAYOUTS, default="auto", help="source layout (default: detect)")
    p.add_argument("--val_percent", type=float, default=0.02, help="fraction of train utterances held out as val (paper: 0.02; reference script default 0.1)")
    p.add_argument("--random_seed", type=int, default=42, help="seed of the val split (paper: 42)")
    p.add_argument("--target_sr", type=int, default=16000, help="sample rate of the pairs (LLVC: 16000)")
    p.add_argument("--teacher", choices=sorted(TEACHERS), default="world", help="world: embedded DSP teacher; rvc: official RVC models")
    p.add_argument("--f0_up_key", type=float, default=None, help="semitones (paper's RVC teacher: 12); world default: map pitch to its profile")
    p.add_argument("--f0_method", default=None, help="world: harvest|dio; rvc: harvest|dio|crepe|rmvpe (paper: rmvpe)")
    p.add_argument("--profile", default=None, help="world: target profile name or JSON path (default: 'default')")
    p.add_argument("--model_path", default=None, help="rvc: synthesizer .pth")
    p.add_argument("--hubert_path", default=None, help="rvc: ContentVec/HuBERT fairseq checkpoint")
    p.add_argument("--rmvpe_path", default=None, help="rvc: rmvpe.pt (for --f0_method rmvpe)")
    p.add_argument("--device", default=None, help="rvc: torch device (default cpu)")
    p.add_argument("--num_shards", type=int, default=None, help="split the work into N shards (default: WORLD_SIZE under torchrun, else 1)")
    p.add_argument("--shard_index", type=int, default=None, help="which shard this process converts (default: RANK under torchrun, else 0)")
    p.add_argument("--merge_only", action="store_true", help="only merge finished shards: validate, write manifest.jsonl and the card")
    p.add_argument("--workers", type=int, default=1, help="processes for CPU teachers")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.merge_only:
        card = merge_shards(args.out_path)
        print(_summary(card))
        return 0
    if not args.train_set_path or not args.dev_set_path:
        _parser().error("--train_set_path and --dev_set_path are required unless --merge_only")
    # torchrun sets RANK / WORLD_SIZE; explicit flags win.
    num_shards = args.num_shards if args.num_shards is not None else int(os.environ.get("WORLD_SIZE", 1))
    shard_index = args.shard_index if args.shard_index is not None else int(os.environ.get("RANK", 0))
    if args.teacher == "world":
        options = {"profile": args.profile, "f0_method": args.f0_method, "f0_up_key": args.f0_up_key}
    else:
        options = {
            "model_path": args.model_path,
            "hubert_path": args.hubert_path,
            "rmvpe_path": args.rmvpe_path,
            "f0_method": args.f0_method,
            "f0_up_key": args.f0_up_key,
            "device": args.device,
        }
    teacher = make_teacher(args.teacher, **options)
    result = make_pairs(
        args.train_set_path,
        args.dev_set_path,
        args.out_path,
        teacher,
        layout="librispeech" if args.flatten else args.layout,
        val_percent=args.val_percent,
        random_seed=args.random_seed,
        target_sr=args.target_sr,
        num_shards=num_shards,
        shard_index=shard_index,
        workers=args.workers,
    )
    print(f"shard {result['shard']}: {result['pairs']} pairs, {result['written']} written, {result['seconds']} s")
    if result["card"] is not None:
        print(_summary(result["card"]))
    elif num_shards > 1:
        print(f"when all {num_shards} shards are done: python -m vxlib.data.make_pairs --out_path {args.out_path} --merge_only")
    return 0


def _summary(card: dict) -> str:
    return "\n".join(
        f"{split:5s} {s['pairs']:7d} pairs {s['hours']:8.3f} h {s['num_speakers']:5d} speakers" for split, s in card["splits"].items()
    )


if __name__ == "__main__":
    sys.exit(main())
