"""The trainer: config parsing (real booleans), schedule, optimiser groups, loss falling on a tiny
overfit set, exact resume, fine-tuning from a checkpoint, and a 2-process gloo DDP run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from vxlib.llmvox.model import GPT, CheckpointError, GPTConfig, load_checkpoint
from vxlib.llmvox.train import TrainConfig, build_parser, config_from_args, configure_optimizer, get_lr, train
from vxlib.tracking import read_metrics

REPO = Path(__file__).resolve().parents[2]
quiet = lambda _msg: None  # noqa: E731


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["llmvox", "llmvox_tiny"])
def test_shipped_configs_parse(name):
    cfg = TrainConfig.from_file(REPO / "experiments" / name / "config.json")
    assert cfg.n_embd % cfg.n_head == 0 and cfg.warmup_iters < cfg.lr_decay_iters


def test_reference_recipe_values():
    cfg = TrainConfig.from_file(REPO / "experiments" / "llmvox" / "config.json")
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.bias) == (4, 8, 768, 8192, False)
    assert (cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters) == (3e-4, 3e-6, 50_000, 2_600_000)
    assert (cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, cfg.grad_clip) == (0.9, 0.95, 1e-5, 0.1, 1.0)
    assert (cfg.batch_size, cfg.gradient_accumulation_steps, cfg.compile) == (2, 4, True)


def test_config_rejects_strings_for_booleans_and_unknown_keys():
    with pytest.raises(ValueError, match="compile must be bool"):
        TrainConfig.from_dict({"compile": "False"})
    with pytest.raises(ValueError, match=r"unknown keys \['init_from'\]"):
        TrainConfig.from_dict({"init_from": "resume"})
    assert TrainConfig.from_dict({"learning_rate": 1}).learning_rate == 1.0


def test_cli_compile_flag_is_a_real_boolean(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"compile": True, "n_layer": 2}))
    parse = lambda *a: config_from_args(build_parser().parse_args(["--config", str(path), *a]))  # noqa: E731
    assert parse().compile is True
    assert parse("--no-compile").compile is False
    assert parse("--compile", "--set", "n_layer=3", "--set", "learning_rate=1e-3").n_layer == 3
    with pytest.raises(SystemExit):  # argparse rejects --compile=False instead of reading it as True
        build_parser().parse_args(["--config", str(path), "--compile=False"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--config", str(path), "--resume", "--init-from", "x.pt"])


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110)
    assert get_lr(0, cfg) == pytest.approx(1 / 11)
    assert get_lr(10, cfg) == pytest.approx(1.0)
    assert get_lr(60, cfg) == pytest.approx(0.55)  # half-way down the cosine
    assert get_lr(110, cfg) == pytest.approx(0.1) and get_lr(10_000, cfg) == 0.1
    assert all(get_lr(i, cfg) >= get_lr(i + 1, cfg) for i in range(10, 120))


def test_weight_decay_only_on_matrices():
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64, bias=True))
    opt = configure_optimizer(model, TrainConfig(weight_decay=0.1), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert any(p is model.transformer.wpe.weight for p in decay["params"])


# --- training ---------------------------------------------------------------------------------


def test_loss_falls_on_a_tiny_overfit_set(tiny_config):
    cfg = tiny_config.replace(max_iters=30, lr_decay_iters=30, eval_interval=30)
    result = train(cfg, log=quiet)
    losses = [h["train_loss"] for h in result.history if "train_loss" in h]
    assert losses[0] == pytest.approx(math.log(512), abs=0.3)  # uniform over 512 codes at init
    assert losses[-1] < 0.75 * losses[0]
    val = [h["val_loss"] for h in result.history if "val_loss" in h]
    assert len(val) == 1 and math.isfinite(val[0]) and result.best_val_loss == val[0]
    # the tracker's local record holds the same curves
    rows = read_metrics(Path(cfg.out_dir) / "tracking")
    assert [r["train/loss"] for r in rows if "train/loss" in r] == pytest.approx(losses)


def test_checkpoint_is_the_reference_dict_and_loads_weights_only(tiny_config):
    cfg = tiny_config.replace(max_iters=2, eval_interval=2)
    result = train(cfg, log=quiet)
    ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "model_args", "iter_num", "config"} <= set(ckpt)
    assert ckpt["iter_num"] == 2 and ckpt["config"]["n_embd"] == 64 and ckpt["config"]["codec_fingerprint"]
    assert ckpt["model_args"] == {"n_layer": 1, "n_head": 2, "n_embd": 64, "block_size": 64, "vocab_size": 512,
                                  "dropout": 0.0, "bias": False}
    model = load_checkpoint(result.checkpoint)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k])


def test_resume_equals_a_straight_run(tiny_config, tmp_path):
    n, k = 6, 3
    straight = tiny_config.replace(max_iters=n, out_dir=str(tmp_path / "straight"), eval_interval=100)
    train(straight, log=quiet)
    split = straight.replace(out_dir=str(tmp_path / "split"))
    train(split.replace(max_iters=k), log=quiet)
    resumed = train(split, resume=True, log=quiet)
    assert resumed.iter_num == n
    a = torch.load(Path(straight.out_dir) / "ckpt.pt", weights_only=True)
    b = torch.load(Path(split.out_dir) / "ckpt.pt", weights_only=True)
    for name in a["model"]:
        torch.testing.assert_close(b["model"][name], a["model"][name], rtol=0, atol=1e-6, msg=name)
    exp_avg = lambda c: [s["exp_avg"] for s in c["optimizer"]["state"].values()]  # noqa: E731
    for x, y in zip(exp_avg(a), exp_avg(b)):
        torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


def test_resume_without_checkpoint_is_an_error(tiny_config):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(tiny_config, resume=True, log=quiet)


def test_init_from_loads_weights_and_keeps_training(tiny_config, tmp_path):
    base = train(tiny_config.replace(max_iters=20, out_dir=str(tmp_path / "base")), log=quiet)
    base_losses = [h["train_loss"] for h in base.history if "train_loss" in h]
    # lr 0: the fine-tuning run must end with exactly the source weights (they were loaded)
    frozen = tiny_config.replace(max_iters=1, out_dir=str(tmp_path / "frozen"), learning_rate=0.0, decay_lr=False)
    train(frozen, init_from=str(base.checkpoint), log=quiet)
    src, dst = (torch.load(p, weights_only=True)["model"] for p in (base.checkpoint, Path(frozen.out_dir) / "ckpt.pt"))
    assert all(torch.equal(src[k], dst[k]) for k in src)
    # and with a learning rate it continues from there (fresh optimiser, iteration 0)
    tuned = train(tiny_config.replace(max_iters=5, out_dir=str(tmp_path / "tuned")), init_from=str(base.checkpoint), log=quiet)
    tuned_losses = [h["train_loss"] for h in tuned.history if "train_loss" in h]
    assert tuned.iter_num == 5 and tuned_losses[0] < base_losses[0] - 1.0


def test_init_from_a_mismatched_checkpoint_lists_the_keys(tiny_config, tmp_path):
    base = train(tiny_config.replace(max_iters=1, out_dir=str(tmp_path / "base")), log=quiet)
    with pytest.raises(CheckpointError) as err:
        train(tiny_config.replace(n_layer=2, out_dir=str(tmp_path / "big")), init_from=str(base.checkpoint), log=quiet)
    assert "missing keys" in str(err.value) and "transformer.h.1.attn.c_attn.weight" in str(err.value)


def test_ddp_two_processes_gloo_keep_identical_replicas(tiny_config, tmp_path):
    cfg = tiny_config.replace(max_iters=4, eval_interval=4, out_dir=str(tmp_path / "ddp"))
    path = tmp_path / "ddp.json"
    path.write_text(json.dumps(asdict(cfg)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vxlib.llmvox.train", "--config", str(path), "--threads", "1"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world 2 x accum 1 x batch 4" in proc.stdout
    rows = read_metrics(Path(cfg.out_dir) / "tracking")
    diffs = [r["ddp/max_replica_diff"] for r in rows if "ddp/max_replica_diff" in r]
    assert diffs == [0.0]
    ckpt = torch.load(Path(cfg.out_dir) / "ckpt.pt", weights_only=True)
    assert ckpt["iter_num"] == 4
    assert any(math.isfinite(r["val/loss"]) for r in rows if "val/loss" in r)
