"""LLMVoX training data: the reference JSON dataset, a token cache, and example/batch building.

Pipeline (one direction)::

    dataset.json  [{speech_folder, speech_file, answer_text, id}, ...]     (the reference format)
      -> read_dataset()                      validated records, audio files checked to exist
      -> TokenCache.build(records, codec)    audio -> codec codes, ONCE, into <cache_dir>/codes.pt
      -> build_examples()                    text ids + codes -> Example (EOA, PAD, lengths checked)
      -> collate()                           Batch(text_ids, prev_codes, targets), all (B, T)
      -> InputEmbedder(text_ids, prev_codes) the GPT input (B, T, n_embd), on the training device

The reference (``src/data.py``) runs WavTokenizer inside ``__getitem__``, i.e. it re-encodes every
utterance every time it is drawn, in the training process. Here the codes are computed once per
(codec, file) and reused by every epoch, every rank and every later run.

Example layout (reference semantics). For an utterance with codes ``c_0 .. c_{n-1}``:

- real occurrences of :data:`EOA_CODE` (453) are deleted, then 453 is appended as end of audio
  (EOA reuses a codebook entry; the model has no extra output slot). ``L = n' + 1`` steps;
- ``targets    = [c_0, ..., c_{n'-1}, 453]``                       (L,)
- ``prev_codes = [-1,  c_0, ..., c_{n'-1}]``: the *features* fed at step t are the codebook vector
  of code t-1, shifted right with a zero vector first; -1 selects the embedder's zero row, so
  ``codebook[prev_codes]`` is exactly the reference's shifted feature tensor;
- ``text_ids   = word-wise ByT5 ids + [EOS 385]``, padded with PAD (384) to ``L``.

Batches pad to the longest example: ``targets`` with :data:`IGNORE_INDEX` (-1000), ``prev_codes``
with 453 (the reference pads the feature tensor with the EOA feature), ``text_ids`` with PAD.
Features are carried as code indices and gathered on the device; the numbers are the same as the
reference's materialised float tensors (tested); a batch holds one int64 per step instead of
feature_dim floats.

Reference quirks (``reference_quirks=True`` reproduces them; the default fixes them):

1. Text longer than its audio is silently cut. The reference pads the batch's text to the longest
   *text* and then truncates it to the longest *audio* of the batch, so an utterance whose text ids
   outnumber its own audio steps keeps its tail only when a longer utterance shares the batch (the
   tail then sits over target -1000 padding and teaches nothing). Fixed: such an utterance is an
   error naming it (:class:`DatasetError`) -- nothing is dropped without a word.
2. Batches are drawn with ``next(iter(loader))``: a fresh shuffled iterator per batch, i.e. sampling
   with replacement, and a batch longer than ``block_size`` is redrawn once (the redraw is not
   checked). Fixed: :class:`BatchSchedule` walks seeded epochs without replacement, sharded across
   ranks. The redraw is not reproduced: examples longer than ``block_size`` are rejected up front
   in both modes.
3. The audio path is ``<speech_data_folder>/<id>.wav`` from the trainer config; the record's own
   ``speech_folder``/``speech_file`` are ignored. Fixed: the record's fields are used
   (``speech_folder`` relative to the JSON file's directory when not absolute). With quirks on,
   pass ``speech_data_folder`` to read the reference's layout.

Deleting real 453 codes is kept in both modes: it is how the released model was trained, and
without it the model would be taught to stop mid-utterance. How many were deleted is reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from vxlib import audio
from vxlib.codec.base import AudioCodec
from vxlib.llmvox.model import EOA_CODE, IGNORE_INDEX
from vxlib.llmvox.text import PAD_ID, default_byte_embedding, encode_text, load_byt5_embedding

__all__ = [
    "RECORD_KEYS",
    "DatasetError",
    "Record",
    "read_dataset",
    "write_dataset",
    "dataset_from_corpus",
    "split_records",
    "codec_fingerprint",
    "codec_codebook",
    "codec_encode",
    "codec_decode",
    "load_codec",
    "load_text_table",
    "TokenCache",
    "Example",
    "build_examples",
    "Batch",
    "collate",
    "BatchSchedule",
]

PathLike = str | os.PathLike
RECORD_KEYS = ("speech_folder", "speech_file", "answer_text", "id")


class DatasetError(ValueError):
    """A dataset file, record or utterance that cannot be used; the message names it."""


# ---------------------------------------------------------------------------------------------
# the reference JSON dataset


@dataclass(frozen=True)
class Record:
    """One utterance of a reference-format dataset; ``audio_path`` is resolved and exists."""

    id: str
    text: str
    audio_path: Path


def read_dataset(
    path: PathLike, reference_quirks: bool = False, speech_data_folder: PathLike | None = None
) -> list[Record]:
    """Read a reference JSON dataset (a list of ``{speech_folder, speech_file, answer_text, id}``).

    Every problem is collected and raised at once, naming the file and the record index/id:
    missing keys, non-string text, duplicate ids, empty text, audio files that do not exist.
    Audio paths: see quirk 3 in the module docstring.
    """
    src = Path(path)
    if not src.is_file():
        raise DatasetError(f"{src}: dataset JSON not found")
    try:
        rows = json.loads(src.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetError(f"{src}: not valid JSON ({err})") from err
    if not isinstance(rows, list) or not rows:
        raise DatasetError(f"{src}: expected a non-empty JSON list of records with keys {list(RECORD_KEYS)}")
    if reference_quirks and speech_data_folder is None:
        raise DatasetError(f"{src}: reference_quirks reads audio as <speech_data_folder>/<id>.wav; pass speech_data_folder")
    problems, records, seen = [], [], {}
    for i, row in enumerate(rows):
        where = f"record {i}"
        if not isinstance(row, dict):
            problems.append(f"{where}: not an object")
            continue
        missing = [k for k in RECORD_KEYS if k not in row]
        if missing:
            problems.append(f"{where}: missing keys {missing}")
            continue
        rid = str(row["id"])
        where = f"record {i} (id {rid!r})"
        if rid in seen:
            problems.append(f"{where}: duplicate id (also record {seen[rid]})")
            continue
        seen[rid] = i
        text = row["answer_text"]
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: answer_text must be a non-empty string, got {text!r}")
            continue
        if reference_quirks:
            wav = Path(speech_data_folder) / f"{rid}.wav"
        else:
            folder = Path(str(row["speech_folder"]))
            wav = (folder if folder.is_absolute() else src.parent / folder) / str(row["speech_file"])
        if not wav.is_file():
            problems.append(f"{where}: audio file {wav} not found")
            continue
        records.append(Record(rid, text, wav))
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DatasetError(f"{src}: {len(problems)} bad record(s):\n  {shown}{more}")
    return records


def write_dataset(records: Sequence[Record], path: PathLike) -> Path:
    """Write ``records`` as a reference JSON dataset; ``speech_folder`` is made relative to the
    JSON file's directory when the audio lies below it (so the folder can be moved as a whole)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.parent.resolve()
    rows = []
    for r in records:
        folder = r.audio_path.parent.resolve()
        rel = os.path.relpath(folder, base) if folder.is_relative_to(base) else str(folder)
        rows.append({"speech_folder": rel, "speech_file": r.audio_path.name, "answer_text": r.text, "id": r.id})
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def dataset_from_corpus(part_dir: PathLike, out_json: PathLike) -> Path:
    """Turn a part of a :mod:`vxlib.data.corpus` corpus (``<corpus>/train``) into a reference JSON."""
    from vxlib.data.corpus import read_corpus

    return write_dataset([Record(u.id, u.text, Path(u.path)) for u in read_corpus(part_dir)], out_json)


def split_records(records: Sequence[Record], val_fraction: float, seed: int = 0) -> tuple[list[Record], list[Record]]:
    """Deterministic (train, val) split by a seeded hash of each id: an utterance stays on its side
    when others are added or removed. ``val_fraction`` in (0, 1) gives at least one val record."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(records) < 2:
        raise DatasetError(f"need at least 2 records to hold some out for validation, have {len(records)}")
    key = lambda r: zlib.crc32(f"{seed}:{r.id}".encode())  # noqa: E731
    ranked = sorted(records, key=key)
    n_val = min(len(records) - 1, max(1, round(val_fraction * len(records))))
    val_ids = {r.id for r in ranked[:n_val]}
    return [r for r in records if r.id not in val_ids], [r for r in records if r.id in val_ids]


# ---------------------------------------------------------------------------------------------
# codec and text table (what defines the data representation)


def codec_codebook(codec: AudioCodec) -> torch.Tensor:
    """The codec's ``(codebook_size, feature_dim)`` float32 table on the CPU: row c is what the GPT
    reads for previous code c."""
    table = codec.codebook
    if tuple(table.shape) != (codec.codebook_size, codec.feature_dim):
        raise ValueError(f"codec table has shape {tuple(table.shape)}, expected ({codec.codebook_size}, {codec.feature_dim})")
    return table.detach().float().cpu()


def codec_encode(codec: AudioCodec, wav: np.ndarray) -> torch.Tensor:
    """Codes ``(L,)`` int64 (CPU) of one mono utterance at ``codec.sample_rate``."""
    with torch.inference_mode():
        return codec.encode(wav, codec.sample_rate).reshape(-1).long().cpu()


def codec_decode(codec: AudioCodec, codes: torch.Tensor) -> np.ndarray:
    """Waveform ``(T,)`` float32 at ``codec.sample_rate`` of one code sequence ``(L,)``."""
    with torch.inference_mode():
        return codec.decode(torch.as_tensor(codes).reshape(-1).long())[0].float().cpu().numpy()


def codec_fingerprint(codec: AudioCodec) -> str:
    """Identity of a codec for the cache: class, rates, sizes and a hash of its codebook. Two fits
    of the embedded codec differ in their codebooks, so their caches never mix."""
    h = hashlib.sha256()
    h.update(f"{type(codec).__name__}:{codec.sample_rate}:{codec.hop_length}:{codec.codebook_size}".encode())
    h.update(codec_codebook(codec).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_codec(spec: dict) -> AudioCodec:
    """A codec from its config entry: ``{"type": "world", "dir": DIR}`` (a fitted embedded codec)
    or ``{"type": "wavtokenizer", "config": YAML, "ckpt": CKPT}`` (the official files)."""
    kind = spec.get("type")
    if kind == "world":
        from vxlib.codec.world_codec import WorldCodec

        return WorldCodec.from_pretrained(spec["dir"])
    if kind == "wavtokenizer":
        from vxlib.codec.wavtokenizer import WavTokenizer

        return WavTokenizer.from_pretrained(spec["config"], spec["ckpt"])
    raise ValueError(f"codec type must be 'world' or 'wavtokenizer', got {kind!r} in {spec}")


def load_text_table(spec: str, dim: int = 256) -> torch.Tensor:
    """The frozen ``(386, dim)`` text table: ``"default"`` is vxlib's embedded byte table (not the
    paper's); anything else is a local Hugging Face ByT5 directory (e.g. the charsiu G2P model)."""
    if spec == "default":
        return default_byte_embedding(dim)
    return load_byt5_embedding(spec)


# ---------------------------------------------------------------------------------------------
# token cache


CACHE_FILE = "codes.pt"


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class TokenCache:
    """Codec codes of every utterance, computed once and stored in ``<cache_dir>/codes.pt``.

    One flat int32 tensor of all codes plus offsets (loads with ``weights_only=True``), keyed by
    record id, with each source file's path, size and mtime and the codec's fingerprint. A later
    :meth:`build` re-encodes only the files that are new or changed; a different codec is an error
    (use another ``cache_dir``). ``encoded`` tells how many files the last build encoded.
    """

    def __init__(self, codes: dict[str, torch.Tensor], fingerprint: str, encoded: int = 0):
        self.codes = codes
        self.fingerprint = fingerprint
        self.encoded = encoded

    def __getitem__(self, rid: str) -> torch.Tensor:
        return self.codes[rid]

    def __len__(self) -> int:
        return len(self.codes)

    @classmethod
    def build(
        cls,
        records: Sequence[Record],
        codec: AudioCodec,
        cache_dir: PathLike,
        workers: int = 2,
        progress: Callable[[str], None] | None = None,
    ) -> "TokenCache":
        """Encode what is not cached yet (``workers`` threads load and encode files), save, return."""
        cache_path = Path(cache_dir) / CACHE_FILE
        fp = codec_fingerprint(codec)
        old: dict[str, tuple[str, int, int, torch.Tensor]] = {}
        if cache_path.exists():
            state = torch.load(cache_path, map_location="cpu", weights_only=True)
            if state["fingerprint"] != fp:
                raise DatasetError(
                    f"{cache_path}: made with another codec (fingerprint {state['fingerprint']}, this codec {fp}); "
                    "use a separate cache_dir per codec"
                )
            off = state["offsets"]
            for i, rid in enumerate(state["ids"]):
                old[rid] = (state["sources"][i], state["sizes"][i], state["mtimes"][i], state["codes"][off[i] : off[i + 1]])
        codes: dict[str, torch.Tensor] = {}
        todo = []
        for r in records:
            size, mtime = _stamp(r.audio_path)
            hit = old.get(r.id)
            if hit is not None and hit[0] == str(r.audio_path) and hit[1:3] == (size, mtime):
                codes[r.id] = hit[3].long()
            else:
                todo.append(r)

        def encode(r: Record) -> torch.Tensor:
            wav, _ = audio.load(r.audio_path, sr=codec.sample_rate)  # mono, resampled to the codec's rate
            try:
                return codec_encode(codec, wav)
            except Exception as err:
                raise DatasetError(f"{r.audio_path}: codec could not encode it ({err})") from err

        if todo:
            if progress:
                progress(f"tokenising {len(todo)} of {len(records)} utterances ({len(records) - len(todo)} cached)")
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                for r, c in zip(todo, pool.map(encode, todo)):
                    codes[r.id] = c
        cache = cls({r.id: codes[r.id] for r in records}, fp, encoded=len(todo))
        if todo or set(old) != set(cache.codes):
            merged = {rid: (v[0], v[1], v[2], v[3]) for rid, v in old.items()}
            for r in records:
                merged[r.id] = (str(r.audio_path), *_stamp(r.audio_path), codes[r.id])
            cache._save(cache_path, merged)
        return cache

    def _save(self, path: Path, entries: dict[str, tuple[str, int, int, torch.Tensor]]) -> None:
        ids = sorted(entries)
        lengths = [len(entries[i][3]) for i in ids]
        state = {
            "fingerprint": self.fingerprint,
            "ids": ids,
            "sources": [entries[i][0] for i in ids],
            "sizes": [entries[i][1] for i in ids],
            "mtimes": [entries[i][2] for i in ids],
            "offsets": torch.tensor([0, *np.cumsum(lengths).tolist()], dtype=torch.int64),
            "codes": torch.cat([entries[i][3].to(torch.int32) for i in ids]) if ids else torch.zeros(0, dtype=torch.int32),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# examples and batches


@dataclass(frozen=True)
class Example:
    """One training sequence of ``L`` steps (see the module docstring). ``text_ids`` is unpadded."""

    id: str
    text_ids: torch.Tensor  # (n_text,) long, ends with EOS
    prev_codes: torch.Tensor  # (L,) long, -1 first
    targets: torch.Tensor  # (L,) long, EOA last
    eoa_removed: int  # real EOA codes deleted from the audio

    def __len__(self) -> int:
        return self.targets.numel()


def build_examples(
    records: Sequence[Record],
    cache: TokenCache,
    block_size: int,
    reference_quirks: bool = False,
    eoa_code: int = EOA_CODE,
) -> list[Example]:
    """Examples for ``records`` from cached codes. Utterances longer than ``block_size`` and, without
    quirks, utterances whose text ids outnumber their audio steps are errors listing every one."""
    examples, problems = [], []
    for r in records:
        codes = cache[r.id]
        keep = codes != eoa_code
        codes = codes[keep]
        eoa = torch.tensor([eoa_code])
        targets = torch.cat([codes, eoa])  # (L,)
        prev = torch.cat([torch.tensor([-1]), codes])  # (L,): zero feature first, then shifted codes
        text = torch.tensor(encode_text(r.text), dtype=torch.long)
        L = targets.numel()
        if L > block_size:
            problems.append(f"{r.id} ({r.audio_path}): {L} steps > block_size {block_size}")
            continue
        if text.numel() > L and not reference_quirks:
            problems.append(f"{r.id} ({r.audio_path}): {text.numel()} text ids but only {L} audio steps "
                            "(the text would be cut; the audio is too short for it)")
            continue
        examples.append(Example(r.id, text, prev, targets, int((~keep).sum())))
    if problems:
        raise DatasetError(f"{len(problems)} utterance(s) cannot be used:\n  " + "\n  ".join(problems[:20]))
    return examples


@dataclass
class Batch:
    """``text_ids``, ``prev_codes``, ``targets``: each ``(B, T)`` long."""

    text_ids: torch.Tensor
    prev_codes: torch.Tensor
    targets: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        nb = torch.device(device).type == "cuda"
        return Batch(*(t.to(device, non_blocking=nb) for t in (self.text_ids, self.prev_codes, self.targets)))

    @property
    def n_targets(self) -> int:
        return int((self.targets != IGNORE_INDEX).sum())


def collate(examples: Sequence[Example], reference_quirks: bool = False, eoa_code: int = EOA_CODE) -> Batch:
    """Pad to the longest example: targets with -1000, previous codes with EOA, text with PAD.

    With ``reference_quirks`` the text is padded to the batch's longest text and then cut to the
    batch's longest audio, as the reference does (quirk 1)."""
    B = len(examples)
    T = max(len(e) for e in examples)
    targets = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    prev = torch.full((B, T), eoa_code, dtype=torch.long)
    width = max(T, max(e.text_ids.numel() for e in examples))
    text = torch.full((B, width), PAD_ID, dtype=torch.long)
    for b, e in enumerate(examples):
        L = len(e)
        targets[b, :L] = e.targets
        prev[b, :L] = e.prev_codes
        text[b, : e.text_ids.numel()] = e.text_ids
    if not reference_quirks and width > T:
        raise DatasetError("text longer than the batch's audio (build examples with build_examples first)")
    return Batch(text[:, :T].contiguous(), prev, targets)


class BatchSchedule:
    """Which examples form micro-batch ``i`` of rank ``rank`` -- a pure function of
    ``(seed, rank, i)``, so a resumed run continues with exactly the batches it would have seen.

    Default: seeded epochs without replacement; the example order is split into ``world_size``
    interleaved shards (rank r takes positions r, r + W, ...), each rank cycles through its shard.
    ``with_replacement=True`` is the reference's sampling (quirk 2): each batch an independent draw.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 with_replacement: bool = False):
        if n_examples < world_size:
            raise DatasetError(f"{n_examples} example(s) cannot be shared by {world_size} ranks")
        self.n, self.batch_size, self.seed = n_examples, batch_size, seed
        self.rank, self.world_size, self.with_replacement = rank, world_size, with_replacement
        self.shard = len(range(rank, n_examples, world_size))
        self._epoch, self._perm = -1, []

    def _order(self, epoch: int) -> list[int]:
        if self._epoch != epoch:  # all ranks draw the same permutation of an epoch, then take their shard
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)[self.rank :: self.world_size].tolist()
        return self._perm

    def batch(self, i: int) -> list[int]:
        if self.with_replacement:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + i) * 1_009 + self.rank)
            return torch.randint(self.n, (self.batch_size,), generator=g).tolist()
        out = []
        for pos in range(i * self.batch_size, (i + 1) * self.batch_size):
            epoch, j = divmod(pos, self.shard)
            out.append(self._order(epoch)[j])
        return out

    def epochs(self, i: int) -> float:
        """Epochs of this rank's shard consumed after ``i`` micro-batches."""
        return i * self.batch_size / self.shard


def iterate_batches(examples: Sequence[Example], batch_size: int, reference_quirks: bool = False) -> Iterable[Batch]:
    """All of ``examples`` in order, ``batch_size`` at a time (validation)."""
    for s in range(0, len(examples), batch_size):
        yield collate(examples[s : s + batch_size], reference_quirks)
