"""The streaming core: sliding windows, chunk framing, sample FIFO, clocks, file-driven backend."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vxlib.stream import ChunkFramer, FileBackend, SampleFifo, SimulatedClock, SlidingBuffer, TimingLog
from vxlib.stream.timing import ChunkTiming


def test_sliding_buffer_history_starts_as_zeros_and_windows_are_contiguous():
    buf = SlidingBuffer(history=3, max_write=2, row_shape=(2,))
    assert torch.equal(buf.last(3), torch.zeros(3, 2))
    buf.push(torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    w = buf.last(5)
    assert w.is_contiguous()
    assert w[:, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_sliding_buffer_keeps_the_last_rows_across_compactions():
    buf = SlidingBuffer(history=5, max_write=3, capacity=9)  # compacts often
    stream = torch.arange(1, 200, dtype=torch.float32)
    pos = 0
    for n in itertools.cycle([1, 3, 2]):
        if pos + n > stream.numel():
            break
        buf.reserve(n).copy_(stream[pos:pos + n])
        pos += n
        expect = torch.cat((torch.zeros(5), stream[:pos]))[-(5 + n):]
        assert torch.equal(buf.last(5 + n), expect)
    with pytest.raises(ValueError, match="max_write"):
        buf.reserve(4)


def test_sliding_buffer_reset_restores_zero_history():
    buf = SlidingBuffer(history=2, max_write=1)
    buf.push(torch.ones(1))
    buf.reset()
    assert torch.equal(buf.last(2), torch.zeros(2))


@pytest.mark.parametrize("block", [1, 5, 7, 16, 100])
def test_chunk_framer_gives_the_same_chunks_for_any_block_size(block):
    x = torch.arange(103, dtype=torch.float32)
    framer = ChunkFramer(chunk_size=16, lookahead=4)
    chunks = [c.clone() for i in range(0, 103, block) for c in framer.feed(x[i:i + block])]
    assert [c.numel() for c in chunks] == [20] + [16] * 5  # 20 + 80 = 100 samples consumed
    assert torch.equal(torch.cat(chunks), x[:100])
    assert framer.chunks_out == 6 and framer.pending == 3
    assert framer.remainder().tolist() == [100.0, 101.0, 102.0]
    assert framer.pending == 0


def test_chunk_framer_rejects_bad_sizes():
    with pytest.raises(ValueError):
        ChunkFramer(0)


def test_sample_fifo_wraps_around_and_counts_underruns():
    fifo = SampleFifo(5)
    out = np.empty(3, np.float32)
    fifo.write(np.array([1, 2, 3, 4], np.float32))
    assert fifo.read_into(out) == 3 and out.tolist() == [1, 2, 3]
    fifo.write(np.array([5, 6, 7], np.float32))  # wraps
    assert fifo.read_into(out) == 3 and out.tolist() == [4, 5, 6]
    assert fifo.underruns == 0
    assert fifo.read_into(out) == 1 and out.tolist() == [7, 0, 0]
    assert fifo.underruns == 1
    with pytest.raises(OverflowError):
        fifo.write(np.zeros(6, np.float32))


def test_simulated_clock_only_moves_forward():
    clock = SimulatedClock()
    clock.advance(0.5)
    clock.advance_to(0.2)
    assert clock.now() == 0.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_timing_log_summary():
    log = TimingLog()
    for i, ms in enumerate([1.0, 2.0, 3.0, 10.0]):
        log.add(ChunkTiming(i, 0.0, 0.0, ms / 1e3, ms / 1e3))
    s = log.summary()
    assert s["chunks"] == 4 and s["p50_ms"] == pytest.approx(2.5) and s["max_ms"] == pytest.approx(10.0)


def test_file_backend_replays_blocks_in_order_and_counts_missed_deadlines():
    x = np.arange(10, dtype=np.float32)
    # Fake timer: callback k "takes" costs[k] seconds; the block period is 4/4 = 1 s.
    costs = iter([0.5, 2.5, 0.5])
    ticks = []

    def timer():
        if len(ticks) % 2 == 0:
            ticks.append(0.0)
            return 0.0
        ticks.append(next(costs))
        return ticks[-1]

    backend = FileBackend(x, timer=timer)
    seen = []

    def callback(block, out):
        seen.append(block.copy())
        out[:] = block * 2

    report = backend.run(callback, sample_rate=4, block_size=4)
    assert [b.tolist() for b in seen] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # last block short
    assert np.array_equal(backend.played(), x * 2)
    # Block 1 is captured at t=2 and takes 2.5 s (due at 3): missed. It delays block 2 (captured
    # at 3, starts at 4.5, ends at 5 > 4): missed too.
    assert report.callbacks == 3 and report.deadline_misses == 2
