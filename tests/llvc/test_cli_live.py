"""The file CLI (any rate/channels in, 16 kHz mono out) and live conversion driven from a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vxlib import audio
from vxlib.llvc import StreamingConverter, convert
from vxlib.llvc.infer import main as infer_main
from vxlib.llvc.live import LiveConverter, run_live
from vxlib.stream import FileBackend

REPO = Path(__file__).resolve().parents[2]


def test_infer_cli_converts_any_rate_and_channels_to_16k_mono(golden_input, llvc_golden, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    stereo = np.stack([golden_input[:8000], 0.5 * golden_input[:8000]], axis=1)
    sf.write(src / "a.wav", audio.resample(stereo.T, 16000, 44100).T, 44100, subtype="FLOAT")
    sf.write(src / "b.flac", golden_input[:5000], 16000)
    ckpt, cfg = llvc_golden / "G_random_seed0_outscaled.pth", llvc_golden / "config.json"
    assert infer_main(["-p", str(ckpt), "-c", str(cfg), "-f", str(src), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "2 ch @ 44100 Hz -> mono @ 16000 Hz" in out
    y, sr = sf.read(tmp_path / "out/a.wav", dtype="float32")
    assert sr == 16000 and y.ndim == 1
    expect_in, _ = audio.load(src / "a.wav", sr=16000)
    assert y.shape == expect_in.shape
    # streaming with -s prints the speed with its definition
    assert infer_main(["-p", str(ckpt), "-c", str(cfg), "-f", str(src / "b.flac"), "-o", str(tmp_path / "s"),
                       "-s", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "processing/audio" in out and "e2e latency" in out and "cf=2" in out
    ys, _ = sf.read(tmp_path / "s/b.wav", dtype="float32")
    xb, _ = audio.load(src / "b.flac")
    assert np.abs(ys - convert_ref(ckpt, cfg, xb)).max() <= 1e-5


def convert_ref(ckpt, cfg, x):
    from vxlib.llvc import load_model
    model, _ = load_model(ckpt, cfg)
    return convert(model, x)


def test_infer_cli_reports_bad_inputs(llvc_golden, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF")
    code = infer_main(["-p", str(llvc_golden / "G_random_seed0_outscaled.pth"), "-c", str(llvc_golden / "config.json"),
                       "-f", str(bad), "-o", str(tmp_path)])
    assert code == 2 and "bad.wav" in capsys.readouterr().err
    code = infer_main(["-p", str(llvc_golden / "G_random_seed0_outscaled.pth"),
                       "-c", str(REPO / "experiments/llvc_nc/config.json"), "-f", str(bad), "-o", str(tmp_path)])
    assert code == 2 and "unexpected keys" in capsys.readouterr().err


@pytest.mark.parametrize("block", [128, 208, 500])
def test_live_loop_from_a_file_is_complete_and_in_order(golden_model, golden_input, block):
    x = golden_input[:8000]
    live = LiveConverter(StreamingConverter(golden_model, 1), model_rate=16000)
    backend = FileBackend(x)
    report = run_live(live, backend, block)
    played = np.concatenate([backend.played(), live.finish()])
    prime = live.prime_samples
    assert prime == 224
    assert report.callbacks == -(-x.shape[0] // block)
    assert live.underruns == 0  # the priming covers exactly what the converter can hold back
    assert np.all(played[:prime] == 0)
    assert played.shape[0] == prime + x.shape[0]
    assert np.abs(played[prime:] - convert(golden_model, x)).max() <= 1e-5


def test_live_loop_at_another_device_rate(golden_model, golden_input):
    x48 = audio.resample(golden_input[:8000], 16000, 48000)
    live = LiveConverter(StreamingConverter(golden_model, 1), model_rate=16000, device_rate=48000, block_size=480)
    backend = FileBackend(x48)
    run_live(live, backend, 480)
    played = np.concatenate([backend.played(), live.finish()])
    assert live.underruns == 0
    assert abs(played.shape[0] - (live.prime_samples + x48.shape[0])) <= 3


@pytest.mark.slow
def test_live_loop_meets_every_deadline_at_cf1(golden_model, golden_input):
    """Real compute on the simulated real-time schedule (10 s). Timing-dependent: slow-marked."""
    x = np.tile(golden_input, 5)
    live = LiveConverter(StreamingConverter(golden_model, 1), model_rate=16000)
    report = run_live(live, FileBackend(x), 208)
    assert report.deadline_misses == 0 and live.underruns == 0


def test_live_cli_help(capsys):
    from vxlib.llvc.live import main as live_main
    with pytest.raises(SystemExit) as done:
        live_main(["--help"])
    assert done.value.code == 0 and "--input-device" in capsys.readouterr().out
