"""WavTokenizer re-implementation vs the reference (golden set), and the AudioCodec contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from vxlib.codec import AudioCodec, CodecError, WavTokenizer, WavTokenizerConfig
from vxlib.llmvox.model import CheckpointError

# the reduced golden model's SEANet sizes, hard-coded in the official code (golden runtime_overrides)
REDUCED = dict(encoder_dim=32, encoder_filters=8)


@pytest.fixture(scope="module")
def gdir(golden_dir):
    return golden_dir / "wavtokenizer"


@pytest.fixture(scope="module")
def wav(gdir):
    x, sr = sf.read(gdir / "input_1s_24k.wav", dtype="float32")
    assert sr == 24000
    return x


@pytest.fixture(scope="module", params=["", "_perturbed"])
def variant(request, gdir):
    suffix = request.param
    model = WavTokenizer.from_pretrained(gdir / "wavtokenizer_reduced.yaml", gdir / f"wavtokenizer_reduced{suffix}.ckpt", **REDUCED)
    return suffix, model


@pytest.fixture(scope="module")
def plain(gdir):
    return WavTokenizer.from_pretrained(gdir / "wavtokenizer_reduced.yaml", gdir / "wavtokenizer_reduced.ckpt", **REDUCED)


# -- golden conformance ----------------------------------------------------------------------


def test_encoder_codes_features_audio_match_reference(variant, gdir, wav):
    suffix, model = variant
    enc = model.encoder_output(torch.from_numpy(wav)[None])
    assert np.abs(enc.numpy() - np.load(gdir / f"encoder_out{suffix}.npy")).max() <= 5e-4
    codes = model.encode(wav, 24000)
    assert codes.dtype == torch.int64 and codes.shape == (75,)
    assert np.array_equal(codes.numpy(), np.load(gdir / f"codes{suffix}.npy")[0, 0])
    feats = model.codes_to_features(codes)
    assert np.array_equal(feats.numpy(), np.load(gdir / f"features{suffix}.npy"))
    audio = model.decode(feats)
    assert audio.shape == (1, 24000)
    assert np.abs(audio.numpy() - np.load(gdir / f"decoded{suffix}.npy")).max() <= 1e-5


def test_bandwidth_id_conditions_the_decoder(gdir):
    model = WavTokenizer.from_pretrained(gdir / "wavtokenizer_reduced.yaml", gdir / "wavtokenizer_reduced_perturbed.ckpt", **REDUCED)
    stats = json.loads((gdir / "golden.json").read_text())["stats"]["perturbed"]
    feats = torch.from_numpy(np.load(gdir / "features_perturbed.npy"))
    model.set_bandwidth_id(1)
    diff = np.abs(model.decode(feats).numpy() - np.load(gdir / "decoded_perturbed.npy")).max()
    assert diff == pytest.approx(stats["decoded_bw0_vs_bw1_max_abs"], abs=1e-5)
    with pytest.raises(ValueError, match="bandwidth_id"):
        model.set_bandwidth_id(4)


def test_full_size_and_reduced_keys_match_reference(gdir, plain):
    ref = json.loads((gdir / "keys.json").read_text())
    with torch.device("meta"):
        full = WavTokenizer(WavTokenizerConfig())
    assert [(k, list(v.shape)) for k, v in full.state_dict().items()] == [(k, s) for k, s, _ in ref["full_state_dict"]]
    assert sum(p.numel() for p in full.parameters()) == ref["full_n_params"]
    assert [(k, list(v.shape)) for k, v in plain.state_dict().items()] == [(k, s) for k, s, _ in ref["reduced_state_dict"]]


# -- AudioCodec contract ---------------------------------------------------------------------


def test_is_an_audio_codec(plain):
    assert isinstance(plain, AudioCodec)
    assert (plain.sample_rate, plain.hop_length, plain.frame_rate) == (24000, 320, 75.0)
    assert (plain.codebook_size, plain.feature_dim) == (256, 32)
    assert plain.codebook.shape == (256, 32)


def test_batch_codes_and_lengths(plain, wav):
    one = plain.encode(wav, 24000)
    batch = plain.encode(np.stack([wav, wav[::-1].copy()]), 24000)
    assert batch.shape == (2, 75) and torch.equal(batch[0], one)
    assert torch.equal(batch[1], plain.encode(wav[::-1].copy(), 24000))
    # a partial last frame is padded: ceil(T / 320) frames, never dropped
    assert plain.encode(np.concatenate([wav, wav[:1]]), 24000).shape == (76,)
    assert plain.encode(wav[:100], 24000).shape == (1,)


def test_decode_takes_codes_or_features(plain, wav):
    codes = plain.encode(wav[:3200], 24000)  # 10 tokens -> 3200 samples
    from_codes = plain.decode(codes)
    assert from_codes.shape == (1, 3200)
    assert torch.equal(from_codes, plain.decode(plain.codes_to_features(codes)))
    assert torch.equal(plain.decode(codes.numpy()), from_codes)


def test_bad_input_is_rejected_with_reason(plain, wav):
    with pytest.raises(CodecError, match="24000 Hz.*16000 Hz.*resample"):
        plain.encode(wav, 16000)
    bad = wav.copy()
    bad[5] = np.nan
    with pytest.raises(CodecError, match="1 NaN/inf"):
        plain.encode(bad, 24000)
    with pytest.raises(CodecError, match="floating point"):
        plain.encode((wav * 1000).astype(np.int16), 24000)
    with pytest.raises(CodecError, match="non-empty"):
        plain.encode(np.zeros(0, np.float32), 24000)
    with pytest.raises(CodecError, match=r"out of range \[0, 256\).*max 256"):
        plain.decode(torch.tensor([1, 256]))
    with pytest.raises(CodecError, match=r"\(B, 32, L\)"):
        plain.decode(torch.zeros(1, 33, 4))


def test_uninitialised_codebook_refuses_to_encode(gdir, wav):
    model = WavTokenizer.from_pretrained(gdir / "wavtokenizer_reduced.yaml", gdir / "wavtokenizer_reduced.ckpt", **REDUCED)
    model.feature_extractor.encodec.quantizer.codebook.inited.zero_()
    with pytest.raises(CodecError, match="inited == 0"):
        model.encode(wav, 24000)


# -- loading ---------------------------------------------------------------------------------


def test_checkpoint_mismatch_lists_keys(gdir, tmp_path):
    ck = torch.load(gdir / "wavtokenizer_reduced.ckpt", weights_only=True)
    del ck["state_dict"]["backbone.convnext.1.gamma"]
    ck["state_dict"]["head.extra"] = torch.zeros(1)
    path = tmp_path / "bad.ckpt"
    torch.save(ck, path)
    with pytest.raises(CheckpointError) as err:
        WavTokenizer.from_pretrained(gdir / "wavtokenizer_reduced.yaml", path, **REDUCED)
    msg = str(err.value)
    assert "bad.ckpt" in msg and "backbone.convnext.1.gamma" in msg and "head.extra" in msg


def test_config_needs_the_hard_coded_sizes_for_reduced_models(gdir):
    cfg = WavTokenizerConfig.from_yaml(gdir / "wavtokenizer_reduced.yaml", **REDUCED)
    assert (cfg.vq_bins, cfg.num_layers, cfg.backbone_dim, cfg.downsamples) == (256, 2, 64, [8, 5, 4, 2])
    with pytest.raises(ValueError, match="input_channels 32 != encoder_dim 512"):
        WavTokenizerConfig.from_yaml(gdir / "wavtokenizer_reduced.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        WavTokenizerConfig.from_yaml(gdir / "missing.yaml")
