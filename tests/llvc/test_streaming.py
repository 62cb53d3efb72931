"""StreamingConverter: exact mode equals offline conversion, reference mode equals the reference
infer_stream, for any chunk factor and block size; alignment and hold-back guarantees."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from vxlib.llvc import Net, StreamingConverter, convert


def stream(conv: StreamingConverter, x: np.ndarray, block: int, check_holdback: bool = False) -> np.ndarray:
    outs, fed, out = [], 0, 0
    for i in range(0, x.shape[0], block):
        y = conv.process(x[i:i + block])
        fed += min(block, x.shape[0] - i)
        out += y.shape[0]
        outs.append(y)
        if check_holdback:  # never more than one chunk plus the look-ahead (plus the block) held back
            assert out >= fed - (conv.chunk_samples + 2 * conv.L + block)
            assert out <= fed
    outs.append(conv.flush())
    return np.concatenate(outs)


def test_reference_mode_matches_reference_infer_stream(golden_model, golden_input, llvc_golden):
    ref, _ = sf.read(llvc_golden / "output_stream_cf1_outscaled.wav", dtype="float32")
    y = stream(StreamingConverter(golden_model, 1, mode="reference"), golden_input, 208)
    assert y.shape == ref.shape
    assert np.abs(y - ref).max() <= 1e-4
    # the reference's streaming is not its offline output (the prenet overlap defect)
    assert np.abs(y - convert(golden_model, golden_input)).max() > 1e-3


def test_reference_mode_does_not_depend_on_block_size(golden_model, golden_input):
    x = golden_input[:5000]
    a = stream(StreamingConverter(golden_model, 2, mode="reference"), x, 416)
    b = stream(StreamingConverter(golden_model, 2, mode="reference"), x, 97)
    assert np.abs(a - b).max() <= 1e-6


@pytest.mark.parametrize("cf", [1, 2, 3, 4])
@pytest.mark.parametrize("block", [37, 128, "chunk", 10_000])
def test_exact_mode_equals_offline(golden_model, golden_input, cf, block):
    x = golden_input[:12_000]
    conv = StreamingConverter(golden_model, cf)
    y = stream(conv, x, conv.chunk_samples if block == "chunk" else block, check_holdback=True)
    assert y.shape == x.shape
    assert np.abs(y - convert(golden_model, x)).max() <= 1e-5


def test_exact_mode_one_sample_blocks(golden_model, golden_input):
    x = golden_input[3000:4500]
    y = stream(StreamingConverter(golden_model, 1), x, 1, check_holdback=True)
    assert np.abs(y - convert(golden_model, x)).max() <= 1e-5


@pytest.mark.parametrize("length", [1, 15, 16, 17, 207, 224, 225, 433, 1249])
def test_exact_mode_short_and_odd_lengths(golden_model, golden_input, length):
    x = golden_input[6000:6000 + length]
    y = stream(StreamingConverter(golden_model, 2), x, 50)
    assert y.shape == (length,)
    assert np.abs(y - convert(golden_model, x)).max() <= 1e-5


def test_different_block_sizes_give_identical_output(golden_model, golden_input):
    x = golden_input[:4000]
    a = stream(StreamingConverter(golden_model, 1), x, 208)
    b = stream(StreamingConverter(golden_model, 1), x, 333)
    c = stream(StreamingConverter(golden_model, 1), x, 1)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_plain_pytorch_path_is_exact_too(golden_model, golden_input):
    x = golden_input[:7000]
    ref = convert(golden_model, x)
    fast = stream(StreamingConverter(golden_model, 1), x, 300)
    plain = stream(StreamingConverter(golden_model, 1, fast=False), x, 300)
    assert np.abs(plain - ref).max() <= 1e-5
    assert np.abs(plain - fast).max() <= 1e-5


def test_flush_resets_for_the_next_stream(golden_model, golden_input):
    conv = StreamingConverter(golden_model, 1)
    x = golden_input[:3000]
    first = stream(conv, x, 500)
    second = stream(conv, x, 700)
    assert np.array_equal(first, second)
    conv.process(x[:100])
    conv.reset()
    assert np.array_equal(stream(conv, x, 500), first)


def test_latency_and_errors(golden_model):
    conv = StreamingConverter(golden_model, 2)
    assert conv.chunk_samples == 416 and conv.latency_samples == 416 + 16
    with pytest.raises(ValueError, match="1-D"):
        conv.process(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        conv.process(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="mode"):
        StreamingConverter(golden_model, 1, mode="fast")
    with pytest.raises(ValueError, match="chunk_factor"):
        StreamingConverter(golden_model, 0)
    golden_model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            StreamingConverter(golden_model, 1)
    finally:
        golden_model.eval()


def random_net(**overrides) -> Net:
    torch.manual_seed(0)
    params = dict(label_len=1, L=8, enc_dim=64, num_enc_layers=4, dec_dim=32, dec_buf_len=7, num_dec_layers=2,
                  dec_chunk_size=5, out_buf_len=3, convnet_config={
                      "convnet_prenet": True, "out_channels": [1, 1, 1], "kernel_sizes": [3, 3, 3],
                      "dilations": [1, 2, 4], "dropout": 0.5, "combine_residuals": None,
                      "skip_connection": "add", "use_residual_blocks": True})
    params.update(overrides)
    return Net(**params).eval()


@pytest.mark.parametrize("variant", [
    {},                                                  # context length != block length, 2 decoder layers
    {"proj": False, "skip_connection": False},
    {"lookahead": False, "use_pos_enc": False},
    {"convnet_config": {"convnet_prenet": False}},
    {"convnet_config": {"convnet_prenet": True, "out_channels": [1, 1], "kernel_sizes": [3, 5], "dilations": [1, 2],
                        "dropout": 0.0, "combine_residuals": "add", "skip_connection": "multiply",
                        "use_residual_blocks": True}},   # module fallback for the prenet
])
@pytest.mark.parametrize("fast", [True, False])
def test_exact_mode_for_other_architectures(variant, fast):
    net = random_net(**variant)
    x = (np.random.default_rng(0).standard_normal(2345) * 0.2).astype(np.float32)
    for cf in (1, 3):
        y = stream(StreamingConverter(net, cf, fast=fast), x, 77)
        assert np.abs(y - convert(net, x)).max() <= 1e-5
