"""Experiment tracking: one small interface, two backends.

``Tracker`` logs scalars, audio, figures and the run config. Every backend also keeps a local,
dependency-free record in the run directory (``metrics.jsonl``, ``config.json``, ``media/``): the
notebooks and the batch report read that, so results never depend on a wandb server.

Backends
- ``"none"``: only the local record.
- ``"wandb"``: also logs to Weights & Biases. Offline by default (``WANDB_MODE=offline``, run files
  inside the run directory, ``wandb sync <run_dir>/wandb/offline-run-*`` uploads later); set
  ``WANDB_MODE=online`` (and log in) to stream live.

This is the only module that imports wandb.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["Tracker", "make_tracker", "read_metrics"]


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy / torch scalars
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class Tracker:
    """Log to ``run_dir`` (always) and to the backend. Use as a context manager or call ``finish()``."""

    backend = "none"

    def __init__(self, run_dir: str | os.PathLike, config: Mapping[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self.config: dict[str, Any] = {}
        if config:
            self.log_config(config)

    # -- scalars -------------------------------------------------------------------------------
    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        row = {"time": time.time(), "step": step, **_jsonable(dict(metrics))}
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        self._backend_log(dict(metrics), step)

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.config.update(_jsonable(dict(config)))
        (self.run_dir / "config.json").write_text(json.dumps(self.config, indent=2))
        self._backend_config(self.config)

    # -- media ---------------------------------------------------------------------------------
    def log_audio(self, name: str, audio: np.ndarray, sample_rate: int, step: int | None = None) -> Path:
        from vxlib import audio as vxaudio

        path = self.run_dir / "media" / f"{name.replace('/', '_')}{'' if step is None else f'_{step}'}.wav"
        vxaudio.save(path, np.clip(np.asarray(audio, np.float32), -1, 1), sample_rate, subtype="FLOAT")
        self._backend_audio(name, path, sample_rate, step)
        return path

    def log_figure(self, name: str, figure: Any, step: int | None = None) -> Path:
        path = self.run_dir / "media" / f"{name.replace('/', '_')}{'' if step is None else f'_{step}'}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100, bbox_inches="tight")
        self._backend_figure(name, path, step)
        return path

    def finish(self) -> None:
        if not self._metrics.closed:
            self._metrics.close()
            self._backend_finish()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    # -- backend hooks (no-ops for "none") -----------------------------------------------------
    def _backend_log(self, metrics: dict, step: int | None) -> None: ...
    def _backend_config(self, config: dict) -> None: ...
    def _backend_audio(self, name: str, path: Path, sample_rate: int, step: int | None) -> None: ...
    def _backend_figure(self, name: str, path: Path, step: int | None) -> None: ...
    def _backend_finish(self) -> None: ...


class WandbTracker(Tracker):
    backend = "wandb"

    def __init__(self, run_dir, config=None, project: str = "vxlib", name: str | None = None):
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_DISABLE_GIT", "true")
        self._wandb = wandb
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.wandb_run = wandb.init(project=project, name=name or Path(run_dir).name, dir=str(run_dir),
                                    config=_jsonable(dict(config or {})), reinit="create_new")
        super().__init__(run_dir, config)

    @property
    def offline_dir(self) -> Path | None:
        d = getattr(self.wandb_run, "dir", None)
        return Path(d).parent if d else None

    def _backend_log(self, metrics, step):
        self.wandb_run.log(_jsonable(metrics), step=step)

    def _backend_config(self, config):
        self.wandb_run.config.update(config, allow_val_change=True)

    def _backend_audio(self, name, path, sample_rate, step):
        self.wandb_run.log({name: self._wandb.Audio(str(path), sample_rate=sample_rate)}, step=step)

    def _backend_figure(self, name, path, step):
        self.wandb_run.log({name: self._wandb.Image(str(path))}, step=step)

    def _backend_finish(self):
        self.wandb_run.finish()


def make_tracker(backend: str, run_dir: str | os.PathLike, config: Mapping[str, Any] | None = None,
                 project: str = "vxlib", name: str | None = None) -> Tracker:
    """``backend``: ``"none"`` or ``"wandb"`` (offline unless ``WANDB_MODE=online``)."""
    if backend == "none":
        return Tracker(run_dir, config)
    if backend == "wandb":
        return WandbTracker(run_dir, config, project=project, name=name)
    raise ValueError(f"unknown tracking backend {backend!r} (use 'none' or 'wandb')")


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """All rows logged to ``run_dir/metrics.jsonl``, in order."""
    p = Path(run_dir) / "metrics.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
