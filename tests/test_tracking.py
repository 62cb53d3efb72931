"""vxlib.tracking with the 'none' and offline 'wandb' backends."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from vxlib import tracking


def _exercise(tr: tracking.Tracker) -> None:
    tr.log({"loss": 1.5, "lr": np.float32(3e-4)}, step=0)
    tr.log({"loss": 0.75}, step=10)
    tr.log_audio("demo/tone", 0.1 * np.sin(np.linspace(0, 2000, 16000)), 16000, step=10)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    tr.log_figure("curve", fig, step=10)
    plt.close(fig)


def test_none_backend_keeps_local_record(tmp_path):
    with tracking.make_tracker("none", tmp_path / "run", config={"lr": 3e-4, "path": tmp_path}) as tr:
        _exercise(tr)
    rows = tracking.read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 10]
    assert rows[0]["loss"] == 1.5 and rows[0]["lr"] == pytest.approx(3e-4)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == 3e-4
    assert (tmp_path / "run" / "media" / "demo_tone_10.wav").stat().st_size > 16000 * 4
    assert (tmp_path / "run" / "media" / "curve_10.png").exists()
    assert not (tmp_path / "run" / "wandb").exists()


def test_wandb_offline_backend(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tmp_path / "run"
    tr = tracking.make_tracker("wandb", run_dir, config={"seed": 1}, project="vxlib-test")
    try:
        import os

        assert os.environ["WANDB_MODE"] == "offline"
        _exercise(tr)
    finally:
        tr.finish()
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, "one offline run folder inside the run dir (for `wandb sync`)"
    assert list(offline[0].glob("run-*.wandb")), "the offline run file holds the logged history"
    assert [r["loss"] for r in tracking.read_metrics(run_dir)] == [1.5, 0.75]


def test_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match="unknown tracking backend 'tensorboard'"):
        tracking.make_tracker("tensorboard", tmp_path)
