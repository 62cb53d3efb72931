import pytest

from vxlib.eval.streaming import streaming_figures
from vxlib.stream import ChunkTiming

SR, CHUNK, L = 16000, 208, 16  # LLVC at chunk factor 1: 13 ms chunks, L = 16 samples
D = CHUNK / SR


def realtime(compute_s: list[float]) -> list[ChunkTiming]:
    """Chunks arriving every 13 ms, each computed as soon as it arrives and the converter is free,
    its output handed back at once."""
    recs, free = [], 0.0
    for i, c in enumerate(compute_s):
        arrival = (i + 1) * D
        start = max(arrival, free)
        free = start + c
        recs.append(ChunkTiming(i, arrival, start, free, free))
    return recs


def test_reference_latency_formula():
    fig = streaming_figures(realtime([0.005] * 20), SR, CHUNK, lookahead_samples=2 * L)
    # reference: ((2L + chunk_len) / sr + mean_chunk_time) * 1000 = 15 ms + 5 ms
    assert fig.e2e_latency_ms_mean == pytest.approx(20.0)
    assert fig.algorithmic_latency_ms == pytest.approx(15.0)
    assert fig.rtf == pytest.approx(0.005 / D)
    assert fig.speed == pytest.approx(D / 0.005)
    assert fig.chunk_ms_p50 == pytest.approx(5.0) and fig.chunk_ms_p99 == pytest.approx(5.0)
    assert fig.underruns == 0 and fig.underrun_s == 0.0
    assert fig.audio_s == pytest.approx(20 * D)


def test_one_slow_chunk_underruns_once_and_queues_the_next():
    compute = [0.005] * 20
    compute[10] = 0.030  # 30 ms for a 13 ms chunk
    fig = streaming_figures(realtime(compute), SR, CHUNK)
    assert fig.underruns == 1
    # playback runs 5 ms behind arrival; chunk 10 is ready 30 ms after arrival: 25 ms of silence
    assert fig.underrun_s == pytest.approx(0.025)
    assert fig.chunk_ms_p99 > 20.0 and fig.chunk_ms_p50 == pytest.approx(5.0)
    # a 30 ms prebuffer hides the stall
    assert streaming_figures(realtime(compute), SR, CHUNK, prebuffer_s=0.030).underruns == 0


def test_too_slow_for_real_time_underruns_every_chunk():
    fig = streaming_figures(realtime([1.5 * D] * 10), SR, CHUNK)
    assert fig.rtf == pytest.approx(1.5)
    assert fig.underruns == 9  # every chunk after the first
    assert fig.e2e_latency_ms_p99 > fig.e2e_latency_ms_p50  # the backlog grows


def test_output_handed_back_late_counts_in_latency():
    late = [ChunkTiming(0, 0.0, 0.0, 0.002, 0.010)]  # computed in 2 ms, handed back after 10 ms
    fig = streaming_figures(late, SR, CHUNK)
    assert fig.chunk_ms_mean == pytest.approx(2.0)
    assert fig.e2e_latency_ms_mean == pytest.approx(13.0 + 10.0)


def test_accepts_mappings_and_rejects_inconsistent_records():
    rec = {"arrival": 0.0, "compute_start": 0.0, "compute_end": 0.001, "ready": 0.001}
    assert streaming_figures([rec], 16000, 160).chunk_ms_mean == pytest.approx(1.0)
    with pytest.raises(ValueError, match="record 0 is inconsistent"):
        streaming_figures([ChunkTiming(0, 1.0, 0.5, 2.0, 2.0)], 16000, 160)
    with pytest.raises(TypeError, match="lacks"):
        streaming_figures([{"arrival": 0.0}], 16000, 160)


def test_records_of_the_llvc_streaming_converter():
    import json
    from pathlib import Path

    import numpy as np
    import torch

    from vxlib.llvc.model import Net
    from vxlib.llvc.streaming import StreamingConverter

    config = json.loads((Path(__file__).resolve().parents[2] / "experiments/llvc_tiny/config.json").read_text())
    torch.manual_seed(0)
    converter = StreamingConverter(Net(**config["model_params"]).eval(), chunk_factor=2)
    x = np.random.default_rng(0).normal(0, 0.1, 10 * converter.chunk_samples + converter.lookahead)
    for block in np.split(x[: 10 * converter.chunk_samples], 10):  # real-time sized blocks
        converter.process(block.astype(np.float32))
    converter.process(x[10 * converter.chunk_samples:].astype(np.float32))
    fig = streaming_figures(converter.timings.records, SR, converter.chunk_samples, converter.lookahead)
    assert fig.chunks == len(converter.timings.records) >= 9
    assert fig.algorithmic_latency_ms == pytest.approx((2 * 208 + 16) / 16)  # 27 ms at chunk factor 2
    assert fig.e2e_latency_ms_mean > fig.algorithmic_latency_ms
    assert fig.processing_s > 0 and fig.speed == pytest.approx(1 / fig.rtf)
