"""The trainer: real/fake orientation, checkpoint format and round trip, atomic saves, exact
resumption, fine-tuning initialisation, and what the run log says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vxlib.llvc.train as train_module
from vxlib.llvc import CheckpointMismatchError, load_model
from vxlib.llvc.pair_loader import collate_pairs
from vxlib.llvc.train import (CHECKPOINT_KEYS, LLVCTrainer, TrainOptions, checkpoint_path, latest_checkpoint_step,
                              read_checkpoint, save_checkpoint_atomic)
from vxlib.tracking import read_metrics


def make_trainer(config, pairs_dir, run_dir, messages=None, **options) -> LLVCTrainer:
    options = {"eval_at_start": False, **options}
    opts = TrainOptions(run_dir=Path(run_dir), data_dir=pairs_dir,
                        log=(messages.append if messages is not None else lambda m: None), **options)
    return LLVCTrainer(config, opts)


class Recorder(torch.nn.Module):
    """Wraps the discriminator and records what each call received as real and as fake."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, real, fake):
        self.calls.append((real.detach().clone(), fake.detach().clone(), fake.requires_grad))
        return self.inner(real, fake)


def _is_window_of(segment: torch.Tensor, signal: torch.Tensor) -> bool:
    """Every item of segment (B, 1, S) is a contiguous window of the same item of signal (B, 1, T)."""
    S = segment.shape[-1]
    windows = signal.unfold(-1, S, 1)  # (B, 1, T - S + 1, S)
    return all(bool((windows[i, 0] == segment[i, 0]).all(dim=-1).any()) for i in range(segment.shape[0]))


def test_discriminator_sees_target_as_real_and_generator_output_as_fake(config, pairs_dir, tmp_path):
    trainer = make_trainer(config, pairs_dir, tmp_path / "run")
    recorder = Recorder(trainer.d_train)
    trainer.d_train = recorder
    torch.manual_seed(0)
    original = 0.3 * torch.randn(2, 1, 4096)
    target = 0.3 * torch.randn(2, 1, 4096)
    trainer.train_step(original, target)
    (d_real, d_fake, d_fake_grad), (g_real, g_fake, g_fake_grad) = recorder.calls
    # discriminator step: segment_size slices, real from the target, fake = detached output
    assert d_real.shape == d_fake.shape == (2, 1, config["segment_size"])
    assert _is_window_of(d_real, target) and not _is_window_of(d_fake, target)
    assert not d_fake_grad
    # generator step: full clips, real = target, fake = the output the generator is trained through
    assert torch.equal(g_real, target) and g_fake_grad and not torch.equal(g_fake, target)
    assert _is_window_of(d_fake, g_fake)  # the discriminator's fake is a slice of the same output


def test_checkpoint_is_the_official_format_and_loads_with_load_model(config, pairs_dir, tmp_path):
    trainer = make_trainer(config, pairs_dir, tmp_path / "run")
    original, target, _ = collate_pairs([trainer.train_set[(i, 0)] for i in range(2)])
    trainer.train_step(original, target)
    g_path = trainer.save_checkpoint()
    assert g_path == checkpoint_path(tmp_path / "run" / "checkpoints", "G", 1)
    for kind in ("G", "D"):
        blob = torch.load(checkpoint_path(trainer.checkpoint_dir, kind, 1), map_location="cpu", weights_only=True)
        assert set(blob) == set(CHECKPOINT_KEYS)
        assert (blob["step"], blob["epoch"]) == (1, 0) and blob["learning_rate"] == pytest.approx(5e-4)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    model, sr = load_model(g_path, config_path)
    assert sr == 16000
    x = 0.2 * np.sin(2 * np.pi * 150 * np.arange(3000) / sr).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_array_equal(y, trainer.convert(x))


def test_atomic_save_leaves_old_state_when_a_write_fails(tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoints"
    for kind in ("G", "D"):
        save_checkpoint_atomic(checkpoint_path(ckpt, kind, 5), {"model": {}, "step": 5})
    save_checkpoint_atomic(checkpoint_path(ckpt, "D", 10), {"model": {}, "step": 10})

    def dying_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(train_module.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_atomic(checkpoint_path(ckpt, "G", 10), {"model": {}, "step": 10})
    assert sorted(p.name for p in ckpt.iterdir()) == ["D_10.pth", "D_5.pth", "G_5.pth"]  # no partial file, no temp
    assert latest_checkpoint_step(ckpt) == 5  # D_10 without G_10 is not resumable
    assert read_checkpoint(checkpoint_path(ckpt, "G", 5))["step"] == 5


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_stop_and_resume_continue_exactly_across_an_epoch_boundary(config, pairs_dir, tmp_path):
    config["checkpoint_interval"] = 100  # only the stop and the last step write checkpoints
    (tmp_path / "train_only").mkdir()
    (tmp_path / "train_only" / "train").symlink_to(pairs_dir / "train")  # no val/dev: no validation time
    pairs_dir = tmp_path / "train_only"
    straight = make_trainer(config, pairs_dir, tmp_path / "straight")
    straight.fit(6)
    straight.close()

    # 8 train pairs / batch 2 = 4 steps per epoch: stop after step 3 (as SIGTERM would), resume to 6
    first = make_trainer(config, pairs_dir, tmp_path / "resumed")
    step_once = first.train_step

    def step_then_get_killed(*batch):
        stats = step_once(*batch)
        if first.step == 3:
            first.request_stop()
        return stats

    first.train_step = step_then_get_killed
    first.fit(6)
    first.close()
    assert latest_checkpoint_step(tmp_path / "resumed" / "checkpoints") == 3
    with pytest.raises(FileExistsError, match="already holds checkpoints up to step 3"):
        make_trainer(config, pairs_dir, tmp_path / "resumed")  # a fresh start would overwrite the run
    messages = []
    second = make_trainer(config, pairs_dir, tmp_path / "resumed", messages, resume=True)
    assert second.step == 3 and any("resumed from" in m and "step 3" in m for m in messages)
    second.fit(6)
    second.close()

    for kind in ("G", "D"):
        a = _state(checkpoint_path(tmp_path / "straight" / "checkpoints", kind, 6))
        b = _state(checkpoint_path(tmp_path / "resumed" / "checkpoints", kind, 6))
        _assert_same(a, b, kind)
        assert a["epoch"] == 1 and a["learning_rate"] == pytest.approx(5e-4 * 0.999)
    # and training did change the weights
    g0 = make_trainer(config, pairs_dir, tmp_path / "fresh").generator.state_dict()
    g6 = _state(checkpoint_path(tmp_path / "straight" / "checkpoints", "G", 6))["model"]
    assert g0.keys() == g6.keys() and any(not torch.equal(g0[k], g6[k]) for k in g0)


def test_init_from_loads_a_released_generator_and_rejects_a_mismatched_one(config, pairs_dir, tmp_path):
    source = make_trainer(config, pairs_dir, tmp_path / "source")
    source.step = 500
    g_path = source.save_checkpoint()
    messages = []
    tuned = make_trainer(config, pairs_dir, tmp_path / "ft", messages, init_from=g_path)
    assert tuned.step == 0
    _assert_same(tuned.generator.state_dict(), source.generator.state_dict())
    assert any("initialised from" in m for m in messages)

    other = json.loads(json.dumps(config))
    other["model_params"]["enc_dim"] = 32
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped keys .*in_conv\.0\.weight"):
        make_trainer(other, pairs_dir, tmp_path / "bad", init_from=g_path)


def test_fit_logs_validation_and_says_the_hubert_loss_is_off(config, pairs_dir, tmp_path):
    messages = []
    trainer = make_trainer(config, pairs_dir, tmp_path / "run", messages, eval_at_start=True)
    assert trainer.hubert_status.startswith("OFF") and trainer.hubert_loss is None
    assert any("HuBERT feature loss OFF" in m and "not found" in m for m in messages)
    metrics = trainer.fit(2)
    trainer.close()
    rows = read_metrics(tmp_path / "run" / "logs")
    steps_with_dev = [r["step"] for r in rows if "dev/mel" in r]
    assert steps_with_dev == [0, 2]
    assert set(metrics) == {"val/mel", "val/mcd_db", "dev/mel", "dev/mcd_db"}
    assert all(np.isfinite(v) and v > 0 for v in metrics.values())
    assert any("loss/g/mel" in r and r["step"] == 1 for r in rows)
    assert (tmp_path / "run" / "logs" / "media").is_dir()
    assert latest_checkpoint_step(tmp_path / "run" / "checkpoints") == 2
