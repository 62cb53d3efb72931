"""Streaming figures from per-chunk timing records: speed, per-chunk compute, latency, under-runs.

A record says, for one chunk of ``samples`` input samples (which yields the same number of output
samples), on one monotonic clock in seconds:

- ``arrival``: the chunk's last input sample became available (real time: when the audio device
  delivered it; offline simulation: the moment processing could start);
- ``start`` / ``end``: the converter started / finished computing it; at ``end`` the output is ready.

From these, with ``d_i = samples_i / sr`` and ``lookahead`` the model's algorithmic delay beyond
one chunk:

- processing/audio time ``rtf = sum(end - start) / sum(d)``; ``speed = 1 / rtf`` (the LLVC paper's
  "speed", x real time; its reference code prints it as "RTF");
- per-chunk compute ``end - start``: mean, p50, p99 in ms;
- end-to-end latency of chunk i ``= d_i + lookahead + (end_i - arrival_i)``: the first sample of the
  chunk waited ``d_i`` for the chunk to fill, ``lookahead`` for future context, then queueing and
  compute. With ``start == arrival`` and the LLVC reference's ``lookahead = 2L`` its mean is exactly
  the reference's ``(2L + chunk_len) / sr + mean_chunk_time`` (15 ms + compute at chunk factor 1);
- under-runs: playback starts when the first output is ready (plus ``prebuffer_s``) and plays the
  chunks back to back; an under-run is a chunk not ready when the previous one finishes playing.
  Playback then waits for it (the gap is added to ``underrun_s``) and continues from there.

Records may be :class:`ChunkTiming`, any object with those four attributes (e.g. the records of
``vxlib.stream``), or mappings with those keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["ChunkTiming", "StreamingFigures", "streaming_figures"]


@dataclass(frozen=True)
class ChunkTiming:
    """One chunk's timing record (seconds on one monotonic clock; see module doc)."""

    arrival: float
    start: float
    end: float
    samples: int


@dataclass(frozen=True)
class StreamingFigures:
    chunks: int
    audio_s: float
    processing_s: float
    rtf: float  # processing time / audio time (< 1 keeps up with real time)
    speed: float  # audio time / processing time (the paper's "speed", x real time)
    chunk_ms_mean: float
    chunk_ms_p50: float
    chunk_ms_p99: float
    e2e_latency_ms_mean: float
    e2e_latency_ms_p50: float
    e2e_latency_ms_p99: float
    algorithmic_latency_ms: float  # chunk duration + lookahead, the part no hardware removes
    underruns: int
    underrun_s: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _as_record(r: Any) -> ChunkTiming:
    if isinstance(r, ChunkTiming):
        return r
    get = r.__getitem__ if isinstance(r, Mapping) else lambda k: getattr(r, k)
    try:
        return ChunkTiming(float(get("arrival")), float(get("start")), float(get("end")), int(get("samples")))
    except (KeyError, AttributeError) as err:
        raise TypeError(f"timing record {r!r} lacks arrival/start/end/samples") from err


def streaming_figures(records: Iterable[Any], sr: int, lookahead_samples: int = 0,
                      prebuffer_s: float = 0.0) -> StreamingFigures:
    """Summarise per-chunk timing ``records`` of one stream at sample rate ``sr`` (see module doc)."""
    recs = [_as_record(r) for r in records]
    if not recs:
        raise ValueError("no timing records")
    for i, r in enumerate(recs):
        if r.samples <= 0 or not (r.arrival <= r.start <= r.end):
            raise ValueError(f"timing record {i} is inconsistent (need samples > 0 and arrival <= start <= end): {r}")
    arrival = np.array([r.arrival for r in recs])
    start = np.array([r.start for r in recs])
    end = np.array([r.end for r in recs])
    dur = np.array([r.samples for r in recs], dtype=np.float64) / sr  # (N,) chunk durations, s
    compute = end - start
    lookahead_s = lookahead_samples / sr
    latency = dur + lookahead_s + (end - arrival)

    # Playback clock: starts with the first output (+ prebuffer), advances by each chunk's duration.
    underruns, gap = 0, 0.0
    play_at = end[0] + prebuffer_s
    for i in range(len(recs)):
        if end[i] > play_at:
            underruns += i > 0 or prebuffer_s > 0  # the first chunk defines the start unless prebuffered
            gap += end[i] - play_at
            play_at = end[i]
        play_at += dur[i]
    if prebuffer_s == 0:
        gap -= 0.0  # the first chunk never counts as a gap without a prebuffer (it sets play_at)

    audio_s, processing_s = float(dur.sum()), float(compute.sum())
    ms = 1000.0
    return StreamingFigures(
        chunks=len(recs), audio_s=audio_s, processing_s=processing_s,
        rtf=processing_s / audio_s, speed=audio_s / processing_s if processing_s > 0 else float("inf"),
        chunk_ms_mean=float(compute.mean() * ms), chunk_ms_p50=float(np.percentile(compute, 50) * ms),
        chunk_ms_p99=float(np.percentile(compute, 99) * ms),
        e2e_latency_ms_mean=float(latency.mean() * ms), e2e_latency_ms_p50=float(np.percentile(latency, 50) * ms),
        e2e_latency_ms_p99=float(np.percentile(latency, 99) * ms),
        algorithmic_latency_ms=float((np.median(dur) + lookahead_s) * ms),
        underruns=int(underruns), underrun_s=float(gap),
    )
