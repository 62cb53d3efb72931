"""RVC conversion pipeline and RVCTeacher: the reference pipeline's golden run (2 s, harvest,
+12, stand-in content features), long-input cutting, time alignment, determinism, f0 shift."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from vxlib import pitch
from vxlib.audio import AudioError
from vxlib.data.teachers.base import Teacher
from vxlib.data.teachers.rvc import Padding, RVCPipeline, RVCTeacher, load_rvc
from vxlib.data.teachers.rvc.pipeline import quiet_cut_points


@pytest.fixture(scope="module")
def rvc_dir(golden_dir):
    return golden_dir / "rvc"


@pytest.fixture(scope="module")
def v2(rvc_dir):
    return load_rvc(rvc_dir / "rvc_v2_f0_32k_reduced.pth")


@pytest.fixture(scope="module")
def v1_nof0(rvc_dir):
    return load_rvc(rvc_dir / "rvc_v1_nof0_40k_reduced.pth")


@pytest.fixture(scope="module")
def golden_audio(rvc_dir):
    return np.load(rvc_dir / "in_pipeline_audio_16k.npy")


@pytest.fixture(scope="module")
def golden_padded(rvc_dir):
    return np.load(rvc_dir / "out_pipeline_audio_highpassed_padded.npy")


@pytest.fixture(scope="module")
def harvest_f0(golden_padded):
    """Harvest on the padded golden audio, computed once (about a second per second of audio)."""
    return pitch.extract_f0(golden_padded, "harvest")


class StandInEncoder:
    """The golden run's stand-in content encoder: recorded features, fairseq frame count."""

    def __init__(self, feats: torch.Tensor):
        self.feats, self.calls = feats, []

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        self.calls.append((tuple(wave.shape), wave.dtype))
        return self.feats[:, :(wave.shape[1] - 400) // 320 + 1]


def projection_encoder(dim: int, seed: int = 0):
    """A deterministic content encoder that depends on the audio: 400-sample frames every 320
    samples, projected to ``dim`` by a fixed random matrix (fairseq HuBERT's frame layout)."""
    weight = torch.randn(400, dim, generator=torch.Generator().manual_seed(seed)) / 20.0

    def encode(wave: torch.Tensor) -> torch.Tensor:
        frames = wave[0].unfold(0, 400, 320)  # (F, 400)
        return (frames @ weight).unsqueeze(0)

    return encode


# ---------------------------------------------------------------------------------------------- golden run


def test_highpass_and_padding(v2, golden_audio, golden_padded):
    pipe = RVCPipeline(v2, StandInEncoder(None))
    filtered, padded = pipe.preprocess(golden_audio)
    assert filtered.dtype == np.float64 and padded.shape == (128000,)
    np.testing.assert_allclose(padded, golden_padded, rtol=0, atol=1e-9)


def test_harvest_f0_and_coarse_match_reference(rvc_dir, harvest_f0):
    gold_hz = np.load(rvc_dir / "out_pipeline_f0_hz_key+12.npy")
    shifted = pitch.transpose_f0(harvest_f0, 12)
    assert shifted.shape == gold_hz.shape == (801,)
    np.testing.assert_allclose(shifted, gold_hz, rtol=1e-9, atol=0)
    np.testing.assert_array_equal(pitch.coarse_pitch(shifted), np.load(rvc_dir / "out_pipeline_f0_coarse_key+12.npy"))


@pytest.fixture(scope="module")
def golden_pipeline(v2, rvc_dir, golden_padded, harvest_f0):
    def cached_harvest(padded):
        np.testing.assert_allclose(padded, golden_padded, rtol=0, atol=1e-9)
        return harvest_f0.copy()

    encoder = StandInEncoder(torch.from_numpy(np.load(rvc_dir / "in_pipeline_hubert_feats.npy")))
    return RVCPipeline(v2, encoder, f0_method="harvest", f0_extractor=cached_harvest), encoder


def _int16(x: np.ndarray) -> np.ndarray:
    """The reference's final step: ×32768 and cast (truncation), no clipping."""
    return (x * 32768).astype(np.int16)


def test_pipeline_noise_free_matches_reference(golden_pipeline, golden_audio, rvc_dir):
    pipe, encoder = golden_pipeline
    encoder.calls.clear()
    out = pipe(golden_audio, f0_up_key=12, sid=0, noise=False)
    assert out.dtype == np.float32 and out.shape == (63360,)
    assert encoder.calls == [((1, 128000), torch.float32)]  # one call on the padded audio, float32
    diff = np.abs(_int16(out).astype(int) - np.load(rvc_dir / "out_pipeline_audio_int16_nonoise.npy"))
    assert diff.max() <= 2


@pytest.mark.slow
def test_pipeline_seeded_matches_reference(golden_pipeline, golden_audio, rvc_dir):
    pipe, _ = golden_pipeline
    torch.manual_seed(1234)
    out = pipe(golden_audio, f0_up_key=12, sid=0)
    diff = np.abs(_int16(out).astype(int) - np.load(rvc_dir / "out_pipeline_audio_int16_seed1234.npy"))
    assert diff.max() <= 2


# ---------------------------------------------------------------------------------------------- long inputs


def test_long_input_is_cut_at_quiet_points(v1_nof0):
    """Pieces are cut within ±x_query of every x_center, at the quietest 10 ms, and their
    converted outputs concatenate to the input's duration (minus the per-piece frame loss)."""
    sr, n = 16000, int(1.25 * 16000)
    audio = 0.1 * np.random.default_rng(0).standard_normal(n)
    gap = int(0.1 * sr)  # long enough for the high-pass ringing to die out inside it
    starts = (int(0.4 * sr), int(0.92 * sr))  # silences near the 0.5 s and 1 s cut targets
    for start in starts:
        audio[start:start + gap] = 0.0
    pad = Padding(x_pad=0.05, x_query=0.15, x_center=0.5, x_max=0.8)
    filtered = np.asarray(RVCPipeline(v1_nof0, None, padding=pad).preprocess(audio)[0])
    cuts = quiet_cut_points(filtered, pad)
    assert len(cuts) == 2
    assert all(start <= cut < start + gap for start, cut in zip(starts, cuts))

    calls = []
    encoder = projection_encoder(256)
    pipe = RVCPipeline(v1_nof0, lambda w: calls.append(w.shape[1]) or encoder(w), padding=pad)
    out = pipe(audio, sid=1, noise=False)
    assert len(calls) == 3
    hop, expected = 400, n * 40000 // 16000
    assert expected - 3 * 2 * hop - 3 * hop <= out.shape[0] <= expected


# ---------------------------------------------------------------------------------------------- teacher


def _speechlike(seconds: float, sr: int, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """Voiced harmonic bursts with pauses, plus a little noise: enough structure for f0/content."""
    t = np.arange(int(seconds * sr)) / sr
    env = (np.sin(2 * np.pi * 2.5 * t) > -0.3).astype(np.float64)
    x = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)) * env
    return (x + 0.005 * np.random.default_rng(seed).standard_normal(t.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def teacher(v2):
    # no context padding keeps the tests fast; test_teacher_time_alignment also runs the default-like case
    return RVCTeacher(v2, projection_encoder(768), f0_method="dio", f0_up_key=12, sid=0, padding=Padding(x_pad=0))


def test_teacher_is_a_teacher(teacher):
    assert isinstance(teacher, Teacher)
    desc = teacher.describe()
    assert desc["teacher"] == "rvc" and desc["version"] == "v2" and desc["content_layer"] == 12
    assert desc["f0_method"] == "dio" and desc["f0_up_key"] == 12 and desc["index"] is None


@pytest.mark.parametrize("sr, x_pad", [(16000, 1), (22050, 0), (44100, 0)])
def test_teacher_time_alignment(teacher, sr, x_pad):
    """Output: same rate, exactly the input length, start aligned (the 1-2 frame tail is zero-padded)."""
    if x_pad:
        teacher = RVCTeacher(teacher.model, projection_encoder(768), f0_method="dio", padding=Padding(x_pad=x_pad))
    wav = _speechlike(0.73, sr)
    out = teacher.convert(wav, sr)
    assert out.dtype == np.float32 and out.shape == wav.shape and np.isfinite(out).all()
    assert np.abs(out[: int(0.6 * sr)]).max() > 0  # real audio, not padding
    # the zero-padded tail is at most 3 frames of 10 ms
    nonzero_tail = np.flatnonzero(out)[-1]
    assert wav.shape[0] - 1 - nonzero_tail <= 0.03 * sr


def test_teacher_deterministic(teacher):
    wav = _speechlike(0.5, 16000, seed=3)
    torch.manual_seed(0)
    first = teacher.convert(wav, 16000)
    torch.manual_seed(99)  # global RNG state does not matter: the teacher seeds its own generator
    np.testing.assert_array_equal(teacher.convert(wav, 16000), first)


def test_f0_shift_doubles_the_pitch_track(v2):
    """+12 semitones: the f0 the synthesizer is driven with is exactly twice the +0 track."""
    seen = {}
    synth = v2.synthesizer
    original = synth.infer

    def spy(phone, lengths, pitch_ids, nsff0, sid, **kw):
        seen[key] = nsff0.clone()
        return original(phone, lengths, pitch_ids, nsff0, sid, **kw)

    wav = _speechlike(0.5, 16000, f0=150.0)
    pipe = RVCPipeline(v2, projection_encoder(768), f0_method="dio", padding=Padding(x_pad=0))
    synth.infer = spy
    try:
        for key in (0, 12):
            pipe(wav, f0_up_key=key, noise=False)
    finally:
        del synth.infer
    base, up = seen[0], seen[12]
    assert torch.equal(base > 0, up > 0) and (base > 0).sum() > 20
    torch.testing.assert_close(up, 2 * base, rtol=1e-6, atol=0)
    np.testing.assert_allclose(torch.median(base[base > 0]).item(), 150.0, rtol=0.03)


def test_teacher_rejects_bad_input(teacher):
    with pytest.raises(AudioError, match="1-D"):
        teacher.convert(np.zeros((2, 1600), np.float32), 16000)
    with pytest.raises(AudioError, match="NaN/inf"):
        teacher.convert(np.full(1600, np.nan, np.float32), 16000)
    with pytest.raises(AudioError, match="too short"):
        teacher.convert(np.zeros(100, np.float32), 16000)


def test_teacher_rejects_bad_setup(v2, tmp_path):
    with pytest.raises(ValueError, match="sid 7 out of range.*4 speakers"):
        RVCTeacher(v2, projection_encoder(768), sid=7)
    wrong_dim = RVCTeacher(v2, projection_encoder(256), f0_method="dio", padding=Padding(x_pad=0))
    with pytest.raises(ValueError, match=r"needs \(1, frames, 768\)"):
        wrong_dim.convert(_speechlike(0.3, 16000), 16000)
    # rmvpe itself runs in tests/test_rmvpe.py; without its weights it fails naming what is missing
    no_weights = RVCTeacher(v2, projection_encoder(768), f0_method="rmvpe", padding=Padding(x_pad=0))
    with pytest.raises(ValueError, match="rmvpe_path"):
        no_weights.convert(_speechlike(0.3, 16000), 16000)
    missing = RVCTeacher(v2, projection_encoder(768), f0_method="rmvpe", rmvpe_path=tmp_path / "rmvpe.pt",
                         padding=Padding(x_pad=0))
    with pytest.raises(FileNotFoundError, match=r"rmvpe\.pt: RMVPE weights not found"):
        missing.convert(_speechlike(0.3, 16000), 16000)


# ---------------------------------------------------------------------------------------------- with vxlib.hubert


@pytest.fixture(scope="module")
def contentvec_file(tmp_path_factory):
    """A small 12-layer ContentVec-shaped fairseq file (final_proj -> 256 for v1 models)."""
    from vxlib.hubert import FairseqHubert, HubertConfig

    torch.manual_seed(0)
    cfg = HubertConfig(conv_layers=[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2, embed_dim=32, num_layers=12,
                       num_heads=2, ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4, final_proj_dim=256)
    model = FairseqHubert(cfg)
    path = tmp_path_factory.mktemp("contentvec") / "checkpoint_best_legacy_500.pt"
    args = argparse.Namespace(conv_feature_layers="[(16,10,5)] + [(16,3,2)] * 4 + [(16,2,2)] * 2",
                              encoder_attention_heads=2, extractor_mode="default", layer_norm_first=False)
    torch.save({"args": args, "model": model.fairseq_state_dict()}, path)
    return path, model


@pytest.mark.parametrize("quirk, layer", [(False, 9), (True, 12)])
def test_v1_teacher_reads_contentvec(v1_nof0, contentvec_file, quirk, layer):
    path, model = contentvec_file
    teacher = RVCTeacher(v1_nof0, path, sid=1, v1_reference_layer12=quirk, padding=Padding(x_pad=0))
    assert teacher.describe()["content_layer"] == layer and teacher.describe()["final_proj"] is True
    wave = torch.from_numpy(_speechlike(0.5, 16000))[None]
    with torch.no_grad():
        expected = model.project(model.layer_output(wave, layer))
    torch.testing.assert_close(teacher.pipeline.content_encoder(wave), expected)
    wav = _speechlike(0.41, 22050)
    assert teacher.convert(wav, 22050).shape == wav.shape
