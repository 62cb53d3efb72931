"""The paired dataset: aligned crops, determinism, sharding, and errors that name the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vxlib import audio
from vxlib.llvc.pair_loader import DatasetError, EpochBatchSampler, PairDataset, collate_pairs

from conftest import SR, write_pairs


def test_training_crops_are_aligned_deterministic_and_vary_by_epoch(pairs_dir):
    ds = PairDataset(pairs_dir, "train", SR, clip_len=2048, seed=7)
    x0, y0 = ds[(3, 0)]
    assert x0.shape == y0.shape == (1, 2048)
    original, converted = ds.load_pair(3)
    start = ds.crop_start(3, 0, len(original))
    assert torch.equal(x0[0], torch.from_numpy(original[start:start + 2048]))
    assert torch.equal(y0[0], torch.from_numpy(converted[start:start + 2048]))  # same window in both halves
    assert torch.equal(ds[(3, 0)][0], x0)  # a pure function of (seed, epoch, index)
    starts = {ds.crop_start(3, e, len(original)) for e in range(8)}
    assert len(starts) > 1


def test_short_clips_are_zero_padded_in_both_halves(pairs_dir):
    ds = PairDataset(pairs_dir, "train", SR, clip_len=16000)  # longer than every utterance (<= 0.7 s)
    x, y = ds[(4, 0)]  # 0.3 s
    n = int(0.3 * SR)
    assert x.shape == (1, 16000) and torch.all(x[:, n:] == 0) and torch.all(y[:, n:] == 0)
    assert x[:, :n].abs().sum() > 0


def test_eval_items_are_whole_utterances_and_collate_reports_lengths(pairs_dir):
    ds = PairDataset(pairs_dir, "dev", SR, clip_len=None)
    items = [ds[i] for i in range(len(ds))]
    original, converted, lengths = collate_pairs(items)
    assert lengths.tolist() == [int(0.35 * SR), int(0.5 * SR), int(0.25 * SR)]
    assert original.shape == converted.shape == (3, 1, int(0.5 * SR))
    assert torch.all(original[2, :, lengths[2]:] == 0)


def test_sampler_shards_cover_the_epoch_and_resume_mid_epoch():
    ranks = [EpochBatchSampler(8, 2, num_replicas=2, rank=r, seed=3) for r in range(2)]
    for s in ranks:
        s.set_epoch(4)
    batches = [list(s) for s in ranks]
    seen = sorted(i for b in batches for batch in b for i, epoch in batch)
    assert seen == list(range(8)) and len(ranks[0]) == 2  # disjoint shards, 2 whole batches each
    assert all(epoch == 4 for b in batches for batch in b for _, epoch in batch)
    ranks[0].set_epoch(4, start_batch=1)
    assert list(ranks[0]) == batches[0][1:]
    ranks[0].set_epoch(5)
    assert list(ranks[0]) != batches[0]
    odd = EpochBatchSampler(10, 2, num_replicas=2, rank=0, seed=3)
    assert len(odd) == 2  # 5 items on this rank: the incomplete batch is dropped, every step is full
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(3, 4)


def test_bad_pairs_fail_naming_the_file(tmp_path):
    root = write_pairs(tmp_path / "d", {"train": [0.2, 0.2]})
    x, _ = audio.load(root / "train" / "utt001_original.wav")
    audio.save(root / "train" / "utt001_converted.wav", x[:-10], SR)
    ds = PairDataset(root, "train", SR, clip_len=1024)
    with pytest.raises(DatasetError, match="utt001: length mismatch"):
        ds[1]
    audio.save(root / "train" / "utt000_converted.wav", x, 22050)
    with pytest.raises(DatasetError, match="utt000_converted.wav: sample rate 22050"):
        ds[0]
    (root / "train" / "utt001_converted.wav").unlink()
    with pytest.raises(DatasetError, match="utt001_converted.wav: missing"):
        PairDataset(root, "train", SR)
    with pytest.raises(DatasetError, match="split folder not found"):
        PairDataset(root, "dev", SR)
    short = write_pairs(tmp_path / "s", {"train": [0.05]})
    with pytest.raises(DatasetError, match="shorter than the 1025"):
        PairDataset(short, "train", SR, clip_len=2048, min_len=1025)[0]
