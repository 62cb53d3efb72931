"""LLVC GAN training throughput: one full trainer step (generator forward, discriminator step on
``segment_size`` slices, generator step with adversarial + feature-matching + mel losses).

    python -m vxlib.bench llvc_train                                  # llvc_tiny, CPU, 1 and 2 threads
    python -m vxlib.bench llvc_train --configs llvc_tiny llvc --threads 2 --steps 3
    python -m vxlib.bench llvc_train --device cuda --precision bf16 --configs llvc llvc_hfg

Each configuration is trained at its own ``batch_size`` and ``wav_len`` on random audio (speed
does not depend on the values; the HuBERT loss is off, as it is here without its checkpoint).
Reported: median seconds per step over ``--steps`` steps after ``--warmup`` steps, steps/s,
seconds per 1000 training clips, and seconds of audio trained per wall-clock second. The load
average is printed with the figures because the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vxlib import audio
from vxlib.llvc.inference import load_config
from vxlib.llvc.train import DistributedContext, LLVCTrainer, TrainOptions
from vxlib.run import REPO_ROOT


def _write_stub_dataset(root: Path, pairs: int, length: int, sr: int) -> Path:
    """Enough noise pairs for one batch: the trainer needs a dataset to start; the timed steps use
    in-memory tensors."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    for i in range(pairs):
        x = (0.1 * rng.standard_normal(length)).astype(np.float32)
        audio.save(root / "train" / f"{i:03d}_original.wav", x, sr, subtype="FLOAT")
        audio.save(root / "train" / f"{i:03d}_converted.wav", 0.5 * x, sr, subtype="FLOAT")
    return root


def time_steps(config: dict, device: str, precision: str | None, steps: int, warmup: int) -> list[float]:
    """Seconds per trainer step for ``steps`` timed steps after ``warmup`` untimed ones."""
    sr, wav_len, batch = int(config["data"]["sr"]), int(config["data"]["wav_len"]), int(config["batch_size"])
    config = {**config, "aux_fairseq": {**config["aux_fairseq"], "c": 0}}
    with tempfile.TemporaryDirectory(prefix="vxlib-bench-llvc-train-") as tmp:
        data = _write_stub_dataset(Path(tmp) / "data", batch, wav_len, sr)
        trainer = LLVCTrainer(config, TrainOptions(run_dir=Path(tmp) / "run", data_dir=data, device=device,
                                                   precision=precision, log=lambda m: None),
                              DistributedContext(device=torch.device(device)))
        g = torch.Generator().manual_seed(0)
        original = 0.1 * torch.randn(batch, 1, wav_len, generator=g)
        target = 0.1 * torch.randn(batch, 1, wav_len, generator=g)
        times = []
        for i in range(warmup + steps):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.train_step(original, target)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        trainer.close()
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.bench llvc_train", description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=["llvc_tiny"],
                    help="experiment names under experiments/ or paths to config.json files")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch intra-op threads (CPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args(argv)
    threads = args.threads if args.device == "cpu" else [torch.get_num_threads()]
    print(f"device {args.device}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"torch {torch.__version__}; median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'config':12} {'batch x wav_len':>15} {'threads':>7} {'s/step':>8} {'steps/s':>8} "
          f"{'s/1k clips':>10} {'audio s/s':>9}")
    for name in args.configs:
        path = Path(name) if name.endswith(".json") else REPO_ROOT / "experiments" / name / "config.json"
        config = load_config(path)
        batch, wav_len, sr = int(config["batch_size"]), int(config["data"]["wav_len"]), int(config["data"]["sr"])
        for n in threads:
            torch.set_num_threads(n)
            seconds = statistics.median(time_steps(config, args.device, args.precision, args.steps, args.warmup))
            print(f"{path.parent.name:12} {f'{batch} x {wav_len}':>15} {n:>7} {seconds:>8.3f} {1 / seconds:>8.2f} "
                  f"{1000 * seconds / batch:>10.1f} {batch * wav_len / sr / seconds:>9.2f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
