"""Preallocated buffers for block-wise streaming: a sliding history window and a chunk framer.

Both hand out *views* into memory allocated once, so a steady-state streaming step does no
allocation and no ``torch.cat``. A view is valid until the next call that writes the buffer.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

__all__ = ["SlidingBuffer", "ChunkFramer", "SampleFifo"]


class SlidingBuffer:
    """Rows ``(capacity, *row_shape)`` where the newest rows always follow ``history`` older rows
    contiguously, so "the last ``history + n`` rows" is a plain view (convolution windows, attention
    contexts) without concatenation.

    Writing appends at ``end``; when the next write would overflow, the last ``history`` rows move
    to the front (one copy of ``history`` rows every ``(capacity - history) / n`` writes, i.e. an
    amortised cost of at most ``n`` rows per write with the default capacity). The history starts
    as zeros: the zero-initialised caches of a causal network.
    """

    def __init__(self, history: int, max_write: int, row_shape: tuple[int, ...] = (),
                 dtype: torch.dtype = torch.float32, capacity: int | None = None):
        if history < 0 or max_write <= 0:
            raise ValueError(f"need history >= 0 and max_write > 0, got {history}, {max_write}")
        self.history, self.max_write = history, max_write
        self.capacity = capacity or 2 * history + 4 * max_write
        if self.capacity < history + max_write:
            raise ValueError(f"capacity {self.capacity} < history {history} + max_write {max_write}")
        self.data = torch.zeros((self.capacity, *row_shape), dtype=dtype)
        self.end = history

    def reset(self) -> None:
        self.data.zero_()
        self.end = self.history

    def reserve(self, n: int) -> torch.Tensor:
        """The next ``n`` rows, to be written in place (e.g. as ``out=``); they count as written."""
        if n > self.max_write:
            raise ValueError(f"write of {n} rows exceeds max_write={self.max_write}")
        if self.end + n > self.capacity:
            tail = self.data[self.end - self.history:self.end]
            self.data[:self.history] = tail.clone() if self.end < 2 * self.history else tail
            self.end = self.history
        view = self.data[self.end:self.end + n]
        self.end += n
        return view

    def push(self, rows: torch.Tensor) -> None:
        self.reserve(rows.shape[0]).copy_(rows)

    def last(self, n: int) -> torch.Tensor:
        """The newest ``n`` rows (``n <= history + rows written since the last compaction``)."""
        if n > self.end:
            raise ValueError(f"asked for the last {n} rows, only {self.end} are held")
        return self.data[self.end - n:self.end]


class ChunkFramer:
    """Regroups blocks of any size into fixed-size chunks of a 1-D sample stream.

    The first chunk is ``chunk_size + lookahead`` samples, every later one ``chunk_size``: chunk k
    then ends ``lookahead`` samples after its nominal end ``(k+1)*chunk_size``, which is what a
    model with a look-ahead window needs before it can emit chunk k. Chunks lying wholly inside a
    given block are yielded as views of it (no copy); others are assembled in a preallocated buffer.
    """

    def __init__(self, chunk_size: int, lookahead: int = 0, dtype: torch.dtype = torch.float32):
        if chunk_size <= 0 or lookahead < 0:
            raise ValueError(f"need chunk_size > 0 and lookahead >= 0, got {chunk_size}, {lookahead}")
        self.chunk_size, self.lookahead = chunk_size, lookahead
        self._buf = torch.zeros(chunk_size + lookahead, dtype=dtype)
        self.reset()

    def reset(self) -> None:
        self._fill = 0
        self._target = self.chunk_size + self.lookahead
        self.chunks_out = 0
        self.samples_in = 0

    @property
    def pending(self) -> int:
        """Samples received but not yet part of a yielded chunk."""
        return self._fill

    def feed(self, block: torch.Tensor) -> Iterator[torch.Tensor]:
        """Yield every chunk completed by ``block`` (1-D); each view is valid until the next yield."""
        n, pos = block.shape[0], 0
        self.samples_in += n
        while pos < n:
            take = min(self._target - self._fill, n - pos)
            if self._fill == 0 and take == self._target:
                chunk = block[pos:pos + take]
            else:
                self._buf[self._fill:self._fill + take] = block[pos:pos + take]
                self._fill += take
                chunk = self._buf[:self._target] if self._fill == self._target else None
            pos += take
            if chunk is not None:
                self._fill = 0
                self._target = self.chunk_size
                self.chunks_out += 1
                yield chunk

    def remainder(self) -> torch.Tensor:
        """Take the pending samples (a copy) and start over as if at the beginning of a chunk."""
        rest = self._buf[:self._fill].clone()
        self._fill = 0
        return rest


class SampleFifo:
    """A preallocated single-producer/single-consumer ring of float32 samples (numpy), for handing
    converted audio from the producer to a sound-card callback. Nothing is ever dropped silently:
    a write that does not fit raises, a read that finds too little is counted as an underrun."""

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._data = np.zeros(capacity, np.float32)
        self.capacity = capacity
        self._read = 0   # total samples read
        self._write = 0  # total samples written
        self.underruns = 0

    def __len__(self) -> int:
        return self._write - self._read

    def write(self, x: np.ndarray) -> None:
        n = x.shape[0]
        if n > self.capacity - len(self):
            raise OverflowError(f"SampleFifo overflow: writing {n} samples with {self.capacity - len(self)} free")
        start = self._write % self.capacity
        first = min(n, self.capacity - start)
        self._data[start:start + first] = x[:first]
        self._data[:n - first] = x[first:]
        self._write += n

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` with the oldest samples; zero-fill (and count an underrun) if too few."""
        n = min(out.shape[0], len(self))
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._data[start:start + first]
        out[first:n] = self._data[:n - first]
        if n < out.shape[0]:
            out[n:] = 0.0
            self.underruns += 1
        self._read += n
        return n
