"""Streaming TTS latency and speed on CPU (issue 8, item 9).

    python -m vxlib.bench tts [--threads 1 2] [--first-chunk 4 10] [--precision fp32 int8]
                              [--decoder fp32 int8] [--lookahead 4] [--repeats 5] [--no-llvc]

Default-size LLMVoX GPT (4 x 768) and the full-size WavTokenizer decoder, both random init (speed
does not depend on the values; the audio is noise), through :class:`MultiQueueStreamer` with the
reference's dump-size schedule (``--first-chunk`` is ``initial_dump_size_1``) and vxlib's seam-free
decoding. The text is all there when the stream starts (a fast LLM), so the figures are the speech
side's own latency. Per configuration, medians over ``--repeats`` runs:

- ``first audio ms``: first text piece -> first chunk ready (GPT steps for the first chunk and its
  look-ahead, plus one decode); replica B waits for it (``StreamConfig.first_audio_priority``);
- ``threads``: intra-op threads of each replica (``StreamConfig.replica_threads``; replica B
  waits for the first chunk, so the first audio has replica A's threads to itself) and of this
  process's main thread; the LLVC stage always runs one (``TargetVoiceStage.THREADS``);
- ``gpt`` / ``dec``: the GPT's and the WavTokenizer decoder's weights (``fp32``, or ``int8``:
  dynamically quantised linears and dense convolutions, :mod:`vxlib.quant`);
- ``proc/audio``: first text piece -> last chunk ready, over the audio's duration (< 1: faster
  than real time);
- with ``+llvc``: the same after the LLVC stage (24 -> 16 kHz streaming resampling and
  :class:`~vxlib.llvc.StreamingConverter`, the ``llvc`` recipe's size, random init).

Quality: the first sentence's streamed waveform against one decode of the same codes by the same
decoder (SNR, overall and at the worst seam, usually the first chunk's), next to the reference's
context-free per-chunk decoding of the same chunks (``ref``); with the int8 decoder also the SNR of
its whole decode against the fp32 decoder's (``int8 vs fp32``). The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from vxlib.llmvox.model import GPTConfig
from vxlib.llmvox.stream import MultiQueueStreamer, SeamlessDecoder, StreamConfig, TTSStack, build_codec, seam_snr_db

TEXT = ("The quick brown fox jumps over the lazy dog. Streaming speech keeps the latency low "
        "enough for a natural conversation.")
MAX_PAD = 100  # PAD steps per sentence: a random model rarely says end-of-audio, so cap its tail


def _run(streamer: MultiQueueStreamer, voice) -> dict[str, float]:
    t_first_audio = None
    with streamer.stream([TEXT]) as stream:
        chunks = voice.convert(stream) if voice is not None else stream
        n = 0
        for c in chunks:
            if t_first_audio is None and c.audio.size:
                t_first_audio = time.perf_counter()
            n += c.audio.size
        t_end = time.perf_counter()
    sr = voice.sample_rate if voice is not None else streamer.sample_rate
    return {"ttfa_ms": 1e3 * (t_first_audio - stream.first_text_time),
            "proc_per_audio": (t_end - stream.first_text_time) / (n / sr), "stream": stream}


def seam_quality(streamer: MultiQueueStreamer, stream) -> dict[str, float]:
    """SNR of the first sentence's streamed audio vs one decode of its codes, and the same for the
    reference's way (each chunk decoded alone, no look-ahead, no crossfade) with the same chunks."""
    first = [c for c in stream.chunks if c.sentence == 0]
    codes = [k for c in first for k in c.codes]
    codec = streamer.replicas[0].decoder.codec
    with torch.inference_mode():
        whole = codec.decode(torch.tensor(codes))[0].numpy()
        fp32 = streamer.stack.codec.decode(torch.tensor(codes))[0].numpy()
    seams = list(np.cumsum([c.audio.size for c in first])[:-1])
    ours = seam_snr_db(np.concatenate([c.audio for c in first]), whole, seams)
    naive = SeamlessDecoder(codec, 0, 0, 0).decode_all(codes, [c.tokens for c in first[:-1]])
    ref = seam_snr_db(naive, whole, seams)
    return {**ours, "ref_snr_db": ref["snr_db"], "ref_worst_seam_snr_db": ref["worst_seam_snr_db"],
            "vs_fp32_db": seam_snr_db(whole, fp32)["snr_db"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.bench tts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--first-chunk", type=int, nargs="+", default=[4, 10], help="initial_dump_size_1 values")
    ap.add_argument("--lookahead", type=int, nargs="+", default=[4])
    ap.add_argument("--precision", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"], help="GPT weights")
    ap.add_argument("--decoder", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"], help="decoder weights")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-llvc", action="store_true")
    ap.add_argument("--llvc-config", default=os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "llvc", "config.json"))
    args = ap.parse_args(argv)

    codec = build_codec({"type": "wavtokenizer-random"}, seed=0)
    stack = TTSStack.random_demo(codec, GPTConfig(n_embd=256 + codec.feature_dim, vocab_size=codec.codebook_size), seed=0)
    voice = None
    if not args.no_llvc:
        from vxlib.llmvox.chain import TargetVoiceStage
        from vxlib.llvc.inference import build_model, load_config

        cfg = load_config(args.llvc_config)
        torch.manual_seed(0)
        voice = TargetVoiceStage(build_model(cfg).eval(), int(cfg["data"]["sr"]), stack.sample_rate)
    print(f"{stack.label}; WavTokenizer decoder full size, random init; torch {torch.__version__}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; medians of {args.repeats}")
    print(f"text: {len(TEXT)} characters, 2 sentences, all available at t=0; "
          f"decode from the sentence start; PAD tail capped at {MAX_PAD} tokens")
    print(f"{'threads':>7} {'gpt':>4} {'dec':>4} {'first':>5} {'ahead':>5} {'stage':>6} {'first audio ms':>14} {'proc/audio':>10} "
          f"{'SNR dB':>7} {'worst seam dB':>13} {'ref SNR dB':>10} {'ref worst seam':>14} {'int8 vs fp32':>12}")
    configs = [(p, d, f, la) for p in args.precision for d in args.decoder for f in args.first_chunk for la in args.lookahead]
    for threads in args.threads:
        torch.set_num_threads(threads)
        for precision, dec, first, lookahead in configs:
            cfg = StreamConfig(initial_dump_size_1=first, lookahead=lookahead, crossfade=min(320, lookahead * 320),
                               max_pad_tokens=MAX_PAD, gpt_precision=precision, decoder_precision=dec,
                               replica_threads=threads)
            streamer = MultiQueueStreamer(stack, cfg)
            _run(streamer, None)  # warm-up (allocator, kernels)
            for stage in ["tts"] + ([] if voice is None else ["+llvc"]):
                runs = [_run(streamer, voice if stage == "+llvc" else None) for _ in range(args.repeats)]
                ttfa = statistics.median(r["ttfa_ms"] for r in runs)
                proc = statistics.median(r["proc_per_audio"] for r in runs)
                q = seam_quality(streamer, runs[-1]["stream"]) if stage == "tts" else None
                qs = (f"{q['snr_db']:>7.1f} {q['worst_seam_snr_db']:>13.1f} {q['ref_snr_db']:>10.1f} "
                      f"{q['ref_worst_seam_snr_db']:>14.1f} {q['vs_fp32_db'] if dec == 'int8' else '-':>12.5}") if q else ""
                print(f"{threads:>7} {precision:>4} {dec:>4} {first:>5} {lookahead:>5} {stage:>6} {ttfa:>14.1f} {proc:>10.2f} {qs}",
                      flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    return 0
