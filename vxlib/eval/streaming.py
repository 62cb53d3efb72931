"""Streaming figures from per-chunk timing records: speed, per-chunk compute, latency, under-runs.

The records are :class:`vxlib.stream.ChunkTiming` (what ``StreamingConverter.timings`` collects), or
any object or mapping with the same fields, in seconds on one monotonic clock:

- ``arrival``: the input that completed the chunk arrived (real time: the audio device delivered
  it; a file-driven run on a simulated clock: its scheduled arrival);
- ``compute_start`` / ``compute_end``: the converter computed the chunk;
- ``ready``: its output was handed back (it can be played from then on).

Every chunk yields ``chunk_samples`` output samples (``d = chunk_samples / sr``). From these, with
``lookahead`` the model's algorithmic delay beyond one chunk:

- processing/audio time ``rtf = sum(compute_end - compute_start) / (chunks * d)``; ``speed = 1 / rtf``
  (the LLVC paper's "speed", x real time; its reference code prints it as "RTF");
- per-chunk compute: mean, p50, p99 in ms;
- end-to-end latency of a chunk ``= d + lookahead + (ready - arrival)``: the chunk's first sample
  waited ``d`` for the chunk to fill, ``lookahead`` for future context, then queueing and compute.
  With ``ready - arrival`` = compute and ``lookahead = 2L`` its mean is exactly the reference's
  ``(2L + chunk_len) / sr + mean_chunk_time`` (15 ms + compute at chunk factor 1; the reference
  counts its re-fed 2L overlap, the model's true look-ahead is L: ``StreamingConverter.lookahead``);
- under-runs: playback starts when the first output is ready (plus ``prebuffer_s``) and plays the
  chunks back to back; an under-run is a chunk not ready when the previous one has finished
  playing. Playback then waits for it (the gap is added to ``underrun_s``) and continues from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["StreamingFigures", "streaming_figures"]

_FIELDS = ("arrival", "compute_start", "compute_end", "ready")
_CLOCK_TOLERANCE_S = 1e-6  # sums of float timestamps drift by ~1e-17 s: not an under-run


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


def _times(r: Any) -> tuple[float, float, float, float]:
    try:
        if isinstance(r, Mapping):
            return tuple(float(r[k]) for k in _FIELDS)
        return tuple(float(getattr(r, k)) for k in _FIELDS)
    except (KeyError, AttributeError) as err:
        raise TypeError(f"timing record {r!r} lacks one of {', '.join(_FIELDS)}") from err


def streaming_figures(records: Iterable[Any], sr: int, chunk_samples: int, lookahead_samples: int = 0,
                      prebuffer_s: float = 0.0) -> StreamingFigures:
    """Summarise the per-chunk timing ``records`` of one stream (see module doc)."""
    times = np.array([_times(r) for r in records], dtype=np.float64).reshape(-1, 4)  # (N, 4)
    if len(times) == 0:
        raise ValueError("no timing records")
    if chunk_samples <= 0:
        raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
    arrival, start, end, ready = times.T
    bad = np.flatnonzero(~((arrival <= start) & (start <= end) & (end <= ready)))
    if bad.size:
        raise ValueError(f"timing record {bad[0]} is inconsistent (need arrival <= compute_start <= compute_end "
                         f"<= ready): {dict(zip(_FIELDS, times[bad[0]]))}")
    d = chunk_samples / sr
    compute = end - start
    latency = d + lookahead_samples / sr + (ready - arrival)

    # Playback clock: starts with the first output (+ prebuffer), advances by one chunk per chunk.
    underruns, gap = 0, 0.0
    play_at = ready[0] + prebuffer_s
    for t in ready:
        if t > play_at + _CLOCK_TOLERANCE_S:  # the device ran dry: silence until this chunk is ready
            underruns += 1
            gap += t - play_at
            play_at = t
        play_at += d

    audio_s, processing_s = len(times) * d, float(compute.sum())
    ms = 1000.0
    return StreamingFigures(
        chunks=len(times), audio_s=audio_s, processing_s=processing_s,
        rtf=processing_s / audio_s, speed=audio_s / processing_s if processing_s > 0 else float("inf"),
        chunk_ms_mean=float(compute.mean() * ms), chunk_ms_p50=float(np.percentile(compute, 50) * ms),
        chunk_ms_p99=float(np.percentile(compute, 99) * ms),
        e2e_latency_ms_mean=float(latency.mean() * ms), e2e_latency_ms_p50=float(np.percentile(latency, 50) * ms),
        e2e_latency_ms_p99=float(np.percentile(latency, 99) * ms),
        algorithmic_latency_ms=(chunk_samples + lookahead_samples) / sr * ms,
        underruns=int(underruns), underrun_s=float(gap),
    )
