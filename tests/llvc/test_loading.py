"""load_model: eval mode, weights_only loading, clear errors for mismatched or broken inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vxlib.llvc import CheckpointMismatchError, load_model, save_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_load_model_returns_eval_mode(llvc_golden):
    model, sr = load_model(llvc_golden / "G_random_seed0_outscaled.pth", llvc_golden / "config.json")
    assert sr == 16000 and not model.training
    assert not any(m.training for m in model.modules())


def test_prenet_checkpoint_with_no_prenet_config_lists_unexpected_keys(llvc_golden):
    with pytest.raises(CheckpointMismatchError) as err:
        load_model(llvc_golden / "G_random_seed0_outscaled.pth", REPO / "experiments/llvc_nc/config.json")
    msg = str(err.value)
    assert "G_random_seed0_outscaled.pth" in msg and "llvc_nc/config.json" in msg
    assert "unexpected keys (48)" in msg and "convnet_pre.down_convs.0.filter.weight" in msg
    assert "missing keys" not in msg


def test_mismatched_shapes_and_missing_keys_are_listed(llvc_golden, tmp_path):
    config = json.loads((llvc_golden / "config.json").read_text())
    config["model_params"]["dec_dim"] = 128
    config["model_params"]["num_dec_layers"] = 2
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError) as err:
        load_model(llvc_golden / "G_random_seed0_outscaled.pth", cfg)
    msg = str(err.value)
    assert "mis-shaped keys" in msg
    assert "mask_gen.proj_e2d_e.0.weight: checkpoint (256, 2, 1) vs model (128, 4, 1)" in msg
    assert "missing keys" in msg and "mask_gen.decoder.tf_dec_layers.1.norm3.bias" in msg


def test_bad_files_give_clear_errors(llvc_golden, tmp_path):
    cfg = llvc_golden / "config.json"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_model(tmp_path / "nope.pth", cfg)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: not a loadable PyTorch checkpoint"):
        load_model(junk, cfg)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        load_model(llvc_golden / "G_random_seed0_outscaled.pth", broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"data": {"sr": 16000}}))
    with pytest.raises(ValueError, match="no 'model_params'"):
        load_model(llvc_golden / "G_random_seed0_outscaled.pth", other)
    typo = tmp_path / "typo.json"
    config = json.loads(cfg.read_text())
    config["model_params"]["enc_dims"] = 512
    typo.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="typo.json: model_params do not fit Net.*enc_dims"):
        load_model(llvc_golden / "G_random_seed0_outscaled.pth", typo)


class NotATensor:
    pass


def test_weights_only_refuses_pickled_code(llvc_golden, tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"x": NotATensor()}}, evil)
    with pytest.raises(ValueError, match="evil.pth: not a loadable"):
        load_model(evil, llvc_golden / "config.json")


def test_save_checkpoint_round_trips_in_the_official_layout(golden_model, llvc_golden, tmp_path):
    path = save_checkpoint(tmp_path / "G_1.pth", golden_model, epoch=1, step=1, optimizer=None, learning_rate=5e-4)
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"model", "epoch", "step", "optimizer", "learning_rate"}
    model, _ = load_model(path, llvc_golden / "config.json")
    for k, v in golden_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
