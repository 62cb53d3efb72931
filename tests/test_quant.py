"""int8 inference layers (vxlib.quant): agreement with fp32, which modules are replaced, and the
int8 WavTokenizer decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from vxlib.codec.wavtokenizer import WavTokenizer
from vxlib.quant import Int8Conv1d, Int8Linear, quantize_modules


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("reduce_range", [False, True])
def test_int8_linear_tracks_fp32(reduce_range):
    torch.manual_seed(0)
    lin = nn.Linear(96, 200)
    x = torch.randn(2, 5, 96)
    with torch.inference_mode():
        got = Int8Linear(lin, reduce_range=reduce_range)(x)
        ref = lin(x)
    assert got.shape == ref.shape == (2, 5, 200)
    assert _rel(got, ref) < 0.03


@pytest.mark.parametrize("kernel,padding", [(1, 0), (3, 1), (7, 3), (3, 0)])
def test_int8_conv1d_tracks_fp32(kernel, padding):
    torch.manual_seed(1)
    conv = nn.Conv1d(24, 40, kernel, padding=padding)
    x = torch.randn(2, 24, 19)
    with torch.inference_mode():
        got = Int8Conv1d(conv)(x)
        ref = conv(x)
    assert got.shape == ref.shape
    assert _rel(got, ref) < 0.03
    # the im2col ordering is right: an exactly representable weight gives an almost exact result
    with torch.no_grad():
        conv.weight.copy_(torch.randint(-127, 128, conv.weight.shape).float() / 127)
    with torch.inference_mode():
        assert _rel(Int8Conv1d(conv)(x), conv(x)) < 0.01


def test_quantize_modules_replaces_dense_layers_only():
    net = nn.Sequential(nn.Conv1d(8, 8, 3, padding=1), nn.Conv1d(8, 8, 7, padding=3, groups=8), nn.Conv1d(8, 8, 2, stride=2),
                        nn.GroupNorm(2, 8))
    head = nn.Linear(8, 4)
    q = quantize_modules(nn.ModuleDict({"net": net, "head": head}))
    assert type(q["net"][0]) is Int8Conv1d and type(q["head"]) is Int8Linear
    assert type(q["net"][1]) is nn.Conv1d and type(q["net"][2]) is nn.Conv1d  # depth-wise / strided stay fp32
    assert type(net[0]) is nn.Conv1d and type(head) is nn.Linear  # the original is untouched
    assert type(quantize_modules(net, convs=False)[0]) is nn.Conv1d
    with pytest.raises(ValueError, match="dense stride-1"):
        Int8Conv1d(net[1])


def test_int8_wavtokenizer_decoder(golden_dir):
    d = golden_dir / "wavtokenizer"
    codec = WavTokenizer.from_pretrained(d / "wavtokenizer_reduced.yaml", d / "wavtokenizer_reduced.ckpt",
                                         encoder_dim=32, encoder_filters=8)
    q = codec.int8_decoder()
    assert q.feature_extractor is codec.feature_extractor  # encoder and codebook shared, not copied
    assert type(codec.backbone.convnext[0].pwconv1) is nn.Linear  # fp32 decoder untouched
    assert type(q.backbone.convnext[0].pwconv1) is Int8Linear and type(q.backbone.embed) is Int8Conv1d
    assert type(q.backbone.convnext[0].dwconv) is nn.Conv1d
    codes = torch.randint(0, codec.codebook_size, (60,), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = codec.decode(codes)[0].numpy()
        got = q.decode(codes)[0].numpy()
    assert got.shape == ref.shape
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((got.astype(np.float64) - ref) ** 2))
    assert snr > 20, snr  # measured 32.7 dB on the full-size random decoder
    wav = torch.sin(torch.arange(4800) * 0.05) * 0.3
    assert torch.equal(q.encode(wav, 24000), codec.encode(wav, 24000))
