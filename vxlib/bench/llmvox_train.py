"""LLMVoX training-step speed on CPU: how many steps a notebook run can afford.

    python -m vxlib.bench llmvox_train [--sizes tiny default] [--threads 1 2] [--steps 5]

One optimiser step = forward + backward + AdamW on one micro-batch of random inputs (speed does
not depend on the values), for the model sizes of ``experiments/llmvox_tiny`` and
``experiments/llmvox`` at their configured batch size and ``--seq`` steps per sequence (225 is
3 s of audio at 75 tokens/s). Median over ``--steps`` steps after one warm-up step; the load
average is printed because the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from vxlib.llmvox.model import GPT, GPTConfig
from vxlib.llmvox.train import TrainConfig, configure_optimizer
from vxlib.run import REPO_ROOT

RECIPES = {"tiny": "llmvox_tiny", "default": "llmvox"}


def step_seconds(cfg: TrainConfig, seq: int, steps: int, vocab: int = 4096) -> float:
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=max(seq, 16),
                          vocab_size=vocab, bias=cfg.bias, dropout=cfg.dropout))
    opt = configure_optimizer(model, cfg, "cpu")
    x = torch.nn.functional.normalize(torch.randn(cfg.batch_size, seq, cfg.n_embd), dim=-1)  # (B, T, C)
    y = torch.randint(vocab, (cfg.batch_size, seq))  # (B, T)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step allocates optimiser state
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.bench llmvox_train", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "default"], choices=sorted(RECIPES))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--seq", type=int, default=225, help="steps per sequence (75 per second of audio)")
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch {torch.__version__}")
    print(f"{'size':8} {'layers x width':>14} {'batch':>5} {'threads':>7} {'s/step':>8} {'tokens/s':>9}")
    for size in args.sizes:
        cfg = TrainConfig.from_file(REPO_ROOT / "experiments" / RECIPES[size] / "config.json")
        for n in args.threads:
            torch.set_num_threads(n)
            s = step_seconds(cfg, args.seq, args.steps)
            print(f"{size:8} {f'{cfg.n_layer} x {cfg.n_embd}':>14} {cfg.batch_size:>5} {n:>7} {s:8.3f} "
                  f"{cfg.batch_size * args.seq / s:9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
