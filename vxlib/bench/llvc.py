"""LLVC streaming vs offline speed on CPU.

    python -m vxlib.bench llvc [--seconds 10] [--threads 1 2] [--chunk-factors 1 2 4] [--runs 3]
                               [-p CKPT -c CONFIG] [--input speech.wav] [--reference]

For every (threads, chunk factor): the exact-mode :class:`~vxlib.llvc.StreamingConverter` fed
chunk-sized blocks (as a sound card would) - processing time / audio time (median of ``runs``),
p50/p99 per-chunk compute, end-to-end latency (algorithmic + mean chunk compute) - and offline
:func:`~vxlib.llvc.convert` of the same model and audio in the same run, and their ratio.
``--reference`` adds the reference ``infer_stream`` procedure (``mode="reference"``) for comparison.
Without ``-p`` the model is a random initialisation of the config: speed does not depend on weights.
The machine load (1-minute load average) is printed with the figures: on a shared machine, rerun.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vxlib import audio
from vxlib.llvc.inference import build_model, convert, load_config, load_model
from vxlib.llvc.streaming import StreamingConverter

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "llvc" / "config.json"
TEXT = ("The quick brown fox jumps over the lazy dog. Voice conversion on a laptop must keep up with the "
        "speaker, chunk after chunk, without a single gap in the output. We measure how long each step takes, "
        "and how that compares with converting the whole recording at once.")


def speech(seconds: float, sr: int, path: str | None) -> np.ndarray:
    """``seconds`` of speech at ``sr``: from ``path``, else synthesised with espeak-ng (repeated if short)."""
    if path is None:
        if shutil.which("espeak-ng") is None:
            raise SystemExit("error: espeak-ng not found: pass --input SPEECH.wav")
        with tempfile.TemporaryDirectory() as tmp:
            wav = os.path.join(tmp, "speech.wav")
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", wav, TEXT], check=True)
            x, _ = audio.load(wav, sr=sr)
    else:
        x, _ = audio.load(path, sr=sr)
    n = int(seconds * sr)
    return np.resize(x, n).astype(np.float32) if x.shape[0] < n else x[:n]


def time_streaming(model, x: np.ndarray, sr: int, cf: int, mode: str, runs: int) -> dict[str, float]:
    conv = StreamingConverter(model, chunk_factor=cf, mode=mode)
    step, duration = conv.chunk_samples, x.shape[0] / sr
    warm = x[: 16 * step]
    for i in range(0, warm.shape[0], step):
        conv.process(warm[i:i + step])
    conv.flush()
    conv.timings.clear()
    rtfs = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], step):
            conv.process(x[i:i + step])
        conv.flush()
        rtfs.append(time.perf_counter() - t0)
    chunk_ms = conv.timings.compute_times() * 1e3
    return {"proc_per_audio": float(np.median(rtfs)) / duration, "p50_ms": float(np.percentile(chunk_ms, 50)),
            "p99_ms": float(np.percentile(chunk_ms, 99)), "mean_ms": float(chunk_ms.mean()),
            "latency_samples": conv.latency_samples}


def time_offline(model, x: np.ndarray, runs: int) -> float:
    convert(model, x[:16000])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        convert(model, x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.bench llvc", description=__doc__.split("\n\n")[0])
    ap.add_argument("-p", "--checkpoint", default=None)
    ap.add_argument("-c", "--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--input", default=None, help="speech file (default: espeak-ng synthesis)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chunk-factors", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reference", action="store_true", help="also time the reference infer_stream procedure")
    args = ap.parse_args(argv)

    if args.checkpoint:
        model, sr = load_model(args.checkpoint, args.config)
        weights = args.checkpoint
    else:
        config = load_config(args.config)
        torch.manual_seed(0)
        model, sr = build_model(config, args.config).eval(), int(config["data"]["sr"])
        weights = "random init (speed does not depend on weights)"
    x = speech(args.seconds, sr, args.input)
    dur = x.shape[0] / sr
    print(f"LLVC speed: config {args.config}; weights {weights}; {dur:.1f} s of speech @ {sr} Hz; "
          f"torch {torch.__version__}; {os.cpu_count()} CPUs; load avg {os.getloadavg()[0]:.2f} at start")
    print("proc/audio = processing time / audio time (median of runs; < 1 is faster than real time); "
          "e2e = algorithmic latency + mean chunk compute")
    header = f"{'threads':>7} {'cf':>3} {'mode':>9} {'proc/audio':>10} {'p50 ms':>7} {'p99 ms':>7} {'chunk ms':>8} " \
             f"{'e2e ms':>7} {'offline':>8} {'stream/off':>10} {'load':>5}"
    print(header)
    modes = ["exact"] + (["reference"] if args.reference else [])
    with torch.inference_mode():
        for threads in args.threads:
            torch.set_num_threads(threads)
            offline = time_offline(model, x, args.runs) / dur
            for cf in args.chunk_factors:
                for mode in modes:
                    r = time_streaming(model, x, sr, cf, mode, args.runs)
                    e2e = r["latency_samples"] / sr * 1e3 + r["mean_ms"]
                    print(f"{threads:>7} {cf:>3} {mode:>9} {r['proc_per_audio']:>10.3f} {r['p50_ms']:>7.2f} "
                          f"{r['p99_ms']:>7.2f} {13 * cf:>8} {e2e:>7.1f} {offline:>8.3f} "
                          f"{r['proc_per_audio'] / offline:>10.2f} {os.getloadavg()[0]:>5.2f}", flush=True)
    return 0
