"""A local multi-speaker English corpus synthesised from the voices installed on this machine.

It stands in for LibriSpeech when nothing can be downloaded, and is laid out the same way the
paper's sources are used: a ``train`` set (split into train/val later by the pair writer) and a
``dev`` set whose speakers never occur in ``train``::

    <out>/train/<voice>/<voice>-<sentence#>.wav   mono, ``sample_rate`` Hz
    <out>/train/manifest.jsonl                     id, path, voice, speaker, text, duration, ...
    <out>/dev/...                                  same, held-out speakers only
    <out>/corpus.json                              settings, voices used / skipped and why

Determinism: for a given ``seed`` and set of voices, which sentences each voice reads and which
speakers go to ``dev`` are fixed. Each voice draws its sentences from its own generator seeded by
``(seed, crc32(spec))``, so adding or losing a voice does not reshuffle the others.
Resumable: an utterance whose file exists is not synthesised again (files appear atomically).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vxlib import audio
from vxlib.data.pairs import DatasetError, Utterance, read_manifest, write_jsonl
from vxlib.data.voices import Voice, VoiceError, available_voices

__all__ = ["DEFAULT_SENTENCES", "read_sentences", "trim_silence", "build_corpus", "is_corpus", "read_corpus", "CorpusSummary"]

PathLike = str | os.PathLike

DEFAULT_SENTENCES = Path(__file__).resolve().parents[2] / "data" / "sentences.txt"


def read_sentences(path: PathLike = DEFAULT_SENTENCES) -> list[str]:
    """Non-empty, stripped lines of a sentence list; duplicates are an error (they would make
    two utterances with the same text and id collisions after edits)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: sentence list not found")
    sentences = [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
    if not sentences:
        raise DatasetError(f"{path}: sentence list is empty")
    seen: dict[str, int] = {}
    for i, s in enumerate(sentences, 1):
        if s in seen:
            raise DatasetError(f"{path}: sentence {i} repeats sentence {seen[s]}: {s!r}")
        seen[s] = i
    return sentences


def trim_silence(wav: np.ndarray, sr: int, keep: float = 0.1, threshold_db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing silence, keeping ``keep`` seconds before the first and after the last
    frame whose RMS is within ``threshold_db`` of the loudest frame (25 ms frames, 10 ms hop).

    A relative threshold works across TTS engines whose absolute levels differ by 20 dB; 40 dB
    below the peak frame keeps soft onsets (fricatives) and drops the engines' digital silence.
    """
    frame, hop = int(0.025 * sr), int(0.010 * sr)
    if len(wav) < frame:
        return wav
    n = 1 + (len(wav) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]  # (n, frame)
    rms_db = 10 * np.log10(np.mean(wav[idx].astype(np.float64) ** 2, axis=1) + 1e-12)  # (n,)
    loud = np.flatnonzero(rms_db > rms_db.max() + threshold_db)
    start = max(0, loud[0] * hop - int(keep * sr))
    end = min(len(wav), loud[-1] * hop + frame + int(keep * sr))
    return wav[start:end]


@dataclass(frozen=True)
class _Job:
    voice: Voice
    split: str
    sentence_index: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.voice.slug}-{self.sentence_index:04d}"

    @property
    def relpath(self) -> str:
        return f"{self.voice.slug}/{self.id}.wav"


def _choose_dev_speakers(speakers: list[str], num_dev: int, seed: int) -> list[str]:
    if num_dev == 0:
        return []
    if num_dev >= len(speakers):
        raise DatasetError(
            f"need more than {num_dev} speaker(s) to hold {num_dev} out for dev, have {len(speakers)}: {speakers} "
            f"(use num_dev_speakers=0 for a single-speaker corpus)"
        )
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(sorted(speakers), size=num_dev, replace=False).tolist())


def _plan(voices: list[Voice], sentences: list[str], per_voice: int | None, dev: list[str], seed: int) -> list[_Job]:
    jobs = []
    for voice in voices:
        rng = np.random.default_rng([seed, zlib.crc32(voice.spec.encode())])
        k = len(sentences) if per_voice is None else min(per_voice, len(sentences))
        chosen = sorted(rng.choice(len(sentences), size=k, replace=False).tolist())
        split = "dev" if voice.speaker in dev else "train"
        jobs += [_Job(voice, split, i, sentences[i]) for i in chosen]
    return jobs


def _synthesize(job: _Job, path: Path, sample_rate: int, keep_silence: float, peak: float) -> None:
    wav, sr = job.voice.synthesize(job.text)
    wav = trim_silence(wav, sr, keep=keep_silence)
    wav = audio.resample(wav, sr, sample_rate)
    top = float(np.abs(wav).max())
    if top == 0:
        raise VoiceError(f"{job.voice.spec}: silent output for {job.text!r}")
    # Engines differ by ~20 dB in level; one peak level keeps the corpus (and the teacher's input) comparable.
    audio.save(path, wav * (peak / top), sample_rate)


@dataclass
class CorpusSummary:
    """What :func:`build_corpus` made; ``table()`` gives one row per split for a notebook."""

    root: Path
    voices: dict[str, str]  # spec -> speaker, voices used
    skipped_voices: dict[str, str]  # spec -> why it could not run
    dev_speakers: list[str]
    written: int
    already_present: int
    seconds: float
    rows: list[dict] = field(repr=False, default_factory=list)

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def dev_dir(self) -> Path:
        return self.root / "dev"

    def table(self) -> list[dict]:
        out = []
        for split in ("train", "dev"):
            rs = [r for r in self.rows if r["split"] == split]
            out.append(
                {
                    "split": split,
                    "utterances": len(rs),
                    "hours": round(sum(r["duration"] for r in rs) / 3600, 4),
                    "speakers": ", ".join(sorted({r["speaker"] for r in rs})),
                    "voices": ", ".join(sorted({r["voice"] for r in rs})),
                }
            )
        return out


def build_corpus(
    out_dir: PathLike,
    sentences: PathLike | list[str] = DEFAULT_SENTENCES,
    voices: list[str] | None = None,
    sentences_per_voice: int | None = None,
    num_dev_speakers: int = 1,
    dev_speakers: list[str] | None = None,
    sample_rate: int = 16000,
    seed: int = 0,
    workers: int = 2,
    keep_silence: float = 0.1,
    peak: float = 0.9,
    progress: bool = True,
) -> CorpusSummary:
    """Synthesise ``sentences_per_voice`` sentences (default: all) with each voice into ``out_dir``.

    ``voices``: specs to use (default :data:`vxlib.data.voices.DEFAULT_VOICES`); voices that cannot run
    here are skipped with the reason in ``CorpusSummary.skipped_voices`` (an explicit list where
    none can run is an error). ``dev_speakers`` (speaker identities) or else ``num_dev_speakers``
    chosen by ``seed`` go to ``dev``; ``num_dev_speakers=0`` makes a train-only corpus (e.g. the
    single-voice Piper "joe" corpus at 24 kHz for LLMVoX: ``voices=["piper:joe"], sample_rate=24000``).
    ``workers`` threads run the synthesisers (subprocesses / onnxruntime release the GIL).
    """
    t0 = time.perf_counter()
    root = Path(out_dir)
    texts = read_sentences(sentences) if not isinstance(sentences, list) else sentences
    usable, skipped = available_voices(voices)
    if not usable:
        raise DatasetError(f"{root}: none of the requested voices can run here: {skipped}")
    speakers = sorted({v.speaker for v in usable})
    if dev_speakers is not None:
        unknown = sorted(set(dev_speakers) - set(speakers))
        if unknown:
            raise DatasetError(f"dev_speakers {unknown} are not among the usable voices' speakers {speakers}")
        if set(dev_speakers) == set(speakers):
            raise DatasetError(f"dev_speakers {dev_speakers} would leave no speaker for train")
        dev = sorted(dev_speakers)
    else:
        dev = _choose_dev_speakers(speakers, num_dev_speakers, seed)
    jobs = _plan(usable, texts, sentences_per_voice, dev, seed)

    todo = [j for j in jobs if not (root / j.split / j.relpath).exists()]
    errors = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {
            pool.submit(_synthesize, j, root / j.split / j.relpath, sample_rate, keep_silence, peak): j for j in todo
        }
        for fut in tqdm(as_completed(futures), total=len(futures), desc="synthesising corpus", disable=not progress):
            try:
                fut.result()
            except (VoiceError, audio.AudioError) as err:
                errors.append(str(err))
    if errors:
        raise VoiceError(f"{len(errors)} utterance(s) failed:\n  " + "\n  ".join(errors[:20]))

    rows = []
    for j in jobs:
        meta = audio.info(root / j.split / j.relpath)
        if meta.sample_rate != sample_rate:
            raise DatasetError(f"{meta.path}: {meta.sample_rate} Hz, but this corpus is {sample_rate} Hz (a previous run used another rate)")
        rows.append(
            {
                "id": j.id,
                "path": j.relpath,
                "split": j.split,
                "voice": j.voice.spec,
                "speaker": j.voice.speaker,
                "text": j.text,
                "duration": round(meta.duration, 4),
                "sample_rate": sample_rate,
            }
        )
    for split in ("train", "dev"):
        write_jsonl(root / split / "manifest.jsonl", [r for r in rows if r["split"] == split])
    settings = {
        "seed": seed,
        "sample_rate": sample_rate,
        "sentences_per_voice": sentences_per_voice,
        "voices": {v.spec: v.speaker for v in usable},
        "skipped_voices": skipped,
        "dev_speakers": dev,
        "keep_silence": keep_silence,
        "peak": peak,
    }
    (root / "corpus.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return CorpusSummary(
        root=root,
        voices=settings["voices"],
        skipped_voices=skipped,
        dev_speakers=dev,
        written=len(todo),
        already_present=len(jobs) - len(todo),
        seconds=time.perf_counter() - t0,
        rows=rows,
    )


def is_corpus(part_dir: PathLike) -> bool:
    """True when ``part_dir`` is a corpus part (has this module's ``manifest.jsonl``)."""
    return (Path(part_dir) / "manifest.jsonl").exists()


def read_corpus(part_dir: PathLike) -> list[Utterance]:
    """The utterances of one corpus part (``<out>/train`` or ``<out>/dev``), sorted by id;
    files listed in the manifest but absent are reported by name."""
    part = Path(part_dir)
    rows = read_manifest(part / "manifest.jsonl")
    missing = [str(part / r["path"]) for r in rows if not (part / r["path"]).exists()]
    if missing:
        raise DatasetError(f"{part}: {len(missing)} file(s) in manifest.jsonl are missing: {missing[:20]}")
    return sorted((Utterance(r["id"], part / r["path"], r["speaker"], r["text"]) for r in rows), key=lambda u: u.id)
