"""The HuBERT feature loss: a fairseq-named state dict maps onto vxlib.hubert's model, whose CNN
feature extractor matches a hand-built reference; the trainer switches the loss on with a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vxlib.hubert import FairseqHubert, read_fairseq_checkpoint
from vxlib.hubert import config_from_checkpoint
from vxlib.llvc.losses import HubertFeatureLoss
from vxlib.llvc.train import LLVCTrainer, TrainOptions

CONV = [(8, 10, 5), (8, 3, 2), (8, 2, 2)]  # (channels, kernel, stride): a 3-layer wav2vec2 extractor
EMBED, FFN, POS_K, POS_G = 16, 32, 4, 2


def fairseq_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised HuBERT in fairseq's parameter names (1 transformer layer)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return 0.3 * torch.randn(*shape, generator=g)

    sd = {}
    c_in = 1
    for i, (c, k, _) in enumerate(CONV):
        sd[f"feature_extractor.conv_layers.{i}.0.weight"] = r(c, c_in, k)
        c_in = c
    sd["feature_extractor.conv_layers.0.2.weight"] = 1 + r(8)  # GroupNorm(8, 8) on the first conv
    sd["feature_extractor.conv_layers.0.2.bias"] = r(8)
    sd["layer_norm.weight"], sd["layer_norm.bias"] = 1 + r(8), r(8)
    sd["post_extract_proj.weight"], sd["post_extract_proj.bias"] = r(EMBED, 8), r(EMBED)
    sd["encoder.pos_conv.0.weight_g"] = 1 + r(1, 1, POS_K).abs()
    sd["encoder.pos_conv.0.weight_v"] = r(EMBED, EMBED // POS_G, POS_K)
    sd["encoder.pos_conv.0.bias"] = r(EMBED)
    sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"] = 1 + r(EMBED), r(EMBED)
    p = "encoder.layers.0."
    for proj in ("q", "k", "v", "out"):
        sd[f"{p}self_attn.{proj}_proj.weight"], sd[f"{p}self_attn.{proj}_proj.bias"] = r(EMBED, EMBED), r(EMBED)
    sd[f"{p}self_attn_layer_norm.weight"], sd[f"{p}self_attn_layer_norm.bias"] = 1 + r(EMBED), r(EMBED)
    sd[f"{p}fc1.weight"], sd[f"{p}fc1.bias"] = r(FFN, EMBED), r(FFN)
    sd[f"{p}fc2.weight"], sd[f"{p}fc2.bias"] = r(EMBED, FFN), r(EMBED)
    sd[f"{p}final_layer_norm.weight"], sd[f"{p}final_layer_norm.bias"] = 1 + r(EMBED), r(EMBED)
    sd["final_proj.weight"], sd["final_proj.bias"] = r(8, EMBED), r(8)
    sd["mask_emb"], sd["label_embs_concat"] = r(EMBED), r(504, 8)  # pretraining-only, ignored
    return sd


def reference_cnn_features(sd: dict[str, torch.Tensor], wav: torch.Tensor) -> torch.Tensor:
    """fairseq's ConvFeatureExtractionModel ("default" mode) written out: conv -> GroupNorm (first
    layer only, one group per channel) -> GELU, no conv bias. (B, T) -> (B, 8, frames)."""
    x = wav[:, None]
    for i, (_, _, stride) in enumerate(CONV):
        x = F.conv1d(x, sd[f"feature_extractor.conv_layers.{i}.0.weight"], stride=stride)
        if i == 0:
            x = F.group_norm(x, 8, sd["feature_extractor.conv_layers.0.2.weight"],
                             sd["feature_extractor.conv_layers.0.2.bias"], eps=1e-5)
        x = F.gelu(x)
    return x


def write_checkpoint(path: Path) -> Path:
    torch.save({"model": fairseq_state_dict(), "cfg": {"model": {
        "conv_feature_layers": "[(8,10,5)] + [(8,3,2)] + [(8,2,2)]", "encoder_attention_heads": 2,
        "extractor_mode": "default"}}}, path)
    return path


def test_mapped_feature_extractor_matches_the_hand_built_reference(tmp_path):
    path = write_checkpoint(tmp_path / "hubert_small.pt")
    hubert = FairseqHubert.from_checkpoint(path)
    sd = read_fairseq_checkpoint(path)["model"]
    wav = 0.3 * torch.randn(2, 1600, generator=torch.Generator().manual_seed(1))
    got = hubert.cnn_features(wav)
    want = reference_cnn_features(sd, wav)
    assert got.shape == want.shape == (2, 8, hubert.num_frames(1600))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)

    loss_fn = HubertFeatureLoss(hubert)
    out = (0.3 * torch.randn(2, 1, 1600)).requires_grad_(True)
    tgt = 0.3 * torch.randn(2, 1, 1600)
    loss = loss_fn(out, tgt)
    expected = F.mse_loss(reference_cnn_features(sd, out.detach()[:, 0]), reference_cnn_features(sd, tgt[:, 0]))
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    loss.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0  # gradients reach the generator output
    assert all(p.grad is None for p in hubert.parameters())  # the teacher stays frozen


def test_a_mis_shaped_fairseq_state_dict_is_refused_with_the_key(tmp_path):
    sd = fairseq_state_dict()
    sd["encoder.layers.0.fc2.bias"] = torch.zeros(EMBED + 1)
    ckpt = {"model": sd, "cfg": {"model": {"conv_feature_layers": "[(8,10,5)] + [(8,3,2)] + [(8,2,2)]",
                                           "encoder_attention_heads": 2}}}
    model = FairseqHubert(config_from_checkpoint(ckpt))
    with pytest.raises(ValueError, match=r"mis-shaped keys: encoder\.layers\.0\.fc2\.bias"):
        model.load_fairseq_state_dict(sd)


def test_trainer_turns_the_hubert_loss_on_when_the_checkpoint_exists(config, pairs_dir, tmp_path):
    config["aux_fairseq"]["checkpoint_path"] = str(write_checkpoint(tmp_path / "hubert_small.pt"))
    messages = []
    trainer = LLVCTrainer(config, TrainOptions(run_dir=tmp_path / "run", data_dir=pairs_dir, eval_at_start=False,
                                               log=messages.append))
    assert trainer.hubert_status.startswith("on") and any("HuBERT feature loss on" in m for m in messages)
    stats = trainer.train_step(0.3 * torch.randn(2, 1, 4096), 0.3 * torch.randn(2, 1, 4096))
    assert stats["loss/g/hubert"] > 0
    expected_total = (stats["loss/g/adv"] + 2 * stats["loss/g/fm"] + 10 * stats["loss/g/mel"]
                      + 100000 * stats["loss/g/hubert"])
    assert stats["loss/g/total"] == pytest.approx(expected_total, rel=1e-5)
    json.dumps(trainer._options_record())  # the run record stays serialisable
