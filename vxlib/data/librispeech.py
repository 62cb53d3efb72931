"""LibriSpeech-layout reader: ``<set>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with one
``<speaker>-<chapter>.trans.txt`` per chapter (lines ``<utt-id> <UPPER CASE TEXT>``).

The paper's pairs take train/val from ``train-clean-360`` and dev from ``dev-clean``; LibriSpeech
subsets have disjoint speakers by construction, and :func:`check_speaker_disjoint` verifies it for
whatever two sets the user passes.
"""

from __future__ import annotations

import os
from pathlib import Path

from vxlib.data.pairs import DatasetError, Utterance

__all__ = ["read_librispeech", "is_librispeech", "check_speaker_disjoint"]

PathLike = str | os.PathLike


def is_librispeech(root: PathLike) -> bool:
    """True when ``root`` holds ``<speaker>/<chapter>/*.trans.txt`` files."""
    return any(Path(root).glob("*/*/*.trans.txt"))


def _read_transcripts(trans: Path) -> dict[str, str]:
    texts = {}
    for i, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt_id, _, text = line.strip().partition(" ")
        if not text:
            raise DatasetError(f"{trans}:{i}: expected '<utterance-id> <text>', got {line!r}")
        texts[utt_id] = text
    return texts


def read_librispeech(root: PathLike) -> list[Utterance]:
    """All utterances of one LibriSpeech set (e.g. ``.../LibriSpeech/dev-clean``), sorted by id.

    Every ``.flac`` must have a transcript line and every transcript line a ``.flac``; otherwise
    :class:`DatasetError` lists the offending files (a half-extracted archive is caught here).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: LibriSpeech set folder not found")
    utterances, problems = [], []
    chapters = sorted(p for p in root.glob("*/*") if p.is_dir())
    for chapter in chapters:
        speaker = chapter.parent.name
        trans = chapter / f"{speaker}-{chapter.name}.trans.txt"
        flacs = {p.stem: p for p in chapter.glob("*.flac")}
        if not trans.exists():
            if flacs:
                problems.append(f"{trans}: transcript missing for {len(flacs)} .flac files")
            continue
        texts = _read_transcripts(trans)
        for utt_id in sorted(texts.keys() - flacs.keys()):
            problems.append(f"{chapter / (utt_id + '.flac')}: listed in {trans.name} but missing")
        for utt_id in sorted(flacs.keys() - texts.keys()):
            problems.append(f"{flacs[utt_id]}: no line in {trans.name}")
        for utt_id in sorted(flacs.keys() & texts.keys()):
            utterances.append(Utterance(utt_id, flacs[utt_id], speaker, texts[utt_id]))
    if problems:
        raise DatasetError(f"{root}: {len(problems)} problem(s) in the LibriSpeech layout:\n  " + "\n  ".join(problems[:50]))
    if not utterances:
        raise DatasetError(f"{root}: no utterances found (expected <speaker>/<chapter>/*.flac + *.trans.txt)")
    return sorted(utterances, key=lambda u: u.id)


def check_speaker_disjoint(train: list[Utterance], dev: list[Utterance]) -> None:
    """Raise naming the shared speakers if the dev set has speakers seen in training."""
    shared = sorted({u.speaker for u in train} & {u.speaker for u in dev})
    if shared:
        raise DatasetError(
            f"dev set shares {len(shared)} speaker(s) with the train set: {shared[:20]} "
            f"(dev must hold unseen speakers, as LibriSpeech dev-clean vs train-clean-360)"
        )
