"""vxlib.hubert: fairseq-format HuBERT/ContentVec checkpoints read without fairseq.

No real checkpoint is on this machine, so the tests write small fairseq-format files (fairseq
key names, an ``args`` Namespace and fairseq-only classes in the pickle, as real files have)
and check that (a) every weight lands where it belongs — the layer outputs agree with an
independent implementation (transformers' HubertModel) loaded with the same weights — and
(b) broken files fail with the file and the offending keys named.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import types

import pytest
import torch

from vxlib.hubert import (FairseqHubert, HubertCheckpointError, HubertConfig, hubert_base_config,
                          read_fairseq_checkpoint)

SMALL = HubertConfig(conv_layers=[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2, embed_dim=64, num_layers=3,
                     num_heads=2, ffn_dim=128, pos_conv_kernel=16, pos_conv_groups=4, final_proj_dim=16)
ARGS = dict(conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2", encoder_attention_heads=2,
            extractor_mode="default", layer_norm_first=False)


@pytest.fixture(scope="module")
def reference() -> FairseqHubert:
    torch.manual_seed(0)
    model = FairseqHubert(SMALL)
    with torch.no_grad():  # non-trivial norms/biases so a mis-mapped tensor shows
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


class ChoiceEnum(str):
    """Plays the part of a fairseq-only class in the pickle (fairseq.dataclass.constants)."""

    def __reduce__(self):
        return (ChoiceEnum, (str(self),))


@pytest.fixture(scope="module")
def checkpoint(reference, tmp_path_factory):
    """A fairseq-style file whose pickle names a module that does not exist here."""
    fake_module = types.ModuleType("fairseq_only")
    ChoiceEnum.__module__ = "fairseq_only"
    fake_module.ChoiceEnum = ChoiceEnum
    sys.modules["fairseq_only"] = fake_module
    try:
        args = argparse.Namespace(**{**ARGS, "extractor_mode": ChoiceEnum("default")})
        sd = {**reference.fairseq_state_dict(), "label_embs_concat": torch.zeros(10, 16), "mask_emb": torch.zeros(64)}
        path = tmp_path_factory.mktemp("hubert") / "checkpoint_best_legacy_500.pt"
        torch.save({"args": args, "cfg": None, "model": sd}, path)
    finally:
        del sys.modules["fairseq_only"]
    return path


def test_unpickles_without_foreign_code(checkpoint):
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):  # plain weights_only refuses it
        torch.load(checkpoint, weights_only=True)
    ckpt = read_fairseq_checkpoint(checkpoint)
    assert ckpt["args"]["extractor_mode"] == "default"
    assert ckpt["args"]["encoder_attention_heads"] == 2


def test_load_reproduces_every_output(checkpoint, reference):
    model = FairseqHubert.from_checkpoint(checkpoint)
    assert model.config == SMALL
    wave = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model.cnn_features(wave), reference.cnn_features(wave))
        for layer in (1, 3):
            assert torch.equal(model.layer_output(wave, layer), reference.layer_output(wave, layer))
        feats = model.layer_output(wave, 3)
        assert torch.equal(model.project(feats), reference.project(feats))


def test_frame_counts(reference):
    with torch.no_grad():
        for n in (400, 719, 720, 16000, 128000 // 8):
            expected = (n - 400) // 320 + 1
            assert reference.num_frames(n) == expected
            assert reference.cnn_features(torch.zeros(1, n)).shape == (1, 32, expected)
            assert reference.layer_output(torch.zeros(1, n), 2).shape == (1, expected, 64)
    with pytest.raises(ValueError, match="at least 400 samples"):
        reference.layer_output(torch.zeros(1, 399), 1)
    with pytest.raises(ValueError, match=r"layer must be in 1\.\.3"):
        reference.layer_output(torch.zeros(1, 400), 4)


def test_agrees_with_transformers_hubert(reference):
    """An independent implementation with the same weights gives the same layer outputs."""
    import transformers

    hf_cfg = transformers.HubertConfig(
        hidden_size=64, num_hidden_layers=3, num_attention_heads=2, intermediate_size=128,
        conv_dim=[32] * 7, conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_bias=False,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
        do_stable_layer_norm=False, feat_proj_layer_norm=True, hidden_dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0)
    hf = transformers.HubertModel(hf_cfg).eval()
    hf_names = set(hf.state_dict())
    state = {}
    for k, v in reference.model.state_dict().items():
        name = k.replace("encoder.feature_projection.", "feature_projection.").replace("encoder.transformer.", "encoder.")
        if name not in hf_names:  # weight-norm naming differs between versions
            name = name.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        state[name] = v
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert unexpected == [] and set(missing) <= {"masked_spec_embed"}
    wave = torch.randn(1, 8000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        hidden = hf(wave, output_hidden_states=True).hidden_states
        for layer in (1, 2, 3):
            torch.testing.assert_close(reference.layer_output(wave, layer), hidden[layer], atol=1e-5, rtol=0)


def test_missing_and_misshaped_keys_fail_listing_them(reference, tmp_path):
    sd = reference.fairseq_state_dict()
    del sd["encoder.layers.1.fc2.weight"], sd["post_extract_proj.bias"]
    sd["encoder.layers.0.fc1.bias"] = torch.zeros(5)
    sd["encoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save({"args": argparse.Namespace(**ARGS), "model": sd}, path)
    with pytest.raises(HubertCheckpointError) as err:
        FairseqHubert.from_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "2 missing keys: encoder.layers.1.fc2.weight, post_extract_proj.bias;" in msg
    assert "unexpected keys: encoder.extra.weight" in msg
    assert "encoder.layers.0.fc1.bias: file (5,) vs model (128,)" in msg


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(HubertCheckpointError, match="not found"):
        read_fairseq_checkpoint(tmp_path / "missing.pt")
    path = tmp_path / "plain.pt"
    torch.save({"weights": {}}, path)
    with pytest.raises(HubertCheckpointError, match=r"plain\.pt: not a fairseq checkpoint"):
        read_fairseq_checkpoint(path)


def test_restricted_unpickler_runs_no_code(tmp_path):
    """A pickle that would call os.system when loaded normally is read inertly."""

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "args": Evil()}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    read_fairseq_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_base_config_builds_offline():
    """Without a checkpoint nothing is downloaded: an untrained base-shaped model is built."""
    model = FairseqHubert(hubert_base_config())
    assert model.config.num_layers == 12 and model.final_proj.out_features == 256
    import torchaudio

    ours = {k: v.shape for k, v in model.model.state_dict().items()}
    assert ours == {k: v.shape for k, v in torchaudio.models.hubert_base().state_dict().items()}
    assert sum(p.numel() for p in model.model.parameters()) == 94_370_944  # HuBERT base without mask_emb
