"""Convert files with an LLVC checkpoint (mirrors the reference ``infer.py`` options).

    python -m vxlib.llvc.infer -p G_500000.pth -c experiments/llvc/config.json -f in.wav -o out/ [-s] [-n 1]

Any input rate and channel count is read with :mod:`vxlib.audio`, mixed to mono and resampled to
the model's rate (16 kHz). Outputs are float WAVs named like the inputs. With ``-s`` each file is
converted by :class:`~vxlib.llvc.StreamingConverter` in chunk-sized blocks and the speed is
printed as processing time / audio time (below 1 is faster than real time; the reference prints
the inverse and calls it RTF) with the end-to-end latency = algorithmic latency + mean chunk time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vxlib import audio
from vxlib.llvc.inference import convert, load_model
from vxlib.llvc.streaming import StreamingConverter

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}


def list_inputs(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{path}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in this directory")
        return files
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return [path]


def convert_streaming(model, x: np.ndarray, chunk_factor: int, mode: str) -> tuple[np.ndarray, StreamingConverter, float]:
    """Feed ``x`` in chunk-sized blocks (as a sound card would); return (output, converter, seconds)."""
    conv = StreamingConverter(model, chunk_factor=chunk_factor, mode=mode)
    step = conv.chunk_samples
    t0 = time.perf_counter()
    pieces = [conv.process(x[i:i + step]) for i in range(0, x.shape[0], step)]
    pieces.append(conv.flush())
    return np.concatenate(pieces), conv, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.llvc.infer", description=__doc__.split("\n\n")[0])
    ap.add_argument("-p", "--checkpoint_path", required=True, help="generator checkpoint (G_*.pth)")
    ap.add_argument("-c", "--config_path", required=True, help="config.json with model_params")
    ap.add_argument("-f", "--fname", required=True, help="input audio file or directory")
    ap.add_argument("-o", "--out_dir", required=True, help="output directory")
    ap.add_argument("-s", "--stream", action="store_true", help="streaming conversion with speed report")
    ap.add_argument("-n", "--chunk_factor", type=int, default=1, help="streaming chunk = 208*n samples (13*n ms)")
    ap.add_argument("--mode", choices=("exact", "reference"), default="exact",
                    help="exact: equals offline conversion; reference: reproduces the reference infer_stream")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, sr = load_model(args.checkpoint_path, args.config_path)
        files = list_inputs(Path(args.fname))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out_dir = Path(args.out_dir)
    if args.stream:
        print(f"speed: processing/audio = compute time / audio duration (< 1 is faster than real time); "
              f"e2e latency = algorithmic latency + mean chunk compute; threads={torch.get_num_threads()}")
    for path in files:
        try:
            meta = audio.info(path)
            x, _ = audio.load(path, sr=sr, mono=True)
        except audio.AudioError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if meta.sample_rate != sr or meta.channels != 1:
            print(f"{path}: {meta.channels} ch @ {meta.sample_rate} Hz -> mono @ {sr} Hz")
        if args.stream:
            y, conv, elapsed = convert_streaming(model, x, args.chunk_factor, args.mode)
            stats = conv.timings.summary()
            e2e_ms = conv.latency_samples / sr * 1e3 + stats["mean_ms"]
            print(f"{path.name}: processing/audio {elapsed / (x.shape[0] / sr):.3f}  "
                  f"chunk p50 {stats['p50_ms']:.2f} ms p99 {stats['p99_ms']:.2f} ms  e2e latency {e2e_ms:.1f} ms "
                  f"(cf={args.chunk_factor}, mode={args.mode})")
        else:
            y = convert(model, x)
        out = audio.save(out_dir / f"{path.stem}.wav", y, sr, subtype="FLOAT")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
