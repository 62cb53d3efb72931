"""Net: official parameter names/shapes, official configs, offline golden output, training path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vxlib.llvc import Net, build_model, convert, load_config
from vxlib.llvc.model import count_parameters

REPO = Path(__file__).resolve().parents[2]


def official_keys(golden_dir) -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in (golden_dir / "llvc_state_dict_keys.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape, _dtype = line.split("\t")
        keys[name] = tuple(json.loads(shape))
    return keys


def test_state_dict_names_and_shapes_are_official(golden_dir):
    model = build_model(load_config(REPO / "experiments/llvc/config.json"))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_keys(golden_dir)
    assert len(ours) == 147
    assert count_parameters(model) == 3_258_720


def test_shipped_configs(golden_dir):
    llvc = json.loads((REPO / "experiments/llvc/config.json").read_text())
    assert llvc == json.loads((golden_dir / "llvc/config.json").read_text())
    hfg = json.loads((REPO / "experiments/llvc_hfg/config.json").read_text())
    nc = json.loads((REPO / "experiments/llvc_nc/config.json").read_text())
    assert (hfg["discriminator"], hfg["batch_size"], hfg["eval_batch_size"]) == ("hfg", 7, 16)
    assert {k: v for k, v in hfg.items() if k not in ("discriminator", "batch_size", "eval_batch_size")} == \
        {k: v for k, v in llvc.items() if k not in ("discriminator", "batch_size", "eval_batch_size")}
    assert nc["model_params"]["convnet_config"]["convnet_prenet"] is False
    nc["model_params"]["convnet_config"]["convnet_prenet"] = True
    assert nc == llvc
    no_prenet = build_model(nc | {"model_params": json.loads((REPO / "experiments/llvc_nc/config.json").read_text())["model_params"]})
    assert not any(k.startswith("convnet_pre") for k in no_prenet.state_dict())
    assert len(no_prenet.state_dict()) == 147 - 48


def test_offline_output_matches_reference(golden_model, golden_input, llvc_golden):
    ref, _ = sf.read(llvc_golden / "output_nonstream_outscaled.wav", dtype="float32")
    y = convert(golden_model, golden_input)
    assert y.shape == golden_input.shape and y.dtype == np.float32
    assert np.abs(y - ref).max() <= 1e-4
    # tensors in, tensor out; odd lengths keep their length
    yt = convert(golden_model, torch.from_numpy(golden_input[:1001]))
    assert isinstance(yt, torch.Tensor) and yt.shape == (1001,)


def test_convert_rejects_bad_audio(golden_model):
    with pytest.raises(ValueError, match="1-D"):
        convert(golden_model, np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        convert(golden_model, np.zeros(0, np.float32))


def test_non_default_constructor_arguments():
    torch.manual_seed(0)
    net = Net(label_len=1, L=8, enc_dim=64, num_enc_layers=3, dec_dim=32, dec_buf_len=5, num_dec_layers=2,
              dec_chunk_size=4, out_buf_len=2, proj=False, skip_connection=False, lookahead=False,
              convnet_config={"convnet_prenet": True, "out_channels": [1, 1], "kernel_sizes": [3, 5],
                              "dilations": [1, 2], "dropout": 0.0, "combine_residuals": "add",
                              "skip_connection": "multiply", "use_residual_blocks": True}).eval()
    assert net.in_conv[0].weight.shape == (64, 1, 8)
    assert net.mask_gen.decoder.tf_dec_layers[0].self_attn.embed_dim == 64  # no projection
    assert not hasattr(net.mask_gen, "proj_e2d_e")
    assert net.out_conv[0].weight.shape == (64, 1, 24)
    assert convert(net, np.random.default_rng(0).standard_normal(333).astype(np.float32) * 0.1).shape == (333,)


def test_training_forward_is_differentiable_and_stochastic(golden_model):
    net = Net(**load_config(REPO / "experiments/llvc/config.json")["model_params"])
    net.load_state_dict(golden_model.state_dict())
    net.train()
    x = torch.randn(2, 1, 1040) * 0.1
    y = net(x)
    assert y.shape == (2, 1, 1040)
    y.pow(2).mean().backward()
    grads = {k: p.grad for k, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["mask_gen.encoder.dcc_layers.dcc_0.layers.3.weight"].abs().sum() > 0
    # dropout is on in train mode (the reference inference forgot to turn it off)
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    b = net(x)
    assert not torch.allclose(a, b)
