"""Speed of the RVC teacher at full size on this machine: ``python -m vxlib.data.teachers.rvc.benchmark``.

No trained weights exist here, so the models are untrained but full-size (speed does not depend
on the values): RVC v2 32 kHz with f0 (28.1 M parameters) and HuBERT base (94.4 M) as the
ContentVec layer-12 encoder. Prints seconds per stage and the real-time factor (RTF = processing
time / audio duration) for one utterance, after one warm-up run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vxlib import pitch
from vxlib.hubert import FairseqHubert, hubert_base_config

from .checkpoint import RVCModel
from .models import Synthesizer, SynthesizerConfig
from .pipeline import Padding, RVCPipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--f0-method", default="dio", choices=["harvest", "dio", "crepe"])
    ap.add_argument("--x-pad", type=float, default=1.0, help="context padding (s); reference CPU default is 3")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    synth = Synthesizer(SynthesizerConfig()).eval()
    model = RVCModel(synth, "v2", True, 32000, synth.config.spk_embed_dim, "untrained", "<full-size v2 32k>")
    hubert = FairseqHubert(hubert_base_config())
    timings: dict[str, float] = {}

    def timed(name, fn):
        def run(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
            return out
        return run

    encoder = timed("content (HuBERT base, layer 12)", hubert.content_encoder(12))
    f0 = timed(f"f0 ({args.f0_method})", lambda x: pitch.extract_f0(x, args.f0_method))
    synth.infer = timed("synthesizer", synth.infer)
    pipe = RVCPipeline(model, encoder, f0_extractor=f0, padding=Padding(x_pad=args.x_pad))
    sr = 16000
    t = np.arange(int(args.seconds * sr)) / sr
    audio = (0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)

    pipe(audio, f0_up_key=12)  # warm-up (allocations, oneDNN primitives)
    timings.clear()
    start = time.perf_counter()
    pipe(audio, f0_up_key=12)
    total = time.perf_counter() - start
    print(f"RVC teacher, {args.seconds:.1f} s input, x_pad {args.x_pad} s, {args.threads} threads, CPU float32")
    for name, sec in timings.items():
        print(f"  {name:34s} {sec:7.2f} s  RTF {sec / args.seconds:6.2f}")
    print(f"  {'total':34s} {total:7.2f} s  RTF {total / args.seconds:6.2f}")


if __name__ == "__main__":
    main()
