"""The chunked SOLA runner (the LLVC paper's RVC/QuickVC streaming baselines)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import hilbert

from vxlib.eval.streaming import streaming_figures
from vxlib.stream import SimulatedClock
from vxlib.stream.sola import SolaConfig, SolaStreamer

SR = 16000


def stream(streamer: SolaStreamer, x: np.ndarray, block: int) -> np.ndarray:
    pieces = [streamer.process(x[i:i + block]) for i in range(0, x.shape[0], block)]
    return np.concatenate(pieces + [streamer.flush()])


def identity(window: np.ndarray) -> np.ndarray:
    return window


def test_reference_sizes_at_16k_and_the_windows_the_converter_sees(rng):
    windows = []

    def record(window):
        windows.append(window.copy())
        return window

    s = SolaStreamer(record, SR)
    assert (s.chunk_samples, s.crossfade, s.search, s.extra) == (1600, 256, 192, 1024)
    assert s.window_samples == 3072  # 192 ms: extra + search + crossfade + block
    assert s.latency_samples == 1600 + 256
    x = rng.standard_normal(4 * 1600).astype(np.float32)
    stream(s, x, 1600)
    assert [len(w) for w in windows] == [1600, 3072, 3072, 3072]  # the first windows have less past
    np.testing.assert_array_equal(windows[0], x[:1600])
    np.testing.assert_array_equal(windows[-1], x[-3072:])


@pytest.mark.parametrize("length", [100, 1600, 5000, 17777])
@pytest.mark.parametrize("block", [1, 37, 1600, None])
def test_identity_converter_gives_back_the_input_exactly_aligned(rng, length, block):
    x = (0.1 * rng.standard_normal(length)).astype(np.float32)
    s = SolaStreamer(identity, SR)
    y = stream(s, x, block or length)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-7)
    assert set(s.offsets) == {s.search}  # aligned windows: SOLA finds the zero shift every time


def test_sola_aligns_phases_where_a_plain_crossfade_cancels(rng):
    """A converter whose output phase depends on where its window starts (as a vocoder's does):
    crossfading unaligned sines dips the level; SOLA's search (192 samples > one 80-sample period)
    joins them in phase."""
    t = np.arange(16 * 1600) / SR
    x = np.sin(2 * np.pi * 200 * t).astype(np.float32)

    def random_phase_sine(window):
        n = np.arange(window.shape[0]) / SR
        return np.sin(2 * np.pi * 200 * n + rng.uniform(0, 2 * np.pi)).astype(np.float32)

    def min_envelope(config):
        y = stream(SolaStreamer(random_phase_sine, SR, config), x, 1600)
        return np.abs(hilbert(y))[1600:-1600].min()  # away from the stream's ends

    assert min_envelope(SolaConfig()) > 0.97
    assert min_envelope(SolaConfig(search_ms=0.0)) < 0.6


def test_silent_tail_keeps_the_offset():
    s = SolaStreamer(lambda w: np.zeros_like(w), SR)
    y = stream(s, np.ones(8000, np.float32), 1600)
    assert set(s.offsets) == {s.search} and not y.any()


def test_timing_records_give_the_streaming_figures():
    clock = SimulatedClock()

    def slow_identity(window):
        clock.advance(0.02)  # 20 ms of "compute" per step
        return window

    s = SolaStreamer(slow_identity, SR, clock=clock)
    stream(s, np.zeros(10 * 1600, np.float32), 1600)
    assert len(s.timings.records) == 10  # flush() adds no records: no partial block here
    f = streaming_figures(s.timings.records, SR, s.chunk_samples, s.lookahead)
    assert f.chunk_ms_mean == pytest.approx(20.0)
    assert f.algorithmic_latency_ms == pytest.approx(116.0)  # 100 ms block + 16 ms crossfade
    assert f.e2e_latency_ms_mean == pytest.approx(136.0)
    assert f.speed == pytest.approx(5.0)


def test_streams_are_independent_after_flush(rng):
    x = rng.standard_normal(5000).astype(np.float32)
    gain = lambda w: 0.5 * w  # noqa: E731
    s = SolaStreamer(gain, SR)
    first = stream(s, x, 700)
    second = stream(s, x, 700)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, 0.5 * x, atol=1e-7)


def test_bad_converters_blocks_and_sizes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        SolaStreamer(lambda w: w[:-1], SR).process(np.zeros(1600, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        SolaStreamer(lambda w: w * np.nan, SR).process(np.zeros(1600, np.float32))
    with pytest.raises(ValueError, match="index 3"):
        SolaStreamer(identity, SR).process(np.array([0, 0, 0, np.inf], np.float32))
    with pytest.raises(ValueError, match="1-D"):
        SolaStreamer(identity, SR).process(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="cannot exceed"):
        SolaStreamer(identity, SR, SolaConfig(block_ms=10.0))  # 160-sample block < 256 crossfade
