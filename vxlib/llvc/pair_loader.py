"""The paired dataset an LLVC generator learns from: ``<root>/<split>/PREFIX_original.wav`` (input
speech) with ``PREFIX_converted.wav`` (the teacher's conversion of it, time-aligned, same length).

- :class:`PairDataset` reads one split. Training items are random ``clip_len`` crops, the same
  window in both halves; evaluation items (``clip_len=None``) are whole utterances.
- :class:`EpochBatchSampler` shuffles per epoch, shards across DDP ranks, and can start an epoch
  part-way through (for exact resumption).

Randomness is a pure function of ``(seed, epoch, index)``, never of a generator's history: the
crop of pair ``i`` in epoch ``e`` is the same whichever worker loads it, however many workers
there are, and whether or not the run was interrupted before it. Sampler keys are
``(index, epoch)`` tuples for that reason.

Every problem names the file: wrong sample rate (nothing is resampled here), unequal lengths,
clips too short for the losses. Clips shorter than ``clip_len`` are zero-padded at the end in
both halves (silence in, silence as the target), as the reference dataset did; the reference
also cut every training item to its *first* ``wav_len`` samples, which never trains on the rest
of a long utterance; here the crop position is random.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vxlib import audio
from vxlib.data.pairs import DatasetError, list_pairs

__all__ = ["PairDataset", "EpochBatchSampler", "collate_pairs", "DatasetError"]

PathLike = str | os.PathLike


class PairDataset(Dataset):
    """One split of a paired dataset.

    ``__getitem__((index, epoch))`` (or a plain ``index`` for epoch 0) returns
    ``(original, converted)``, each ``(1, T)`` float32: ``T = clip_len`` for training crops,
    the utterance length when ``clip_len`` is None.
    """

    def __init__(self, root: PathLike, split: str, sample_rate: int, clip_len: int | None = None,
                 seed: int = 0, min_len: int = 1):
        self.root, self.split = Path(root), split
        self.sample_rate, self.clip_len, self.seed, self.min_len = int(sample_rate), clip_len, int(seed), int(min_len)
        self.pairs = list_pairs(self.root, split)  # raises naming incomplete pairs
        if not self.pairs:
            raise DatasetError(f"{self.root / split}: no pairs (*_original.wav + *_converted.wav)")
        if clip_len is not None and clip_len < min_len:
            raise ValueError(f"clip_len {clip_len} is shorter than the {min_len} samples the losses need")

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Both halves of pair ``index`` as ``(T,)`` arrays, checked for rate and equal length."""
        prefix, original_path, converted_path = self.pairs[index]
        halves = []
        for path in (original_path, converted_path):
            x, sr = audio.load(path)
            if sr != self.sample_rate:
                raise DatasetError(f"{path}: sample rate {sr} Hz, the config expects {self.sample_rate} Hz "
                                   f"(resample the dataset; the trainer does not)")
            halves.append(x)
        original, converted = halves
        if len(original) != len(converted):
            raise DatasetError(f"{self.root / self.split}/{prefix}: length mismatch, original {len(original)} "
                               f"samples, converted {len(converted)} (pairs must be time-aligned)")
        if len(original) < self.min_len:
            raise DatasetError(f"{original_path}: {len(original)} samples, shorter than the {self.min_len} the "
                               f"mel loss's largest FFT needs")
        return original, converted

    def crop_start(self, index: int, epoch: int, length: int) -> int:
        """Start of the training crop of pair ``index`` in ``epoch`` (0 when the clip is short)."""
        if self.clip_len is None or length <= self.clip_len:
            return 0
        rng = np.random.default_rng([self.seed, epoch, index])
        return int(rng.integers(0, length - self.clip_len + 1))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        original, converted = self.load_pair(index)
        if self.clip_len is not None:
            start = self.crop_start(index, epoch, len(original))
            original, converted = (_fit(x[start:start + self.clip_len], self.clip_len) for x in (original, converted))
        return torch.from_numpy(original)[None], torch.from_numpy(converted)[None]


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return np.pad(x, (0, n - len(x))) if len(x) < n else x


def collate_pairs(items: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack ``(original, converted)`` items, zero-padding to the longest: returns
    ``original (B, 1, T)``, ``converted (B, 1, T)``, ``lengths (B,)`` (valid samples per item)."""
    lengths = torch.tensor([o.shape[-1] for o, _ in items])
    T = int(lengths.max())
    original = torch.zeros(len(items), 1, T)
    converted = torch.zeros(len(items), 1, T)
    for i, (o, c) in enumerate(items):
        original[i, :, :o.shape[-1]] = o
        converted[i, :, :c.shape[-1]] = c
    return original, converted, lengths


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, epoch)`` keys for one rank.

    Each epoch is a permutation of the dataset drawn from ``(seed, epoch)`` (or the identity when
    ``shuffle`` is False), padded by wrapping around to a multiple of ``num_replicas`` and dealt
    round-robin to the ranks (the DistributedSampler scheme). With ``drop_last`` (training) only
    whole batches are yielded, so every step sees ``batch_size`` items; ``len()`` is the number of
    batches per epoch. ``set_epoch(epoch, start_batch)`` selects the epoch and skips its first
    ``start_batch`` batches without loading them.
    """

    def __init__(self, num_items: int, batch_size: int, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = True):
        if num_items <= 0 or batch_size <= 0:
            raise ValueError(f"need items and a positive batch size, got {num_items} items, batch {batch_size}")
        self.num_items, self.batch_size = num_items, batch_size
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.per_rank = math.ceil(num_items / num_replicas)
        if drop_last and self.per_rank < batch_size:
            raise ValueError(f"{num_items} items over {num_replicas} rank(s) give {self.per_rank} per rank, fewer "
                             f"than one batch of {batch_size}: lower batch_size or add data")
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def __len__(self) -> int:
        return self.per_rank // self.batch_size if self.drop_last else math.ceil(self.per_rank / self.batch_size)

    def rank_indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        total = self.per_rank * self.num_replicas
        order = (order * math.ceil(total / len(order)))[:total]
        return order[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        indices = self.rank_indices(self.epoch)
        for b in range(self.start_batch, len(self)):
            yield [(i, self.epoch) for i in indices[b * self.batch_size:(b + 1) * self.batch_size]]
