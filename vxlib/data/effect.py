"""How much a teacher changes the speaker, and whether the words survive.

For each (original, converted) pair, with the project's shared evaluation pieces:

- ``similarity``: cosine similarity of Resemblyzer speaker embeddings
  (:func:`vxlib.eval.speaker.speaker_embedding`), next to ``copy_synthesis_similarity``, the same
  measure after WORLD analysis/resynthesis with nothing changed (the vocoder's own footprint,
  ~0.97), so the drop below it is the teacher's doing;
- ``f0_ratio``: median voiced f0 of the converted over the original (harvest,
  :func:`vxlib.eval.f0.extract_f0`), e.g. 2.0 for ``f0_up_key=12``;
- ``wer_original`` / ``wer_converted``: corpus-level word error rate of Whisper tiny.en
  (:func:`vxlib.asr.load_transcriber`) against the text (:func:`vxlib.eval.text.error_rates`).

CLI: ``python -m vxlib.data.effect <dataset> [--split dev] [--limit 20]`` prints the figures for a
pair dataset written by :mod:`vxlib.data.make_pairs`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vxlib import audio
from vxlib.data.pairs import Utterance, list_pairs, read_manifest
from vxlib.data.teachers.base import Teacher
from vxlib.data.teachers.world import world_analyze, world_synthesize

__all__ = ["measure_teacher_effect", "measure_dataset_effect"]

SR = 16000  # Resemblyzer, Whisper and the f0 extractor all work at 16 kHz


def _median_f0(x: np.ndarray, name: str) -> float:
    from vxlib.eval.f0 import extract_f0

    f0 = extract_f0(x, SR, "harvest", name=name)
    return float(np.median(f0[f0 > 0])) if (f0 > 0).any() else float("nan")


def _effect(pairs: list[tuple[str, np.ndarray, np.ndarray, str]], asr: bool, progress: bool) -> dict:
    from vxlib.eval.speaker import speaker_embedding

    rows = []
    for name, original, converted, _ in tqdm(pairs, desc="measuring", disable=not progress):
        f0, sp, ap = world_analyze(original, SR, "harvest")
        copy = world_synthesize(f0, sp, ap, SR, len(original))
        e_orig = speaker_embedding(original, SR, f"{name} original")
        rows.append(
            {
                "name": name,
                "similarity": float(e_orig @ speaker_embedding(converted, SR, f"{name} converted")),
                "copy_synthesis_similarity": float(e_orig @ speaker_embedding(copy, SR, f"{name} copy-synthesis")),
                "f0_ratio": _median_f0(converted, f"{name} converted") / _median_f0(original, f"{name} original"),
            }
        )
    result = {k: float(np.nanmean([r[k] for r in rows])) for k in ("similarity", "copy_synthesis_similarity", "f0_ratio")}
    scored = [(name, o, c, t) for name, o, c, t in pairs if t]
    if asr and scored:
        from vxlib.asr import load_transcriber
        from vxlib.eval.text import error_rates

        whisper = load_transcriber("whisper")
        names, texts = [p[0] for p in scored], [p[3] for p in scored]
        for key, idx in (("wer_original", 1), ("wer_converted", 2)):
            hyps = [whisper.transcribe(p[idx], SR) for p in tqdm(scored, desc=key, disable=not progress)]
            result[key] = error_rates(texts, hyps, names).wer
    return {**result, "n": len(rows), "rows": rows}


def measure_teacher_effect(teacher: Teacher, utterances: list[Utterance], asr: bool = True, progress: bool = True) -> dict:
    """Convert ``utterances`` (loaded at 16 kHz) with ``teacher`` and measure; returns the means
    (``similarity``, ``copy_synthesis_similarity``, ``f0_ratio``, ``wer_original``, ``wer_converted``),
    ``n`` and per-utterance ``rows``."""
    pairs = []
    for u in utterances:
        x, _ = audio.load(u.path, sr=SR)
        pairs.append((u.id, x, teacher.convert(x, SR), u.text))
    return _effect(pairs, asr, progress)


def measure_dataset_effect(root: str | os.PathLike, split: str = "dev", limit: int | None = 20, asr: bool = True, progress: bool = True) -> dict:
    """The same measures on the first ``limit`` pairs of a written dataset (texts from its manifest)."""
    root = Path(root)
    texts = {(r["split"], r["prefix"]): r["text"] for r in read_manifest(root)}
    pairs = []
    for prefix, orig, conv in list_pairs(root, split)[:limit]:
        x, sr = audio.load(orig, sr=SR)
        y, _ = audio.load(conv, sr=SR)
        pairs.append((prefix, x, y, texts.get((split, prefix), "")))
    return _effect(pairs, asr, progress)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vxlib.data.effect", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="pair dataset folder (made by vxlib.data.make_pairs)")
    p.add_argument("--split", default="dev")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--no_asr", action="store_true", help="skip the Whisper WER")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    result = measure_dataset_effect(args.dataset, args.split, args.limit, asr=not args.no_asr)
    for k, v in result.items():
        if k != "rows":
            print(f"{k:28s} {v:.3f}" if isinstance(v, float) else f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
