"""RVC synthesizer conformance: every stage against the golden vectors of the reference code,
the 12 official key lists, and strict checkpoint loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vxlib.data.teachers.rvc import CheckpointError, Synthesizer, load_rvc
from vxlib.data.teachers.rvc.checkpoint import config_from_checkpoint

ATOL = 1e-4  # golden.json: float outputs, max abs diff


@pytest.fixture(scope="module")
def gold(golden_dir):
    root = golden_dir / "rvc"
    return lambda name: torch.from_numpy(np.load(root / f"{name}.npy"))


@pytest.fixture(scope="module")
def v2(golden_dir):
    return load_rvc(golden_dir / "rvc" / "rvc_v2_f0_32k_reduced.pth")


@pytest.fixture(scope="module")
def v1_nof0(golden_dir):
    return load_rvc(golden_dir / "rvc" / "rvc_v1_nof0_40k_reduced.pth")


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL):
    assert actual.shape == expected.shape
    diff = (actual.float() - expected.float()).abs().max().item()
    assert diff <= atol, f"max abs diff {diff:.3g} > {atol}"


# ---------------------------------------------------------------------------------------------- loading


def test_header_facts(v2, v1_nof0):
    assert (v2.version, v2.use_f0, v2.sample_rate, v2.content_dim) == ("v2", True, 32000, 768)
    assert v2.n_speakers == 4  # from emb_g rows, although config[15] says 109
    assert v2.synthesizer.config.hop_length == 320
    assert (v1_nof0.version, v1_nof0.use_f0, v1_nof0.sample_rate, v1_nof0.content_dim) == ("v1", False, 40000, 256)
    assert not hasattr(v1_nof0.synthesizer.dec, "m_source") and not hasattr(v1_nof0.synthesizer.enc_p, "emb_pitch")


def test_weights_loaded_exactly(golden_dir, v2):
    ckpt = torch.load(golden_dir / "rvc" / "rvc_v2_f0_32k_reduced.pth", weights_only=True)
    state = v2.synthesizer.state_dict()
    assert set(state) == set(ckpt["weight"])
    for k, v in ckpt["weight"].items():
        assert torch.equal(state[k], v.float()), k


def _rewrite(golden_dir, tmp_path, edit):
    ckpt = torch.load(golden_dir / "rvc" / "rvc_v2_f0_32k_reduced.pth", weights_only=True)
    edit(ckpt)
    path = tmp_path / "edited.pth"
    torch.save(ckpt, path)
    return path


def test_missing_keys_fail_listing_them(golden_dir, tmp_path):
    def drop(ckpt):
        del ckpt["weight"]["dec.ups.1.weight_g"]
        del ckpt["weight"]["flow.flows.2.post.bias"]

    path = _rewrite(golden_dir, tmp_path, drop)
    with pytest.raises(CheckpointError) as err:
        load_rvc(path)
    msg = str(err.value)
    assert str(path) in msg and "2 missing keys" in msg
    assert "dec.ups.1.weight_g" in msg and "flow.flows.2.post.bias" in msg


def test_unexpected_and_misshaped_keys_fail(golden_dir, tmp_path):
    def edit(ckpt):
        ckpt["weight"]["dec.extra.weight"] = torch.zeros(3)
        ckpt["weight"]["enc_p.proj.bias"] = torch.zeros(7, dtype=torch.float16)

    with pytest.raises(CheckpointError, match=r"unexpected keys: dec\.extra\.weight.*mis-shaped keys: enc_p\.proj\.bias: file \(7,\) vs model \(64,\)"):
        load_rvc(_rewrite(golden_dir, tmp_path, edit))


def test_wrong_file_kinds_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_rvc(tmp_path / "nope.pth")
    path = tmp_path / "G_1000.pth"
    torch.save({"model": {}, "optimizer": {}}, path)
    with pytest.raises(CheckpointError, match=r"G_1000\.pth: not an RVC inference file: no 'weight'.*extract_small_model"):
        load_rvc(path)


def test_config_variants():
    base = [513, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3, 7, 11], [[1, 3, 5]] * 3, [10, 8, 2, 2], 512, [20, 16, 4, 4],
            109, 256, 32000]
    weight = {"emb_g.weight": torch.empty(5, 256, device="meta")}
    cfg, version = config_from_checkpoint({"weight": weight, "config": base, "version": "v2"})
    assert (version, cfg.content_dim, cfg.spk_embed_dim, cfg.use_f0) == ("v2", 768, 5, True)
    # old v1 file: no version, no f0 -> v1 with f0; "40k"-style sr string accepted
    cfg, version = config_from_checkpoint({"weight": weight, "config": base[:-1] + ["40k"]})
    assert (version, cfg.content_dim, cfg.sr, cfg.use_f0) == ("v1", 256, 40000, True)
    # rvc-webui: 19 entries with emb_channels before sr
    cfg, _ = config_from_checkpoint({"weight": weight, "config": base[:-1] + [768, 32000], "version": "v1", "f0": 0})
    assert (cfg.content_dim, cfg.sr, cfg.use_f0) == (768, 32000, False)
    with pytest.raises(CheckpointError, match="17 entries"):
        config_from_checkpoint({"weight": weight, "config": base[:-1]}, "x.pth")


# ---------------------------------------------------------------------------------------------- 12 key lists


def _read_keys(path):
    config, content_dim, weight, enc_q, section = None, None, {}, {}, "weight"
    for line in path.read_text().splitlines():
        if line.startswith("# config list"):
            config = json.loads(line.split(":", 1)[1])
        elif line.startswith("# phone feature dim"):
            content_dim = int(line.rsplit(":", 1)[1])
        elif line.startswith("# --- enc_q"):
            section = "enc_q"
        elif line and not line.startswith("#"):
            key, shape = line.split("\t")
            (weight if section == "weight" else enc_q)[key] = tuple(int(s) for s in shape.split(","))
    return config, content_dim, weight, enc_q


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("f0", ["f0", "nof0"])
@pytest.mark.parametrize("sr", ["32k", "40k", "48k"])
def test_official_key_lists(golden_dir, version, f0, sr):
    """Full-size models built on the meta device produce every official key with its shape."""
    path = golden_dir / "rvc" / f"keys_{version}_{f0}_{sr}.txt"
    config, content_dim, weight, enc_q = _read_keys(path)
    fake = {"weight": {"emb_g.weight": torch.empty(weight["emb_g.weight"], device="meta")}, "config": config,
            "version": version, "f0": int(f0 == "f0")}
    cfg, _ = config_from_checkpoint(fake, str(path))
    assert cfg.content_dim == content_dim
    with torch.device("meta"):
        model = Synthesizer(cfg, with_posterior_encoder=True)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {**weight, **enc_q}
    meta = json.loads((golden_dir / "rvc" / "golden.json").read_text())["keys_files"][path.name]
    assert sum(np.prod(s) for k, s in ours.items() if not k.startswith("enc_q.")) == meta["n_weight_params"]


# ---------------------------------------------------------------------------------------------- v2 with f0


def test_text_encoder(v2, gold):
    m_p, logs_p, x_mask = v2.synthesizer.enc_p(gold("in_phone"), gold("in_pitch"), gold("in_lengths"))
    assert_close(m_p, gold("out_enc_m_p"))
    assert_close(logs_p, gold("out_enc_logs_p"))
    assert torch.equal(x_mask, torch.ones(1, 1, 50))


def test_text_encoder_batch_masking(v2, gold):
    m_p, logs_p, x_mask = v2.synthesizer.enc_p(gold("in_phone_b2"), gold("in_pitch_b2"), gold("in_lengths_b2"))
    assert torch.equal(x_mask, gold("out_enc_b2_x_mask"))
    assert_close(m_p, gold("out_enc_b2_m_p"))
    assert_close(logs_p, gold("out_enc_b2_logs_p"))
    assert (m_p[1, :, 37:] == 0).all() and (logs_p[1, :, 37:] == 0).all()


def test_speaker_embedding(v2, gold):
    assert torch.equal(v2.synthesizer.speaker(gold("in_sid")), gold("out_g"))


@torch.no_grad()
@pytest.mark.parametrize("length, name", [(50, "out_flow_z"), (37, "out_flow_z_len37")])
def test_reverse_flow(v2, gold, length, name):
    mask = (torch.arange(50) < length).float()[None, None]
    z = v2.synthesizer.flow(gold("in_flow_z_p"), mask, g=gold("out_g"), reverse=True)
    assert_close(z, gold(name))


@torch.no_grad()
def test_nsf_source_and_decoder_noise_free(v2, gold):
    dec = v2.synthesizer.dec
    assert_close(dec.m_source(gold("in_nsff0"), 320, noise=False), gold("out_dec_source_nonoise"))
    assert_close(dec(gold("in_dec_z"), gold("out_g"), gold("in_nsff0"), noise=False), gold("out_dec_audio_nonoise"))
    assert_close(dec(gold("in_dec_z"), gold("out_g"), gold("in_nsff0_uv"), noise=False), gold("out_dec_audio_uv_nonoise"))


@torch.no_grad()
@pytest.mark.parametrize("f0, name", [("in_nsff0", "out_dec_audio_seed1234"), ("in_nsff0_uv", "out_dec_audio_uv_seed1234")])
def test_decoder_seeded(v2, gold, f0, name):
    """Same draws as the reference in the same order: torch.manual_seed reproduces its output."""
    torch.manual_seed(1234)
    audio = v2.synthesizer.dec(gold("in_dec_z"), gold("out_g"), gold(f0))
    assert_close(audio, gold(name))


def test_recorded_draws_are_ours(gold):
    """The recorded draws equal what torch's generator yields in the order SineSource uses."""
    torch.manual_seed(1234)
    torch.rand(1, 1)
    assert torch.equal(torch.randn(1, 16000, 1), gold("rng_dec_seed1234_sine_randn"))
    torch.manual_seed(1234)
    assert torch.equal(torch.randn(1, 32, 50), gold("rng_infer_seed1234_latent_randn"))
    assert torch.equal(torch.rand(1, 1), gold("rng_infer_seed1234_sine_rand"))
    assert torch.equal(torch.randn(1, 16000, 1), gold("rng_infer_seed1234_sine_randn"))


def test_infer_seeded_and_noise_free(v2, gold):
    args = (gold("in_phone"), gold("in_lengths"), gold("in_pitch"), gold("in_nsff0"), gold("in_sid"))
    torch.manual_seed(1234)
    audio, z, z_p = v2.synthesizer.infer(*args)
    assert_close(z_p, gold("out_infer_z_p_seed1234"))
    assert_close(z, gold("out_infer_z_seed1234"))
    assert_close(audio, gold("out_infer_audio_seed1234"))
    audio, _, _ = v2.synthesizer.infer(*args, noise=False)
    assert_close(audio, gold("out_infer_audio_nonoise"))
    # a private generator seeded alike gives the same result without touching the global one
    audio_g, _, _ = v2.synthesizer.infer(*args, generator=torch.Generator().manual_seed(1234))
    assert_close(audio_g, gold("out_infer_audio_seed1234"))


def test_infer_requires_pitch_for_f0_models(v2, gold):
    with pytest.raises(ValueError, match="uses f0"):
        v2.synthesizer.infer(gold("in_phone"), gold("in_lengths"), sid=gold("in_sid"))


# ---------------------------------------------------------------------------------------------- v1 without f0


@torch.no_grad()
def test_v1_nof0_set(v1_nof0, gold):
    s = v1_nof0.synthesizer
    g = s.speaker(gold("nof0_in_sid"))
    assert torch.equal(g, gold("nof0_out_g"))
    m_p, logs_p, _ = s.enc_p(gold("nof0_in_phone"), None, gold("nof0_in_lengths"))
    assert_close(m_p, gold("nof0_out_enc_m_p"))
    assert_close(logs_p, gold("nof0_out_enc_logs_p"))
    assert_close(s.flow(gold("nof0_in_flow_z_p"), torch.ones(1, 1, 50), g=g, reverse=True), gold("nof0_out_flow_z"))
    assert_close(s.dec(gold("nof0_in_dec_z"), g), gold("nof0_out_dec_audio"))
    torch.manual_seed(1234)
    audio, _, z_p = s.infer(gold("nof0_in_phone"), gold("nof0_in_lengths"), sid=gold("nof0_in_sid"))
    assert_close(z_p, gold("nof0_out_infer_z_p_seed1234"))
    assert_close(audio, gold("nof0_out_infer_audio_seed1234"))
    audio, _, _ = s.infer(gold("nof0_in_phone"), gold("nof0_in_lengths"), sid=gold("nof0_in_sid"), noise=False)
    assert_close(audio, gold("nof0_out_infer_audio_nonoise"))
