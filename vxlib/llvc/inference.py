"""Loading official LLVC checkpoints/configs and offline conversion.

An official generator checkpoint is ``{'model': state_dict, 'optimizer', 'learning_rate',
'epoch', 'step'}`` (``G_<step>.pth``); its config is ``experiments/<name>/config.json`` whose
``model_params`` go to :class:`~vxlib.llvc.model.Net` unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from vxlib.llvc.model import Net

__all__ = ["CheckpointMismatchError", "load_config", "build_model", "load_model", "check_state_dict",
           "save_checkpoint", "convert"]

PathLike = str | os.PathLike


class CheckpointMismatchError(ValueError):
    """A checkpoint whose parameters do not fit the model its config describes."""


def load_config(path: PathLike) -> dict[str, Any]:
    """Read an official-format ``config.json`` (must contain ``model_params`` and ``data.sr``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: config file not found")
    try:
        config = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON ({err})") from err
    if not isinstance(config, dict) or not isinstance(config.get("model_params"), dict):
        raise ValueError(f"{p}: not an LLVC config: no 'model_params' object")
    if "sr" not in config.get("data", {}):
        raise ValueError(f"{p}: not an LLVC config: no 'data.sr' (sample rate)")
    return config


def build_model(config: Mapping[str, Any], source: str = "config") -> Net:
    """``Net(**config['model_params'])``; an unknown or missing argument is reported with its source."""
    try:
        return Net(**config["model_params"])
    except TypeError as err:
        raise ValueError(f"{source}: model_params do not fit Net: {err}") from err


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointMismatchError` listing missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in expected.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or misshaped:
        lines = [f"{source}: checkpoint does not match the model built from the config"]
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys))
        raise CheckpointMismatchError("\n".join(lines))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, zip errors, disallowed globals
        raise ValueError(f"{path}: not a loadable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    state = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected {{'model': state_dict, ...}} (an LLVC generator checkpoint)")
    return state


def load_model(checkpoint_path: PathLike, config_path: PathLike) -> tuple[Net, int]:
    """Build ``Net`` from an official config, load the checkpoint strictly, return ``(model, sr)``.

    The model is returned in eval mode (the reference inference script forgot ``.eval()``, so its
    dropout, including the prenet's whole-signal Dropout1d, stayed on).
    """
    config = load_config(config_path)
    model = build_model(config, str(config_path))
    state = _read_state_dict(Path(checkpoint_path))
    check_state_dict(model, state, f"{checkpoint_path} with {config_path}")
    model.load_state_dict(state)
    return model.eval(), int(config["data"]["sr"])


def save_checkpoint(path: PathLike, model: Net, **extra: Any) -> Path:
    """Write ``{'model': state_dict, **extra}`` (the official layout; extra: optimizer, epoch, step, ...)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), **extra}, p)
    return p


def convert(model: Net, audio: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Offline conversion of 1-D audio at the model's rate; same length and type out.

    Runs the plain forward in inference mode (the model is not switched to eval here: pass an
    eval-mode model, as :func:`load_model` returns, for deterministic output).
    """
    as_numpy = not isinstance(audio, torch.Tensor)
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32) if as_numpy else audio)
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"convert expects non-empty 1-D audio, got shape {tuple(x.shape)}")
    p = next(model.parameters())
    with torch.inference_mode():
        y = model(x.to(p.device, p.dtype)[None, None])[0, 0]
    return y.cpu().numpy() if as_numpy else y.to(x.device)
