"""Clocks and per-chunk timing records for streaming pipelines.

A :class:`Clock` gives "now" in seconds. :class:`MonotonicClock` is wall time for real runs;
:class:`SimulatedClock` is advanced explicitly, so a file-driven test can replay a real-time
schedule (block arrivals every block period) deterministically while compute is still measured
with the real clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np

__all__ = ["Clock", "MonotonicClock", "SimulatedClock", "ChunkTiming", "TimingLog"]


class Clock(Protocol):
    def now(self) -> float: ...


class MonotonicClock:
    """``time.perf_counter`` (monotonic, highest resolution)."""

    def now(self) -> float:
        return time.perf_counter()


class SimulatedClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 0.0):
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        if dt < 0:
            raise ValueError(f"a clock cannot go back (dt={dt})")
        self.t += dt

    def advance_to(self, t: float) -> None:
        self.t = max(self.t, float(t))


@dataclass(frozen=True)
class ChunkTiming:
    """One chunk's life: its last input sample arrived, compute started and ended, output was
    handed back (``ready``). Times in seconds on the recording clock."""

    index: int
    arrival: float
    compute_start: float
    compute_end: float
    ready: float

    @property
    def compute(self) -> float:
        return self.compute_end - self.compute_start

    @property
    def wait(self) -> float:
        return self.ready - self.arrival


@dataclass
class TimingLog:
    records: list[ChunkTiming] = field(default_factory=list)

    def add(self, record: ChunkTiming) -> None:
        self.records.append(record)

    def run_chunks(self, chunks: Iterable[Any], step: Callable[[Any], Any], clock: "Clock", arrival: float) -> list:
        """Run ``step`` on each chunk a framer released for one input block and record one
        :class:`ChunkTiming` per chunk: ``arrival`` is when the block came in, compute spans each
        step, and ``ready`` is when the block's last output exists (what a caller can play)."""
        outs, spans = [], []
        for chunk in chunks:
            t0 = clock.now()
            outs.append(step(chunk))
            spans.append((t0, clock.now()))
        ready = clock.now()
        for t0, t1 in spans:
            self.add(ChunkTiming(len(self.records), arrival, t0, t1, ready))
        return outs

    def clear(self) -> None:
        self.records.clear()

    def compute_times(self) -> np.ndarray:
        return np.array([r.compute for r in self.records], dtype=np.float64)

    def summary(self) -> dict[str, float]:
        """Count, mean, p50, p99 and max compute time per chunk, in milliseconds."""
        c = self.compute_times() * 1e3
        if c.size == 0:
            return {"chunks": 0}
        return {"chunks": int(c.size), "mean_ms": float(c.mean()), "p50_ms": float(np.percentile(c, 50)),
                "p99_ms": float(np.percentile(c, 99)), "max_ms": float(c.max())}
