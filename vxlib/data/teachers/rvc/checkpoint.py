"""Read official RVC inference files (``.pth``) into :class:`Synthesizer`, checking every key.

Official layout (``torch.save`` of a dict, loadable with ``weights_only=True``): ``weight``
(name -> float16 tensor, ``enc_q.*`` removed), ``config`` (18-entry positional list),
``info``, ``sr`` ("32k"/"40k"/"48k"), ``f0`` (1/0), ``version`` ("v1"/"v2"). Old v1 files may
lack ``version`` (-> "v1") and ``f0`` (-> 1). Files from ddPn08's rvc-webui (the flavour LLVC's
teachers were made with) store a 19-entry list with ``emb_channels`` at index 17 and a
``params`` dict of the same names; ``params`` wins when present.

Unlike upstream (``load_state_dict(strict=False)``), a file that does not fit the architecture
its own header describes is rejected with the missing / unexpected / mis-shaped keys listed:
a silently half-loaded synthesizer would produce plausible-sounding garbage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .models import Synthesizer, SynthesizerConfig

CONTENT_DIM = {"v1": 256, "v2": 768}


class CheckpointError(ValueError):
    """An RVC file that cannot be used; the message names the file and what is wrong."""


@dataclass
class RVCModel:
    """A loaded synthesizer with the header facts a converter needs."""

    synthesizer: Synthesizer
    version: str  # "v1" | "v2"
    use_f0: bool
    sample_rate: int  # output rate (config sr)
    n_speakers: int  # rows of emb_g.weight
    info: str
    path: str

    @property
    def content_dim(self) -> int:
        return self.synthesizer.config.content_dim


def _parse_sr(value, where: str) -> int:
    if isinstance(value, str):
        v = value.strip().lower()
        if v.endswith("k") and v[:-1].isdigit():
            return int(v[:-1]) * 1000
        if v.isdigit():
            return int(v)
        raise CheckpointError(f"{where}: cannot read sample rate {value!r}")
    return int(value)


def config_from_checkpoint(ckpt: dict, where: str = "<checkpoint>") -> tuple[SynthesizerConfig, str]:
    """Architecture and version from an official (or rvc-webui) header; emb_g rows set spk count."""
    for key in ("weight", "config"):
        if key not in ckpt:
            found = ", ".join(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
            hint = " (a training checkpoint G_*.pth? export it with RVC's extract_small_model)" if "model" in ckpt else ""
            raise CheckpointError(f"{where}: not an RVC inference file: no '{key}' entry (found: {found}){hint}")
    version = str(ckpt.get("version", "v1"))
    if version not in CONTENT_DIM:
        raise CheckpointError(f"{where}: unknown RVC version {version!r} (expected 'v1' or 'v2')")
    use_f0 = bool(int(ckpt.get("f0", 1)))
    names = SynthesizerConfig.LIST_FIELDS
    if isinstance(ckpt.get("params"), dict):
        values = {k: ckpt["params"][k] for k in names if k in ckpt["params"]}
        missing = [k for k in names if k not in values]
        if missing:
            raise CheckpointError(f"{where}: 'params' lacks {missing}")
        content_dim = int(ckpt["params"].get("emb_channels", CONTENT_DIM[version]))
    else:
        raw = list(ckpt["config"])
        if len(raw) == 19:  # rvc-webui: emb_channels inserted before sr
            content_dim = int(raw.pop(17))
        elif len(raw) == 18:
            content_dim = CONTENT_DIM[version]
        else:
            raise CheckpointError(f"{where}: 'config' has {len(raw)} entries; an RVC file has 18 (or 19 from rvc-webui)")
        values = dict(zip(names, raw))
    values["sr"] = _parse_sr(values["sr"], where)
    emb_g = ckpt["weight"].get("emb_g.weight")
    if emb_g is None:
        raise CheckpointError(f"{where}: weight has no 'emb_g.weight' (speaker table)")
    values["spk_embed_dim"] = int(emb_g.shape[0])
    for k in ("spec_channels", "segment_size", "inter_channels", "hidden_channels", "filter_channels", "n_heads",
              "n_layers", "kernel_size", "upsample_initial_channel", "gin_channels"):
        values[k] = int(values[k])
    values["p_dropout"] = float(values["p_dropout"])
    values["resblock"] = str(values["resblock"])
    return SynthesizerConfig(**values, content_dim=content_dim, use_f0=use_f0), version


def load_state_dict_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str,
                            ignore_prefixes: tuple[str, ...] = ("enc_q.",)) -> None:
    """``load_state_dict`` that lists every missing, unexpected and mis-shaped key before failing."""
    expected = {k: v.shape for k, v in module.state_dict().items()}
    given = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    misshaped = sorted(f"{k}: file {tuple(given[k].shape)} vs model {tuple(expected[k])}"
                       for k in set(given) & set(expected) if tuple(given[k].shape) != tuple(expected[k]))
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
            if items:
                parts.append(f"{len(items)} {label}: " + ", ".join(items))
        raise CheckpointError(f"{where}: state dict does not match the architecture: " + "; ".join(parts))
    module.load_state_dict(given, strict=True)


def read_torch_file(path: Path, missing: str, missing_error: type[Exception] = FileNotFoundError):
    """``torch.load(path, weights_only=True)`` on the CPU; a missing file raises ``missing_error(missing)``
    and an unreadable one :class:`CheckpointError`, both naming the file (torch's errors do not)."""
    if not path.is_file():
        raise missing_error(missing)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors carry no file name
        raise CheckpointError(f"{path}: cannot be read as a torch file with weights_only=True ({err})") from err


def load_rvc(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> RVCModel:
    """Load an official RVC v1/v2 inference ``.pth`` (with or without f0) for inference.

    Weights are stored in float16; they are upcast to ``dtype`` (float32 by default, which is
    what the golden conformance data was computed in).
    """
    p = Path(path)
    ckpt = read_torch_file(p, f"{p}: RVC model file not found", CheckpointError)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{p}: expected a dict, found {type(ckpt).__name__}")
    cfg, version = config_from_checkpoint(ckpt, str(p))
    synth = Synthesizer(cfg)
    load_state_dict_checked(synth, {k: v.to(dtype) for k, v in ckpt["weight"].items()}, str(p))
    synth = synth.to(device=device, dtype=dtype).eval()
    return RVCModel(synth, version, cfg.use_f0, cfg.sr, cfg.spk_embed_dim, str(ckpt.get("info", "")), str(p))
