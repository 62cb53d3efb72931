"""Discriminator layouts (official key names and shapes) and output structure."""

from __future__ import annotations

import pytest
import torch

from vxlib.llvc.discriminators import (HifiGanDiscriminator, MultiPeriodDiscriminator, WeightNormConv1d,
                                       build_discriminator)

PERIODS = [2, 3, 5, 7, 11, 17, 23, 37]


def test_rvc_layout_matches_the_reference_keys_and_shapes():
    d = build_discriminator({"discriminator": "rvc", "periods": PERIODS})
    sd = d.state_dict()
    assert len(d.discriminators) == 1 + len(PERIODS)
    assert tuple(sd["discriminators.0.convs.0.weight_v"].shape) == (16, 1, 15)
    assert tuple(sd["discriminators.0.convs.4.weight_v"].shape) == (1024, 4, 41)  # groups 256
    assert tuple(sd["discriminators.0.conv_post.weight_g"].shape) == (1, 1, 1)
    assert tuple(sd["discriminators.1.convs.0.weight_v"].shape) == (32, 1, 5, 1)
    assert tuple(sd["discriminators.8.convs.4.weight_v"].shape) == (1024, 1024, 5, 1)
    assert tuple(sd["discriminators.8.conv_post.weight_v"].shape) == (1, 1024, 3, 1)
    # every conv: bias + weight_g + weight_v; 6 + 1 convs in the scale, 5 + 1 in each period discriminator
    assert len(sd) == 3 * (7 + 6 * len(PERIODS))


def test_hfg_layout_is_hifigan_msd_plus_mpd():
    d = build_discriminator({"discriminator": "hfg"})
    sd = d.state_dict()
    assert tuple(sd["discriminators.0.discriminators.0.convs.0.weight_orig"].shape) == (128, 1, 15)  # spectral norm
    assert "discriminators.0.discriminators.0.convs.0.weight_u" in sd
    assert tuple(sd["discriminators.0.discriminators.2.convs.5.weight_v"].shape) == (1024, 64, 41)
    assert tuple(sd["discriminators.1.discriminators.4.convs.0.weight_v"].shape) == (32, 1, 5, 1)
    assert [p.period for p in d.discriminators[1].discriminators] == [2, 3, 5, 7, 11]
    assert d.feature_loss_scale == 2.0


def test_weight_norm_conv_equals_the_plain_conv_it_was_made_from():
    torch.manual_seed(0)
    conv = WeightNormConv1d(3, 4, 5, padding=2)
    conv.weight_g.data *= 2.5  # a non-trivial norm
    w = conv.weight_g * conv.weight_v / conv.weight_v.norm(dim=(1, 2), keepdim=True)
    x = torch.randn(2, 3, 20)
    assert torch.allclose(conv(x), torch.nn.functional.conv1d(x, w, conv.bias, padding=2), atol=1e-6)


@pytest.mark.parametrize("kind,count", [("rvc", 3), ("hfg", 8)])
def test_outputs_one_entry_per_subdiscriminator_real_first(kind, count):
    d = build_discriminator({"discriminator": kind, "periods": [2, 3], "discriminator_width_divisor": 16})
    torch.manual_seed(0)
    real, fake = torch.randn(2, 1, 2048), torch.randn(2, 1, 2048)
    out = d(real, fake)
    assert len(out.real_logits) == len(out.fake_logits) == len(out.real_fmaps) == count
    # the batched call equals judging real alone
    alone = [sub(real)[0] for sub in (d.discriminators if kind == "rvc" else d.discriminators[1].discriminators)]
    tail = out.real_logits[-len(alone):]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(alone, tail))


def test_bad_discriminator_settings_fail_clearly():
    with pytest.raises(ValueError, match="unknown discriminator"):
        build_discriminator({"discriminator": "msd"})
    with pytest.raises(ValueError, match="power of two"):
        build_discriminator({"discriminator": "rvc", "discriminator_width_divisor": 3})
    with pytest.raises(ValueError, match="periods"):
        MultiPeriodDiscriminator([])
    assert isinstance(build_discriminator({"discriminator": "hfg", "discriminator_width_divisor": 8}), HifiGanDiscriminator)
