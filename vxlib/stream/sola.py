"""Run a whole-utterance converter on a live stream: overlapping windows joined by SOLA crossfades.

This is the real-time setup of the RVC WebUI / voice-changer family, which the LLVC paper uses for
its RVC and QuickVC baselines (reference ``compare_infer.py``: 100 ms window, 256-sample
crossfade, 12 ms search, 1024 samples of extra context, at 16 kHz). Every ``block`` of new input
the converter runs on the last ``extra + search + crossfade + block`` input samples (192 ms with
the defaults: past context, so the newest block is not at the edge of what the converter sees).
Of its output only the last ``search + crossfade + block`` samples are used::

    converted window:  | extra ........ | search | crossfade | block ............ |
    searched region:                    |<-- search + crossfade -->|
    emitted:                            [o, o + block)        o in [0, search]
    held back (next step's fade-in):    [o + block, o + block + crossfade)

The first ``crossfade`` emitted samples are crossfaded with the tail the previous step held back.
Two independently converted windows are not in phase where they meet (a vocoder's phase
depends on where its window starts), and an unaligned crossfade of two voiced waveforms cancels
partials: a dip in level, heard as a click or flanging. SOLA (synchronous overlap-add; Roucos &
Wilgus, ICASSP 1985; in voice changers via DDSP-SVC and the RVC WebUI) therefore picks the offset
``o`` that maximises the cross-correlation between the faded previous tail and the new output,
normalised by the new output's energy, so the crossfade joins waveforms in phase. The fades are
``cos^2`` out and ``sin^2`` in: complementary gains that sum to one, so an aligned join leaves the
level unchanged.

Timing: an emitted block's content ends ``crossfade`` samples before the newest input (that tail
is held back for the next crossfade), so the algorithmic latency is ``block + crossfade``
(100 ms + 16 ms); SOLA can take content up to ``search`` samples older still (12 ms). The reference
reports window + compute (100 ms + compute) as the end-to-end latency, without the held-back tail.

Where this runner differs from the reference loop (each a defect there):

- the first step emits its converted block (the reference emits 4096 zero samples whatever the
  block length, so its output is shifted against the input by ``4096 - block`` samples);
- the stream's end is flushed (the last partial block zero-padded, the held-back tail emitted)
  instead of dropping the last partial block; the output delay of ``crossfade`` samples is removed,
  so the concatenated output has exactly the input's length and is aligned with it;
- the correlation's energy floor is the reference's ``1e-3`` in int16 units (its audio was
  int16-scaled), i.e. ``1e-3 / 32768**2`` for float audio (``1e-3`` would swamp quiet passages);
  when all offsets score the same (a silent tail) the previous offset is kept rather than jumping
  to 0;
- one sample rate throughout (the reference sized its input buffer with the output-rate block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from vxlib.stream.buffers import ChunkFramer
from vxlib.stream.timing import Clock, MonotonicClock, TimingLog

__all__ = ["SolaConfig", "SolaStreamer"]

Converter = Callable[[np.ndarray], np.ndarray]

# The reference adds 1e-3 to energies of int16-scaled audio; the same floor for audio in [-1, 1].
_ENERGY_FLOOR = 1e-3 / 32768.0**2


@dataclass(frozen=True)
class SolaConfig:
    """Sizes of the chunked SOLA runner. Defaults: the LLVC reference's RVC/QuickVC baselines."""

    block_ms: float = 100.0  # new input per step (reference --window_ms): the latency floor
    crossfade: int = 256  # samples crossfaded between steps (reference --crossfade_overlap)
    search_ms: float = 12.0  # how far SOLA may move a block to align it (reference: 0.012 s)
    extra: int = 1024  # past context fed to the converter beyond what is emitted (--extra_convert_size)

    def block_samples(self, sample_rate: int) -> int:
        return round(self.block_ms * sample_rate / 1000)

    def search_samples(self, sample_rate: int) -> int:
        return round(self.search_ms * sample_rate / 1000)


class SolaStreamer:
    """Stream audio through ``convert`` (a whole-utterance converter) block by block with SOLA.

    ``convert(window)`` takes 1-D float32 audio at ``sample_rate`` and returns the converted audio,
    same length, time-aligned (the :class:`vxlib.data.teachers.base.Teacher` contract).
    ``process(block)`` accepts blocks of any size and returns the output that is ready;
    ``flush()`` returns the rest and resets for a new stream. The concatenated pieces are exactly
    as long as the input and aligned with it (up to the SOLA shift, at most ``search`` samples).
    Like :class:`vxlib.llvc.StreamingConverter`: ``chunk_samples`` (one step), ``lookahead`` (output
    held back beyond a step), ``latency_samples``, per-step ``timings`` of ``process`` calls and
    the chosen SOLA ``offsets`` (both kept across streams: clear them yourself).
    """

    def __init__(self, convert: Converter, sample_rate: int, config: SolaConfig = SolaConfig(),
                 clock: Clock | None = None):
        self.convert, self.sample_rate, self.config = convert, int(sample_rate), config
        self.chunk_samples = config.block_samples(sample_rate)
        self.crossfade, self.extra = int(config.crossfade), int(config.extra)
        self.search = config.search_samples(sample_rate)
        if self.chunk_samples <= 0 or self.crossfade <= 0 or self.search < 0 or self.extra < 0:
            raise ValueError(f"SOLA sizes must be positive (search, extra >= 0): block {self.chunk_samples}, "
                             f"crossfade {self.crossfade}, search {self.search}, extra {self.extra} samples")
        if self.crossfade > self.chunk_samples:
            raise ValueError(f"crossfade ({self.crossfade} samples) cannot exceed the block ({self.chunk_samples})")
        self.lookahead = self.crossfade  # the held-back tail: output lags its step by this much
        self.window_samples = self.extra + self.search + self.crossfade + self.chunk_samples
        ramp = np.arange(self.crossfade) / self.crossfade
        self._fade_in = np.sin(0.5 * np.pi * ramp) ** 2  # (crossfade,)
        self._fade_out = 1.0 - self._fade_in  # cos^2: the two gains sum to one
        self.clock = clock or MonotonicClock()
        self.timings = TimingLog()
        self.offsets: list[int] = []
        self.reset()

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency: a block's first sample is emitted once the block is complete, and
        its content is ``crossfade`` samples older than the block (SOLA may add up to ``search``)."""
        return self.chunk_samples + self.lookahead

    def reset(self) -> None:
        self._framer = ChunkFramer(self.chunk_samples)
        self._history = np.zeros(self.window_samples, np.float32)  # newest input at the end
        self._filled = 0  # how much of the history is real input (the first windows are shorter)
        self._tail: np.ndarray | None = None  # held-back output, unfaded (crossfade,)
        self._offset = self.search  # a continuous stream keeps o constant; search = the least delay
        self._to_skip = self.crossfade  # the stream's initial delay, removed from the output
        self._samples_in = 0
        self._samples_out = 0

    def process(self, block) -> np.ndarray:
        arrival = self.clock.now()
        x = self._as_array(block)
        outs = self.timings.run_chunks(self._framer.feed(torch.from_numpy(x)), lambda c: self._step(c.numpy()),
                                       self.clock, arrival)
        self._samples_in += x.shape[0]
        return self._emit(outs)

    def flush(self) -> np.ndarray:
        """The rest of the stream: the last partial block (zero-padded) and the held-back tail; then
        ``reset()``."""
        rest = self._framer.remainder().numpy()
        outs = []
        if rest.shape[0]:
            outs.append(self._step(np.pad(rest, (0, self.chunk_samples - rest.shape[0]))))
        if self._tail is not None:
            outs.append(self._tail)
        y = self._emit(outs, limit=self._samples_in - self._samples_out)
        self.reset()
        return y

    # -- internals ------------------------------------------------------------------------------

    @staticmethod
    def _as_array(block) -> np.ndarray:
        x = np.ascontiguousarray(block, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"process expects a 1-D block of mono samples, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"block contains NaN/inf samples (first at index {int(np.flatnonzero(~np.isfinite(x))[0])})")
        return x

    def _emit(self, outs: list[np.ndarray], limit: int | None = None) -> np.ndarray:
        y = np.concatenate(outs) if outs else np.zeros(0, np.float32)
        skip = min(self._to_skip, y.shape[0])
        y, self._to_skip = y[skip:], self._to_skip - skip
        if limit is not None:
            y = y[:limit]
        self._samples_out += y.shape[0]
        return y.astype(np.float32)

    def _step(self, chunk: np.ndarray) -> np.ndarray:
        """One block in, one block out (see the module docstring's diagram)."""
        B, cf, search = self.chunk_samples, self.crossfade, self.search
        self._history[:-B] = self._history[B:]
        self._history[-B:] = chunk
        self._filled = min(self._filled + B, self.window_samples)
        window = self._history[-self._filled:].copy()  # (filled,): the converter may keep or change it
        y = np.asarray(self.convert(window), dtype=np.float32)
        if y.shape != window.shape:
            raise ValueError(f"the converter returned shape {y.shape} for a window of {window.shape}: SOLA needs "
                             "output of the input's length, time-aligned with it")
        if not np.isfinite(y).all():
            raise ValueError("the converter returned NaN/inf samples")
        span = search + cf + B
        # Before the stream starts there is silence: the first windows are padded on the left.
        seg = y[-span:] if y.shape[0] >= span else np.concatenate((np.zeros(span - y.shape[0], np.float32), y))
        if self._tail is not None:
            self._offset = self._best_offset(seg[:search + cf], self._tail * self._fade_out)
        o = self._offset
        out = seg[o:o + B].astype(np.float64)
        if self._tail is not None:
            out[:cf] = out[:cf] * self._fade_in + self._tail * self._fade_out
        self._tail = seg[o + B:o + B + cf].copy()
        self.offsets.append(o)
        return out.astype(np.float32)

    def _best_offset(self, head: np.ndarray, faded_tail: np.ndarray) -> int:
        """argmax over o in [0, search] of <head[o:o+cf], faded_tail> / ||head[o:o+cf]||."""
        head = head.astype(np.float64)
        score = np.correlate(head, faded_tail, "valid")  # (search + 1,)
        energy = np.convolve(head**2, np.ones(self.crossfade), "valid")  # (search + 1,): sliding sum
        score /= np.sqrt(energy + _ENERGY_FLOOR)
        if score.max() == score.min():  # nothing to align on (a silent tail): keep the stream continuous
            return self._offset
        return int(np.argmax(score))
