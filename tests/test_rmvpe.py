"""vxlib.rmvpe: RVC's rmvpe.pt layout and loader, the log-mel front end against librosa, the
decoding, the network's shape contract, and rmvpe inside extract_f0 and the RVC teacher.

No trained weights exist here: a random-init network saved in the official layout stands in,
and pitch recovery is checked through a stand-in network that emits a known salience."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vxlib import pitch, rmvpe
from vxlib.data.teachers.rvc import CheckpointError, Padding, RVCPipeline, RVCTeacher, load_rvc

SR = 16000


@pytest.fixture(scope="module")
def rmvpe_file(tmp_path_factory):
    return rmvpe.save_random_init(tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt", seed=0)


@pytest.fixture(scope="module")
def saved(rmvpe_file):
    return torch.load(rmvpe_file, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model(rmvpe_file):
    """Loaded through pitch's cache, so extract_f0 and the teacher below reuse it."""
    return pitch.load_rmvpe(rmvpe_file)


def _tone(f0_hz: float, n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / SR
    x = sum(0.3 / k * np.sin(2 * np.pi * k * f0_hz * t) for k in (1, 2, 3))
    return (x + 0.003 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- file layout


def test_random_init_file_round_trips_with_official_keys(saved, model):
    assert isinstance(saved, dict) and len(saved) == rmvpe.N_STATE_KEYS == 741
    assert saved["cnn.weight"].dtype == torch.float16  # as RVC's file (181 MB for 90.4 M parameters)
    loaded = model.model.state_dict()
    assert set(loaded) == set(saved)
    for key in ("unet.encoder.bn.weight", "unet.encoder.bn.num_batches_tracked",
                "unet.encoder.layers.0.conv.0.conv.0.weight", "unet.encoder.layers.0.conv.0.shortcut.bias",
                "unet.intermediate.layers.0.conv.0.shortcut.weight",
                "unet.intermediate.layers.3.conv.3.conv.4.running_var",
                "unet.decoder.layers.0.conv1.0.weight", "unet.decoder.layers.4.conv2.0.shortcut.weight",
                "cnn.weight", "cnn.bias", "fc.0.gru.weight_ih_l0", "fc.0.gru.weight_hh_l0_reverse",
                "fc.1.weight", "fc.1.bias"):
        assert key in saved, key
    assert "unet.encoder.layers.0.conv.1.shortcut.weight" not in saved  # identity residual: no shortcut
    assert tuple(saved["unet.decoder.layers.0.conv1.0.weight"].shape) == (512, 256, 3, 3)
    assert tuple(saved["fc.0.gru.weight_ih_l0"].shape) == (768, 384) and tuple(saved["fc.1.weight"].shape) == (360, 512)
    for key, value in saved.items():
        assert torch.equal(loaded[key], value.to(loaded[key].dtype)), key
    assert all(p.dtype == torch.float32 for p in model.model.parameters()) and not model.model.training


def test_loader_lists_every_mismatch_and_names_the_file(saved, tmp_path):
    state = dict(saved)
    del state["fc.1.bias"]
    state["unet.tf.weight"] = torch.zeros(3)
    state["cnn.weight"] = torch.zeros(3, 16, 5, 5)
    # counters absent, as in files saved before they existed: tolerated, not reported
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    bad = tmp_path / "bad_rmvpe.pt"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as err:
        rmvpe.RMVPE.from_pretrained(bad)
    text = str(err.value)
    assert str(bad) in text and "1 missing keys: fc.1.bias" in text and "1 unexpected keys: unet.tf.weight" in text
    assert "cnn.weight: file (3, 16, 5, 5) vs model (3, 16, 3, 3)" in text and "num_batches_tracked" not in text


def test_loader_rejects_what_is_not_a_state_dict(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.pt: RMVPE weights not found.*assets/rmvpe/rmvpe\.pt"):
        rmvpe.load_e2e(tmp_path / "nothere.pt")
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": {"cnn.weight": torch.zeros(1)}, "epoch": 3}, wrapped)
    with pytest.raises(ValueError, match=r"wrapped\.pt: expected a plain state dict.*\['epoch', 'model'\]"):
        rmvpe.load_e2e(wrapped)
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ValueError, match=r"list\.pt: expected a plain state dict.*found list"):
        rmvpe.load_e2e(listed)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"garbage\.pt: cannot be read as a torch file"):
        rmvpe.load_e2e(garbage)


# ---------------------------------------------------------------------------------------------- front end


def test_mel_filterbank_is_librosas_htk_slaney():
    import librosa

    ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True, dtype=np.float64)
    np.testing.assert_allclose(rmvpe.mel_filterbank(), ref, rtol=1e-9, atol=1e-14)


def test_log_mel_matches_librosa_float64():
    import librosa

    n = 8000 + 37
    t = np.arange(n) / SR
    x = 0.5 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 1250.0 * t)
    spec = librosa.stft(x, n_fft=1024, hop_length=160, win_length=1024, window="hann", center=True, pad_mode="reflect")
    basis = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True, dtype=np.float64)
    mel = basis @ np.abs(spec)  # (128, T)
    ref = np.log(np.maximum(mel, 1e-5))
    with torch.inference_mode():
        exact = rmvpe.LogMel(torch.float64)(torch.from_numpy(x)[None])[0].numpy()
        ours = rmvpe.LogMel()(torch.from_numpy(x.astype(np.float32))[None])[0].double().numpy()
    assert exact.shape == ours.shape == ref.shape == (128, n // 160 + 1)
    assert np.abs(exact - ref).max() <= 1e-9  # the transform itself
    # float32 (as RVC runs it): rounding noise ~1e-5 of the peak, visible in the log only in near-empty bands
    assert np.abs(ours - ref)[mel > 1e-2].max() <= 1e-4
    assert np.abs(np.exp(ours) - np.exp(ref)).max() <= 1e-5 * mel.max()


# ---------------------------------------------------------------------------------------------- decoding


def test_decoding_local_average_and_threshold():
    sal = np.zeros((5, 360), np.float32)
    sal[0, 99:102] = [0.5, 1.0, 0.25]  # peak at bin 100
    sal[0, 110] = 0.9  # outside the 9-bin window around the peak: ignored
    sal[1, 0:2] = [0.75, 0.375]  # peak at the lowest bin: the window reaches into the zero padding
    sal[2, 200] = 0.03  # peak not above the threshold: unvoiced
    sal[3, 200] = 0.031

    def cents(b):
        return 20.0 * b + 1997.3794084376191

    expected = [
        (0.5 * cents(99) + 1.0 * cents(100) + 0.25 * cents(101)) / 1.75,
        (0.75 * cents(0) + 0.375 * cents(1)) / 1.125,
        0.0, cents(200), 0.0,
    ]
    np.testing.assert_allclose(rmvpe.local_average_cents(sal, 0.03), expected, rtol=1e-12)
    f0 = rmvpe.decode_salience(sal, 0.03)
    assert f0.dtype == np.float64
    np.testing.assert_allclose(f0[[0, 1, 3]], 10 * 2 ** (np.array(expected)[[0, 1, 3]] / 1200), rtol=1e-12)
    assert f0[2] == 0 and f0[4] == 0
    assert abs(f0[1] - 31.7) < 0.2  # bin 0 is ~31.7 Hz
    assert rmvpe.decode_salience(sal, 0.02)[2] == pytest.approx(10 * 2 ** (cents(200) / 1200))


# ---------------------------------------------------------------------------------------------- network


@pytest.mark.parametrize("n", [400, 2400, 2560, 7000])
def test_network_shape_contract(model, n):
    # 3, 16 and 17 frames straddle where reflect padding of the frames becomes possible; 44 is not a multiple of 32
    x = _tone(200.0, n)
    sal = model.salience(x)
    assert sal.shape == (n // 160 + 1, 360) and sal.dtype == np.float32
    assert np.isfinite(sal).all() and sal.min() >= 0 and sal.max() <= 1
    f0 = model.infer(x)
    assert f0.shape == (n // 160 + 1,) and f0.dtype == np.float64
    with pytest.raises(ValueError, match="1-D"):
        model.salience(np.zeros((2, 800)))


class KnownSalience(torch.nn.Module):
    """Stands in for E2E: emits a salience built from a known f0 track and records its input."""

    def __init__(self, salience: np.ndarray):
        super().__init__()
        self.salience, self.seen = torch.from_numpy(salience), []

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        self.seen.append(mel.clone())
        n = self.salience.shape[0]
        tail = torch.full((mel.shape[-1] - n, 360), 0.9)  # beyond the real frames: must be cut off
        return torch.cat([self.salience, tail])[None]


def test_infer_recovers_a_known_f0_track_within_a_cent():
    n = 16000 + 77
    frames = n // 160 + 1
    f0 = np.geomspace(80.0, 600.0, frames)  # glide across most of the range
    f0[40:55] = 0  # an unvoiced stretch
    bins = (1200 * np.log2(np.maximum(f0, 1) / 10) - 1997.3794084376191) / 20  # fractional bin of each frame
    sal = np.exp(-0.5 * ((np.arange(360)[None] - bins[:, None]) * 20 / 20.0) ** 2)  # 20-cent std peaks
    sal[f0 == 0] = 0.01
    net = KnownSalience(sal.astype(np.float32))
    out = rmvpe.RMVPE(net).infer(_tone(150.0, n))
    assert out.shape == (frames,)
    voiced = f0 > 0
    assert (out[~voiced] == 0).all() and (out[voiced] > 0).all()
    assert np.abs(1200 * np.log2(out[voiced] / f0[voiced])).max() < 1.0
    (mel,) = net.seen
    assert mel.shape == (1, 128, 128) and frames == 101  # padded to a multiple of 32
    # right padding is a reflection of the last frames (RVC's and LLVC's mode, not zeros)
    torch.testing.assert_close(mel[..., frames:], mel[..., frames - 28:frames - 1].flip(-1), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- in vxlib


def test_extract_f0_uses_the_cached_model(rmvpe_file, model):
    x = _tone(180.0, 4000)
    f0 = pitch.extract_f0(x.astype(np.float64), "rmvpe", rmvpe_path=rmvpe_file)
    assert pitch.load_rmvpe(str(rmvpe_file)) is model  # loaded once per file
    np.testing.assert_array_equal(f0, model.infer(x))
    assert f0.shape == (4000 // 160 + 1,) and f0.dtype == np.float64


def test_rvc_teacher_with_rmvpe(golden_dir, rmvpe_file, model):
    v2 = load_rvc(golden_dir / "rvc" / "rvc_v2_f0_32k_reduced.pth")

    def encoder(wave: torch.Tensor) -> torch.Tensor:  # fairseq frame count, features from the audio
        frames = wave[0].unfold(0, 400, 320)  # (F, 400)
        return frames[:, :384].repeat(1, 2).unsqueeze(0)  # (1, F, 768)

    padding = Padding(x_pad=0.25)
    wav = _tone(140.0, 7000, seed=1)
    pipe = RVCPipeline(v2, encoder, f0_method="rmvpe", padding=padding, rmvpe_path=str(rmvpe_file))
    _, padded = pipe.preprocess(wav)
    _, f0 = pipe.pitch(padded, 12)
    p_len = padded.shape[0] // 160
    np.testing.assert_allclose(f0, 2 * model.infer(padded)[:p_len], rtol=1e-12)
    teacher = RVCTeacher(v2, encoder, f0_method="rmvpe", rmvpe_path=rmvpe_file, f0_up_key=12, padding=padding)
    y = teacher.convert(wav, SR)
    assert y.shape == wav.shape and y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_array_equal(y, teacher.convert(wav, SR))
