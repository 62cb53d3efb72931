"""HuBERT / ContentVec from fairseq-format checkpoints, without fairseq.

Reads ``hubert_base_ls960.pt`` (HuBERT base, LLVC's feature loss) and
``checkpoint_best_legacy_500.pt`` (ContentVec, RVC's content encoder) into torchaudio's
``Wav2Vec2Model`` (the same architecture; fairseq cannot be imported on Python >= 3.11) and
exposes the three outputs vxlib needs:

- :meth:`FairseqHubert.cnn_features` — the convolutional feature extractor's output
  (B, 512, frames), what LLVC's feature loss compares;
- :meth:`FairseqHubert.layer_output` — the output of transformer layer N (1-based, fairseq's
  ``extract_features(output_layer=N)``), (B, frames, 768);
- :meth:`FairseqHubert.project` — ``final_proj`` (ContentVec: 768 -> 256, RVC v1's content).

Frames: (samples - 400)//320 + 1 at 50 frames/s for 16 kHz input. Nothing is ever downloaded:
without a checkpoint, :func:`hubert_base_config` builds an untrained model of the base shape.

fairseq checkpoints pickle their training config with fairseq/omegaconf classes, so
``torch.load(weights_only=True)`` refuses them and a plain ``torch.load`` would need fairseq
(and run arbitrary pickled code). :func:`read_fairseq_checkpoint` tries ``weights_only=True``
first and otherwise unpickles with a restricted unpickler: tensors and plain containers are
rebuilt as usual; every other class is replaced by an inert record of its pickled state, so no
foreign code runs and the config values stay readable.
"""

from __future__ import annotations

import ast
import os
import pickle
import re
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

__all__ = ["HubertConfig", "FairseqHubert", "hubert_base_config", "read_fairseq_checkpoint", "HubertCheckpointError"]


class HubertCheckpointError(ValueError):
    """A HuBERT/ContentVec file that cannot be used; the message names the file and the problem."""


# ----------------------------------------------------------------------------------------------
# reading fairseq pickles safely


class _PickledRecord:
    """Stand-in for a class the unpickler will not import: keeps its constructor args and state."""

    _qualname = "?"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state):
        self.state = state

    def plain(self):
        """Best plain-Python reading: the state dict, an enum's value, or the args."""
        state = getattr(self, "state", None)
        if isinstance(state, dict):
            # omegaconf DictConfig keeps its items under '_content' -> nodes with '_val'
            content = state.get("_content")
            if isinstance(content, dict):
                return {k: _plain(v) for k, v in content.items()}
            if "_val" in state:
                return _plain(state["_val"])
            return {k: _plain(v) for k, v in state.items()}
        if state is not None:
            return _plain(state)
        if len(self.args) == 1:
            return _plain(self.args[0])
        return {k: _plain(v) for k, v in vars(self).items() if k not in ("args", "kwargs")} or None


def _plain(obj):
    if isinstance(obj, _PickledRecord):
        return obj.plain()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


_ALLOWED_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "bool", "str", "bytes",
                     "bytearray", "complex", "slice", "object"}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "torch" or module.startswith("torch."):
            return super().find_class(module, name)
        if module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        if module == "builtins" and name in _ALLOWED_BUILTINS:
            return super().find_class(module, name)
        if (module, name) in {("copyreg", "_reconstructor"), ("_codecs", "encode")}:
            return super().find_class(module, name)
        if module.startswith("numpy") and name in {"_reconstruct", "ndarray", "dtype", "scalar"}:
            return super().find_class(module, name)
        return type(name, (_PickledRecord,), {"_qualname": f"{module}.{name}"})


_restricted_pickle = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=pickle.load, __name__="vxlib_restricted_pickle")


def read_fairseq_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict with ``model`` (state dict) and ``cfg``/``args`` as plain Python."""
    p = Path(path)
    if not p.is_file():
        raise HubertCheckpointError(f"{p}: HuBERT/ContentVec checkpoint not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:
        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
        except Exception as err:
            raise HubertCheckpointError(f"{p}: cannot be read as a fairseq checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        found = ", ".join(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise HubertCheckpointError(f"{p}: not a fairseq checkpoint: no 'model' state dict (found: {found})")
    return {k: (v if k == "model" else _plain(v)) for k, v in ckpt.items()}


# ----------------------------------------------------------------------------------------------
# architecture


@dataclass
class HubertConfig:
    """fairseq HuBERT/wav2vec2 shape. Defaults: HuBERT base (= ContentVec's encoder)."""

    conv_layers: list[tuple[int, int, int]] = field(
        default_factory=lambda: [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2)  # (dim, kernel, stride)
    conv_bias: bool = False
    extractor_mode: str = "group_norm"  # fairseq "default": GroupNorm on the first conv only
    embed_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    ffn_dim: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    layer_norm_first: bool = False  # base models are post-norm; large models pre-norm
    final_proj_dim: int | None = None  # ContentVec legacy: 256; HuBERT base pretraining: 256


def hubert_base_config(final_proj_dim: int | None = 256) -> HubertConfig:
    return HubertConfig(final_proj_dim=final_proj_dim)


def _conv_layers_from_string(text: str) -> list[tuple[int, int, int]]:
    """Evaluate fairseq's ``conv_feature_layers`` (e.g. "[(512,10,5)] + [(512,3,2)] * 4") safely."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.List):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(ev(e) for e in node.elts)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ValueError(f"unsupported expression in conv_feature_layers: {text!r}")

    return [tuple(int(v) for v in layer) for layer in ev(ast.parse(text, mode="eval"))]


def config_from_checkpoint(ckpt: dict, where: str = "<checkpoint>") -> HubertConfig:
    """Shapes from the state dict; what shapes cannot tell (heads, strides, norm order) from cfg."""
    sd = ckpt["model"]
    cfg = ckpt.get("cfg") or {}
    model_cfg = (cfg.get("model") if isinstance(cfg, dict) else None) or {}
    args = ckpt.get("args") or {}
    settings = {**(args if isinstance(args, dict) else {}), **(model_cfg if isinstance(model_cfg, dict) else {})}
    try:
        n_conv = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", k)))
        n_layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
        embed_dim, ffn_dim = sd["encoder.layers.0.fc1.weight"].shape[1], sd["encoder.layers.0.fc1.weight"].shape[0]
        pos_v = sd["encoder.pos_conv.0.weight_v"]
    except (KeyError, ValueError) as err:
        raise HubertCheckpointError(f"{where}: not a HuBERT/wav2vec2 state dict (missing {err})") from err
    kernels = [sd[f"feature_extractor.conv_layers.{i}.0.weight"].shape for i in range(n_conv)]
    if "conv_feature_layers" in settings:
        conv_layers = _conv_layers_from_string(str(settings["conv_feature_layers"]))
    else:  # the standard wav2vec2 stack: stride 5 for the kernel-10 conv, 2 elsewhere
        conv_layers = [(int(s[0]), int(s[2]), 5 if int(s[2]) == 10 else 2) for s in kernels]
    if [(d, k) for d, k, _ in conv_layers] != [(int(s[0]), int(s[2])) for s in kernels]:
        raise HubertCheckpointError(f"{where}: conv_feature_layers {conv_layers} disagree with the weights' shapes")
    mode = str(settings.get("extractor_mode", "default"))
    layer_norm_first = bool(settings.get("layer_norm_first", embed_dim > 768))
    final = sd.get("final_proj.weight")
    return HubertConfig(
        conv_layers=conv_layers,
        conv_bias="feature_extractor.conv_layers.0.0.bias" in sd,
        extractor_mode="layer_norm" if mode == "layer_norm" else "group_norm",
        embed_dim=int(embed_dim), num_layers=n_layers,
        num_heads=int(settings.get("encoder_attention_heads", embed_dim // 64)),
        ffn_dim=int(ffn_dim), pos_conv_kernel=int(pos_v.shape[2]), pos_conv_groups=int(embed_dim // pos_v.shape[1]),
        layer_norm_first=layer_norm_first,
        final_proj_dim=None if final is None else int(final.shape[0]),
    )


# fairseq name <-> torchaudio Wav2Vec2Model name. {i}: layer index, {p}: weight|bias, {a}: q|k|v|out;
# {pos_g}/{pos_v}: the positional conv's weight-norm tensors, named per torchaudio version.
_KEY_TEMPLATES = [
    ("feature_extractor.conv_layers.{i}.0.{p}", "feature_extractor.conv_layers.{i}.conv.{p}"),
    ("feature_extractor.conv_layers.0.2.{p}", "feature_extractor.conv_layers.0.layer_norm.{p}"),  # GroupNorm
    ("feature_extractor.conv_layers.{i}.2.1.{p}", "feature_extractor.conv_layers.{i}.layer_norm.{p}"),
    ("layer_norm.{p}", "encoder.feature_projection.layer_norm.{p}"),
    ("post_extract_proj.{p}", "encoder.feature_projection.projection.{p}"),
    ("encoder.pos_conv.0.bias", "encoder.transformer.pos_conv_embed.conv.bias"),
    ("encoder.pos_conv.0.weight_g", "{pos_g}"),
    ("encoder.pos_conv.0.weight_v", "{pos_v}"),
    ("encoder.layer_norm.{p}", "encoder.transformer.layer_norm.{p}"),
    ("encoder.layers.{i}.self_attn.{a}_proj.{p}", "encoder.transformer.layers.{i}.attention.{a}_proj.{p}"),
    ("encoder.layers.{i}.self_attn_layer_norm.{p}", "encoder.transformer.layers.{i}.layer_norm.{p}"),
    ("encoder.layers.{i}.fc1.{p}", "encoder.transformer.layers.{i}.feed_forward.intermediate_dense.{p}"),
    ("encoder.layers.{i}.fc2.{p}", "encoder.transformer.layers.{i}.feed_forward.output_dense.{p}"),
    ("encoder.layers.{i}.final_layer_norm.{p}", "encoder.transformer.layers.{i}.final_layer_norm.{p}"),
]
_SLOTS = {"i": r"\d+", "p": "weight|bias", "a": "q|k|v|out"}


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w)\}", template)  # literal, slot, literal, ...
    return re.compile("".join(re.escape(x) if n % 2 == 0 else f"(?P<{x}>{_SLOTS[x]})" for n, x in enumerate(parts)))


# pretraining-only tensors: mask embedding, cluster-label embeddings, (wav2vec2) quantiser
_IGNORED = re.compile(r"(mask_emb|label_embs_concat|label_embs|quantizer\.|project_q\.)")


class FairseqHubert(nn.Module):
    """fairseq HuBERT/ContentVec on torchaudio's Wav2Vec2Model, plus ``final_proj``. Inference only."""

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        from torchaudio.models import wav2vec2_model

        self.config = cfg
        self.model = wav2vec2_model(
            extractor_mode=cfg.extractor_mode, extractor_conv_layer_config=cfg.conv_layers,
            extractor_conv_bias=cfg.conv_bias, encoder_embed_dim=cfg.embed_dim, encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=cfg.pos_conv_kernel, encoder_pos_conv_groups=cfg.pos_conv_groups,
            encoder_num_layers=cfg.num_layers, encoder_num_heads=cfg.num_heads, encoder_attention_dropout=0.0,
            encoder_ff_interm_features=cfg.ffn_dim, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
            encoder_layer_norm_first=cfg.layer_norm_first, encoder_layer_drop=0.0, aux_num_out=None)
        self.final_proj = nn.Linear(cfg.embed_dim, cfg.final_proj_dim) if cfg.final_proj_dim else None
        self.eval()

    # -- loading --------------------------------------------------------------------------------

    def _key_pairs(self) -> list[tuple[str, str]]:
        names = self.model.state_dict()
        pos = "encoder.transformer.pos_conv_embed.conv."
        parametrised = pos + "parametrizations.weight.original0" in names  # newer torchaudio
        pos_g = pos + ("parametrizations.weight.original0" if parametrised else "weight_g")
        pos_v = pos + ("parametrizations.weight.original1" if parametrised else "weight_v")
        # conv-layer norms: GroupNorm on layer 0 only ("default") or a LayerNorm on every layer
        skip = "feature_extractor.conv_layers.{i}.2.1.{p}" if self.config.extractor_mode == "group_norm" \
            else "feature_extractor.conv_layers.0.2.{p}"
        return [(f, t.replace("{pos_g}", pos_g).replace("{pos_v}", pos_v)) for f, t in _KEY_TEMPLATES if f != skip]

    def _translate(self, key: str, to_fairseq: bool) -> str | None:
        for fairseq_name, torchaudio_name in self._key_pairs():
            source, target = (torchaudio_name, fairseq_name) if to_fairseq else (fairseq_name, torchaudio_name)
            if m := _template_regex(source).fullmatch(key):
                return target.format(**m.groupdict())
        return None

    def _fairseq_name(self, own_key: str) -> str:
        """Our ``state_dict()`` key ("model.<torchaudio name>" or "final_proj.*") -> fairseq's."""
        if own_key.startswith("final_proj."):
            return own_key
        return self._translate(own_key.removeprefix("model."), to_fairseq=True)

    def fairseq_state_dict(self) -> dict[str, torch.Tensor]:
        """This model's weights under fairseq's names (what :meth:`load_fairseq_state_dict` reads)."""
        return {self._fairseq_name(k): v for k, v in self.state_dict().items()}

    def load_fairseq_state_dict(self, sd: dict[str, torch.Tensor], where: str = "<state dict>") -> None:
        """Load fairseq-named weights; fails listing every missing, unknown or mis-shaped key."""
        own = self.state_dict()
        wanted = {self._fairseq_name(k): k for k in own}  # fairseq name -> our name
        mapped, unknown, misshaped = {}, [], []
        for key, value in sd.items():
            target = wanted.get(key)
            if target is None:
                if not _IGNORED.match(key):
                    unknown.append(key)
            elif tuple(own[target].shape) != tuple(value.shape):
                misshaped.append(f"{key}: file {tuple(value.shape)} vs model {tuple(own[target].shape)}")
            else:
                mapped[target] = value.float()
        missing = sorted(k for k in wanted if k not in sd)
        if missing or unknown or misshaped:
            parts = [f"{len(v)} {label}: " + ", ".join(v) for label, v in
                     (("missing keys", missing), ("unexpected keys", sorted(unknown)), ("mis-shaped keys", misshaped)) if v]
            raise HubertCheckpointError(f"{where}: state dict does not match the HuBERT architecture: " + "; ".join(parts))
        self.load_state_dict(mapped, strict=True)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "FairseqHubert":
        ckpt = read_fairseq_checkpoint(path)
        model = cls(config_from_checkpoint(ckpt, str(path)))
        model.load_fairseq_state_dict(ckpt["model"], str(path))
        return model.to(device).eval()

    # -- outputs --------------------------------------------------------------------------------

    @staticmethod
    def _check_wave(waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        if waveform.dim() != 2:
            raise ValueError(f"HuBERT expects (B, samples) 16 kHz audio, got shape {tuple(waveform.shape)}")
        if waveform.shape[1] < 400:
            raise ValueError(f"HuBERT needs at least 400 samples (25 ms at 16 kHz), got {waveform.shape[1]}")
        return waveform

    def num_frames(self, num_samples: int) -> int:
        n = num_samples
        for _, k, s in self.config.conv_layers:
            n = (n - k) // s + 1
        return n

    def cnn_features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) 16 kHz -> conv feature-extractor output (B, 512, frames), channels first (fairseq layout)."""
        x, _ = self.model.feature_extractor(self._check_wave(waveform), None)  # (B, frames, 512)
        return x.transpose(1, 2)

    def layer_output(self, waveform: torch.Tensor, layer: int) -> torch.Tensor:
        """(B, N) -> output of transformer layer ``layer`` (1-based, as fairseq output_layer), (B, frames, D)."""
        if not 1 <= layer <= self.config.num_layers:
            raise ValueError(f"layer must be in 1..{self.config.num_layers}, got {layer}")
        outputs, _ = self.model.extract_features(self._check_wave(waveform), num_layers=layer)
        return outputs[layer - 1]

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """``final_proj`` (ContentVec: 768 -> 256), as RVC v1 applies to its layer output."""
        if self.final_proj is None:
            raise ValueError("this checkpoint has no final_proj")
        return self.final_proj(features)

    def content_encoder(self, layer: int, use_final_proj: bool = False):
        """A ``(1, N) -> (1, frames, D)`` callable for :class:`vxlib.data.teachers.rvc.RVCPipeline`."""

        @torch.no_grad()
        def encode(waveform: torch.Tensor) -> torch.Tensor:
            feats = self.layer_output(waveform.to(next(self.parameters()).device).float(), layer)
            return self.project(feats) if use_final_proj else feats

        return encode
