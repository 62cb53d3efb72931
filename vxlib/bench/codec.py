"""Resynthesis quality of the embedded WorldCodec (issue 7, item 3b): Whisper WER and DNSMOS.

    python -m vxlib.bench codec --corpus DIR --sentences FILE [--n-train 300] [--n-test 30]
                                [--codec DIR | --config JSON] [--save DIR] [--rows original,world,codec]

``DIR`` holds one audio file per line of ``FILE`` (sorted file names pair with lines in order,
e.g. ``0000.wav`` .. ``0329.wav`` from a Piper run over the sentence list). The codec is fitted on
the first ``--n-train`` utterances (or loaded from ``--codec``) and every row is measured on the
``--n-test`` utterances after them, never seen by the fit:

- ``original``: the corpus audio itself (the ASR's own floor on these sentences);
- ``world``: unquantised WORLD analysis + synthesis with the codec's analysis settings (the
  codec's ceiling: everything it loses beyond this is quantisation and decoding);
- ``codec``: ``decode(encode(x))``.

Whisper tiny.en (faster-whisper, int8, beam 5) hears each clip with 0.33 s of silence on both
sides: tiny.en otherwise often drops the first word of tightly cut TTS sentences; numbers are
spelled out on both sides (:func:`vxlib.eval.text.normalize_text`) before the corpus-level WER.
DNSMOS (P.808 and P.835 overall) via speechmos at 16 kHz, clipped to [-1, 1].
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from vxlib import audio
from vxlib.codec.world_codec import WorldCodec, WorldCodecConfig, corpus_files, world_features, world_synthesis

ASR_PAD_S = 1 / 3  # silence around each clip for tiny.en, the same for every row


def evaluate_resynthesis(render: Callable[[np.ndarray], np.ndarray], wavs: Sequence[np.ndarray], texts: Sequence[str],
                         sr: int, names: Sequence[str] | None = None) -> dict[str, float]:
    """Render every ``wavs[i]`` (``(T,)`` float at ``sr``) and score the result against ``texts[i]``:
    corpus WER of Whisper tiny.en and mean DNSMOS. -> ``{"wer", "dnsmos_p808", "dnsmos_ovrl"}``."""
    from vxlib.asr import WhisperTranscriber
    from vxlib.eval.mos import dnsmos
    from vxlib.eval.text import error_rates

    asr = WhisperTranscriber()
    pad = np.zeros(round(ASR_PAD_S * sr), np.float32)
    hyps, p808, ovrl = [], [], []
    for x in wavs:
        y = np.clip(np.asarray(render(x), np.float32), -1.0, 1.0)
        hyps.append(asr.transcribe(np.concatenate([pad, y, pad]), sr))
        m = dnsmos(y, sr)
        p808.append(m["dnsmos_p808"])
        ovrl.append(m["dnsmos_ovrl"])
    rates = error_rates(texts, hyps, names)
    return {"wer": rates.wer, "dnsmos_p808": float(np.mean(p808)), "dnsmos_ovrl": float(np.mean(ovrl))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vxlib.bench codec", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="audio files, sorted names pair with --sentences lines")
    parser.add_argument("--sentences", type=Path, required=True, help="one transcript per line")
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=30)
    parser.add_argument("--codec", type=Path, help="a fitted WorldCodec directory (default: fit one on the training part)")
    parser.add_argument("--config", type=Path, help="JSON of WorldCodecConfig overrides for the fit")
    parser.add_argument("--save", type=Path, help="save the fitted codec here")
    parser.add_argument("--rows", default="original,world,codec", help="comma-separated subset of original,world,codec")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    if unknown := set(rows) - {"original", "world", "codec"}:
        parser.error(f"unknown rows {sorted(unknown)}")

    torch.set_num_threads(args.threads)
    files = corpus_files(args.corpus)
    texts = [s.strip() for s in args.sentences.read_text().splitlines() if s.strip()]
    need = args.n_train + args.n_test
    if len(files) < need or len(texts) < need:
        parser.error(f"need {need} files and sentences, got {len(files)} files in {args.corpus} and {len(texts)} lines in {args.sentences}")

    if args.codec:
        codec = WorldCodec.from_pretrained(args.codec)
        fit_note = f"loaded from {args.codec}"
    else:
        config = WorldCodecConfig.from_dict(json.loads(args.config.read_text()) if args.config else {})
        t0 = time.perf_counter()
        codec = WorldCodec.fit((audio.load(f, sr=config.sample_rate)[0] for f in files[: args.n_train]), config,
                               log=lambda m: print(m, file=sys.stderr))
        fit_note = f"fitted on {args.n_train} utterances in {time.perf_counter() - t0:.0f} s ({args.threads} threads)"
        if args.save:
            codec.save(args.save)
    cfg, sr = codec.config, codec.sample_rate
    test_files = files[args.n_train : need]
    test_wavs = [audio.load(f, sr=sr)[0] for f in test_files]
    test_texts = texts[args.n_train : need]
    names = [str(f) for f in test_files]
    renders = {
        "original": ("original audio", lambda x: x),
        "world": ("WORLD analysis/synthesis, unquantised", lambda x: world_synthesis(world_features(x, cfg), cfg)),
        "codec": (f"WorldCodec {cfg.codebook_size} (decoder context ±{cfg.context_frames}, smoothing {cfg.smoothing_frames}, "
                  f"{cfg.synthesis_subframes} synthesis subframes)",
                  lambda x: codec.decode(codec.encode(x, sr))[0].numpy()),
    }
    print(f"WorldCodec {fit_note}; {len(test_wavs)} held-out utterances; decoder lookahead "
          f"{cfg.lookahead_samples} samples ({1000 * cfg.lookahead_samples / sr:.1f} ms)")
    print("| audio | Whisper tiny.en WER | DNSMOS P.808 | DNSMOS overall |\n|---|---|---|---|")
    for row in rows:
        label, render = renders[row]
        r = evaluate_resynthesis(render, test_wavs, test_texts, sr, names)
        print(f"| {label} | {100 * r['wer']:.1f}% | {r['dnsmos_p808']:.2f} | {r['dnsmos_ovrl']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
