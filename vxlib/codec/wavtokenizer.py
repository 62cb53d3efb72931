"""WavTokenizer (Ji et al. 2024), re-implemented: the 75 tokens/s single-codebook codec LLMVoX uses.

Loads the official Lightning ``.ckpt`` and its YAML unchanged (parameter names and shapes are the
official ones, buffers included) and reproduces the reference computations:

- encoder: EnCodec's SEANet (weight-normed convs, non-causal "same" padding with reflect, ELU,
  residual blocks, a 2-layer LSTM with skip) with strides 2, 4, 5, 8 = 320 samples per frame;
- quantizer: one Euclidean codebook (nearest code by squared L2);
- decoder ("backbone" + "head", a Vocos variant): Conv1d k7 -> ``pos_net`` (2 ResNet blocks, one
  full self-attention block, 2 ResNet blocks, GroupNorm) -> AdaLayerNorm(bandwidth id) -> ConvNeXt
  blocks -> LayerNorm -> Linear to log-magnitude and phase -> inverse STFT ("same" padding).

Read bottom-up: SEANet layers -> encoder -> quantizer -> decoder layers -> backbone -> head ->
config -> :class:`WavTokenizer` (the :class:`~vxlib.codec.base.AudioCodec`) and its loader.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from vxlib.codec.base import AudioCodec, CodecError

__all__ = ["WavTokenizerConfig", "WavTokenizer"]


# ---------------------------------------------------------------------------------------------
# SEANet encoder (EnCodec)


class WNConv1d(nn.Module):
    """Conv1d with the weight stored as ``weight_g`` (per-output-channel norm) and ``weight_v``
    (direction): ``weight = g * v / ||v||``, the layout of ``torch.nn.utils.weight_norm`` (dim 0)
    that the checkpoints were saved with. No padding here (SEANet pads explicitly)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        # registration order = the checkpoint's key order (weight_norm re-registers g, v after bias)
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_g = nn.Parameter(torch.ones(out_ch, 1, 1))
        self.weight_v = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size) / math.sqrt(in_ch * kernel_size))
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 0)  # the op weight_norm's hook calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight(), self.bias, self.stride, 0, self.dilation)


class WNConvTranspose1d(nn.Module):
    """Parameter holder of a weight-normed ConvTranspose1d (``weight_v`` is (in, out, k)); only the
    unused SEANet decoder has these, so no forward is defined."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_g = nn.Parameter(torch.ones(in_ch, 1, 1))
        self.weight_v = nn.Parameter(torch.zeros(in_ch, out_ch, kernel_size))


class _Norm(nn.Module):
    """EnCodec's NormConv1d level: holds the conv as ``.conv`` / ``.convtr`` (its norm is the
    weight norm inside the conv, so there is nothing else to hold). Exists for the key names."""

    def __init__(self, name: str, layer: nn.Module):
        super().__init__()
        self.add_module(name, layer)


def _pad1d_reflect(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect padding that also works when the input is shorter than the pad (EnCodec's pad1d):
    zero-extend first so reflection has enough samples, then drop the extension again."""
    length = x.shape[-1]
    max_pad = max(left, right)
    extra = max_pad - length + 1 if length <= max_pad else 0
    if extra:
        x = F.pad(x, (0, extra))
    padded = F.pad(x, (left, right), mode="reflect")
    return padded[..., : padded.shape[-1] - extra]


class SConv1d(nn.Module):
    """Non-causal SEANet conv: pads (reflect) so that ``ceil(T / stride)`` full frames come out,
    the padding split evenly with the extra sample on the left, as EnCodec's SConv1d."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = _Norm("conv", WNConv1d(in_ch, out_ch, kernel_size, stride, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv: WNConv1d = self.conv.conv
        k = (conv.kernel_size - 1) * conv.dilation + 1  # effective kernel with dilation
        s = conv.stride
        pad_total = k - s
        n_frames = (x.shape[-1] - k + pad_total) / s + 1
        extra = (math.ceil(n_frames) - 1) * s + (k - pad_total) - x.shape[-1]
        right = pad_total // 2
        return conv(_pad1d_reflect(x, pad_total - right, right + extra))


class SConvTranspose1d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int):
        super().__init__()
        self.convtr = _Norm("convtr", WNConvTranspose1d(in_ch, out_ch, kernel_size))


class SEANetResnetBlock(nn.Module):
    """ELU -> conv k3 (halve channels) -> ELU -> conv k1, plus a k1-conv shortcut."""

    def __init__(self, dim: int, dilation: int = 1, compress: int = 2):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(nn.ELU(), SConv1d(dim, hidden, 3, dilation=dilation), nn.ELU(), SConv1d(hidden, dim, 1))
        self.shortcut = SConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class SLSTM(nn.Module):
    """LSTM over time with a skip connection; (B, C, T) in and out."""

    def __init__(self, dim: int, num_layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)  # (T, B, C)
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


class SEANetEncoder(nn.Module):
    """(B, 1, T) -> (B, dimension, ceil(T / prod(ratios))). Strides are applied in reverse order
    of ``ratios`` (EnCodec lists them decoder-first)."""

    def __init__(self, dimension: int, n_filters: int, ratios: list[int], lstm_layers: int = 2):
        super().__init__()
        mult = 1
        layers: list[nn.Module] = [SConv1d(1, n_filters, 7)]
        for ratio in reversed(ratios):
            layers += [
                SEANetResnetBlock(mult * n_filters),
                nn.ELU(),
                SConv1d(mult * n_filters, mult * n_filters * 2, kernel_size=2 * ratio, stride=ratio),
            ]
            mult *= 2
        layers += [SLSTM(mult * n_filters, lstm_layers), nn.ELU(), SConv1d(mult * n_filters, dimension, 7)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoderWeights(nn.Module):
    """The SEANet *decoder* of EnCodec as stored in WavTokenizer checkpoints. WavTokenizer never
    runs it (its decoder is the Vocos-style backbone + iSTFT head), but the reference loads
    checkpoints strictly with these weights present, so they are held here with their official
    names and shapes. Deliberately no ``forward``."""

    def __init__(self, dimension: int, n_filters: int, ratios: list[int], lstm_layers: int = 2):
        super().__init__()
        mult = 2 ** len(ratios)
        layers: list[nn.Module] = [SConv1d(dimension, mult * n_filters, 7), SLSTM(mult * n_filters, lstm_layers)]
        for ratio in ratios:
            layers += [
                nn.ELU(),
                SConvTranspose1d(mult * n_filters, mult * n_filters // 2, kernel_size=2 * ratio),
                SEANetResnetBlock(mult * n_filters // 2),
            ]
            mult //= 2
        layers += [nn.ELU(), SConv1d(n_filters, 1, 7)]
        self.model = nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# quantizer


class EuclideanCodebook(nn.Module):
    """One codebook. ``inited``/``cluster_size``/``embed_avg`` are the training-time EMA state,
    kept only because checkpoints carry them. The reference re-runs k-means on the first encode
    when ``inited == 0``; here that is an error (an untrained codebook is never what a user wants)."""

    def __init__(self, dim: int, bins: int):
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.zeros(bins, dim))
        self.register_buffer("embed_avg", torch.zeros(bins, dim))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) index of the nearest code (squared L2, computed as the reference does)."""
        embed = self.embed.t()
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices


class _VQLayer(nn.Module):
    def __init__(self, dim: int, bins: int):
        super().__init__()
        self._codebook = EuclideanCodebook(dim, bins)


class _VQStack(nn.Module):
    def __init__(self, dim: int, bins: int, n_q: int):
        super().__init__()
        self.layers = nn.ModuleList([_VQLayer(dim, bins) for _ in range(n_q)])


class VectorQuantizer(nn.Module):
    """Holds ``vq.layers[i]._codebook``. WavTokenizer uses one layer (the 6.6 kbps bandwidth asks
    for more, but only one exists, and the reference returns the last layer's output)."""

    def __init__(self, dim: int, bins: int, n_q: int = 1):
        super().__init__()
        if n_q != 1:
            raise NotImplementedError(f"only single-codebook WavTokenizer configs are supported (num_quantizers={n_q})")
        self.vq = _VQStack(dim, bins, n_q)

    @property
    def codebook(self) -> EuclideanCodebook:
        return self.vq.layers[0]._codebook


class EncodecFeatures(nn.Module):
    """``feature_extractor.encodec.{encoder, decoder, quantizer}`` as the checkpoint names them."""

    def __init__(self, dimension: int, n_filters: int, ratios: list[int], bins: int, n_q: int):
        super().__init__()
        self.encodec = nn.Module()
        self.encodec.encoder = SEANetEncoder(dimension, n_filters, ratios)
        self.encodec.quantizer = VectorQuantizer(dimension, bins, n_q)  # checkpoint order
        self.encodec.decoder = SEANetDecoderWeights(dimension, n_filters, ratios)


# ---------------------------------------------------------------------------------------------
# decoder: Vocos backbone with pos_net, and the iSTFT head


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """GroupNorm -> SiLU -> conv k3, twice, plus the identity (the LDM/taming ResNet block;
    its dropout 0.1 is inactive in eval)."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.norm1 = _group_norm(dim)
        self.conv1 = nn.Conv1d(dim, dim, 3, padding=1)
        self.norm2 = _group_norm(dim)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return x + h


class AttnBlock(nn.Module):
    """Single-head full self-attention over time with 1x1-conv projections; (B, C, T) in/out.
    Non-causal: every frame sees the whole chunk, which is why chunked decoding has seams."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = _group_norm(dim)
        self.q = nn.Conv1d(dim, dim, 1)
        self.k = nn.Conv1d(dim, dim, 1)
        self.v = nn.Conv1d(dim, dim, 1)
        self.proj_out = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)  # (B, C, T)
        C = q.shape[1]
        w = torch.bmm(q.transpose(1, 2), k) * C ** -0.5  # (B, Tq, Tk)
        w = F.softmax(w, dim=2)
        h = torch.bmm(v, w.transpose(1, 2))  # (B, C, Tq)
        return x + self.proj_out(h)


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale and shift are looked up by a condition id (the bandwidth id)."""

    def __init__(self, num_embeddings: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        # x: (B, T, C); cond_id: (1,) or (B,) -> (B or 1, 1, C)
        x = F.layer_norm(x, (self.dim,), eps=self.eps)
        return x * self.scale(cond_id).unsqueeze(1) + self.shift(cond_id).unsqueeze(1)


class ConvNeXtBlock(nn.Module):
    """Depth-wise conv k7 -> AdaLayerNorm -> Linear -> GELU -> Linear -> layer scale, residual."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: float, adanorm_num_embeddings: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h, cond_id))))
        return x + (self.gamma * h).transpose(1, 2)


class VocosBackbone(nn.Module):
    """(B, input_channels, L) features -> (B, L, dim) hidden frames."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 adanorm_num_embeddings: int, layer_scale_init_value: float | None = None):
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim)
        scale = layer_scale_init_value or 1 / num_layers
        self.convnext = nn.ModuleList(
            [ConvNeXtBlock(dim, intermediate_dim, scale, adanorm_num_embeddings) for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.pos_net = nn.Sequential(
            ResnetBlock(dim), ResnetBlock(dim), AttnBlock(dim), ResnetBlock(dim), ResnetBlock(dim), _group_norm(dim)
        )

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        x = self.pos_net(self.embed(x))  # (B, C, L)
        x = self.norm(x.transpose(1, 2), cond_id).transpose(1, 2)
        for block in self.convnext:
            x = block(x, cond_id)
        return self.final_layer_norm(x.transpose(1, 2))  # (B, L, C)


class ISTFT(nn.Module):
    """Inverse STFT with "same" padding: frames * hop samples out, aligned with the frames.

    ``torch.istft`` only supports ``center=True`` padding; "same" (Vocos, and WavTokenizer after it)
    overlap-adds the windowed inverse FFTs, trims ``(win - hop) / 2`` samples at both ends and
    divides by the overlap-added squared window, which is the least-squares inverse of a
    Hann-windowed STFT (Griffin & Lim 1984).
    """

    def __init__(self, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError(f"ISTFT padding must be 'same' or 'center', got {padding!r}")
        self.n_fft, self.hop_length, self.padding = n_fft, hop_length, padding
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        # spec: (B, n_fft // 2 + 1, L) complex -> (B, L * hop)
        if self.padding == "center":
            return torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, self.window, center=True)
        pad = (self.n_fft - self.hop_length) // 2
        L = spec.shape[-1]
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        out_len = (L - 1) * self.hop_length + self.n_fft
        fold = dict(output_size=(1, out_len), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        y = F.fold(frames, **fold)[:, 0, 0, pad:-pad]
        env = F.fold(self.window.square().expand(1, L, -1).transpose(1, 2), **fold).squeeze()[pad:-pad]
        return y / env


class ISTFTHead(nn.Module):
    """(B, L, dim) -> Linear -> log-magnitude (exp, clipped at 100) and phase -> iSTFT -> (B, L * hop)."""

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mag, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)  # (B, n_fft/2 + 1, L) each
        mag = torch.exp(mag).clip(max=1e2)
        return self.istft(mag * (torch.cos(phase) + 1j * torch.sin(phase)))


# ---------------------------------------------------------------------------------------------
# config, codec, loader


@dataclass
class WavTokenizerConfig:
    """The numbers of a WavTokenizer YAML (``model.init_args``); defaults are the LLMVoX config
    ``wavtokenizer_smalldata_frame75_3s_nq1_code4096_dim512_kmeans200_attn.yaml``."""

    sample_rate: int = 24000
    bandwidths: list[float] = field(default_factory=lambda: [6.6, 6.6, 6.6, 6.6])
    num_quantizers: int = 1
    downsamples: list[int] = field(default_factory=lambda: [8, 5, 4, 2])  # YAML key: "dowmsamples"
    vq_bins: int = 4096
    # not in the YAML: the official EncodecFeatures hard-codes them
    encoder_dim: int = 512
    encoder_filters: int = 32
    backbone_dim: int = 768
    intermediate_dim: int = 2304
    num_layers: int = 12
    adanorm_num_embeddings: int = 4
    layer_scale_init_value: float | None = None
    n_fft: int = 1280
    hop_length: int = 320
    padding: str = "same"

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides) -> "WavTokenizerConfig":
        """Read an official WavTokenizer YAML; ``overrides`` set fields the YAML cannot express
        (``encoder_dim``, ``encoder_filters``)."""
        import yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: WavTokenizer config not found")
        try:
            args = yaml.safe_load(p.read_text())["model"]["init_args"]
            fe = args["feature_extractor"]["init_args"]
            bb = args["backbone"]["init_args"]
            hd = args["head"]["init_args"]
        except (KeyError, TypeError, yaml.YAMLError) as err:
            raise ValueError(f"{p}: not a WavTokenizer config (need model.init_args.feature_extractor/backbone/head): {err!r}") from err
        for part, want in ((args["head"], "ISTFTHead"), (args["backbone"], "VocosBackbone")):
            if not str(part.get("class_path", "")).endswith(want):
                raise NotImplementedError(f"{p}: only {want} is implemented, config has {part.get('class_path')}")
        if hd["hop_length"] != math.prod(fe["dowmsamples"]):
            raise ValueError(f"{p}: head hop_length {hd['hop_length']} != product of dowmsamples {fe['dowmsamples']}")
        cfg = cls(
            sample_rate=int(args.get("sample_rate", 24000)),
            bandwidths=list(fe["bandwidths"]),
            num_quantizers=int(fe["num_quantizers"]),
            downsamples=list(fe["dowmsamples"]),
            vq_bins=int(fe["vq_bins"]),
            backbone_dim=int(bb["dim"]),
            intermediate_dim=int(bb["intermediate_dim"]),
            num_layers=int(bb["num_layers"]),
            adanorm_num_embeddings=int(bb["adanorm_num_embeddings"]),
            layer_scale_init_value=bb.get("layer_scale_init_value"),
            n_fft=int(hd["n_fft"]),
            hop_length=int(hd["hop_length"]),
            padding=str(hd.get("padding", "same")),
        )
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown WavTokenizerConfig field {k!r}")
            setattr(cfg, k, v)
        if int(bb["input_channels"]) != cfg.encoder_dim:
            raise ValueError(
                f"{p}: backbone input_channels {bb['input_channels']} != encoder_dim {cfg.encoder_dim} "
                "(the official code hard-codes 512; pass encoder_dim= for other models)"
            )
        if int(hd["dim"]) != cfg.backbone_dim:
            raise ValueError(f"{p}: head dim {hd['dim']} != backbone dim {cfg.backbone_dim}")
        return cfg


class WavTokenizer(nn.Module, AudioCodec):
    """WavTokenizer as an :class:`AudioCodec` (24 kHz, 320 samples per code, 75 codes/s).

    Module names are the checkpoint's: ``feature_extractor`` (SEANet encoder, unused SEANet
    decoder weights, quantizer), ``backbone``, ``head``. ``bandwidth_id`` selects the AdaLayerNorm
    condition used by :meth:`decode` (LLMVoX always uses 0). Eval mode; inference under
    ``torch.inference_mode``.
    """

    def __init__(self, config: WavTokenizerConfig, bandwidth_id: int = 0):
        super().__init__()
        self.config = config
        self.feature_extractor = EncodecFeatures(
            config.encoder_dim, config.encoder_filters, config.downsamples, config.vq_bins, config.num_quantizers
        )
        self.backbone = VocosBackbone(
            config.encoder_dim, config.backbone_dim, config.intermediate_dim, config.num_layers,
            config.adanorm_num_embeddings, config.layer_scale_init_value,
        )
        self.head = ISTFTHead(config.backbone_dim, config.n_fft, config.hop_length, config.padding)
        self.sample_rate = config.sample_rate
        self.hop_length = config.hop_length
        self.codebook_size = config.vq_bins
        self.feature_dim = config.encoder_dim
        self.set_bandwidth_id(bandwidth_id)
        self.eval()

    def set_bandwidth_id(self, bandwidth_id: int) -> None:
        if not 0 <= bandwidth_id < self.config.adanorm_num_embeddings:
            raise ValueError(f"bandwidth_id must be in [0, {self.config.adanorm_num_embeddings}), got {bandwidth_id}")
        self.bandwidth_id = bandwidth_id

    @property
    def codebook(self) -> torch.Tensor:
        return self.feature_extractor.encodec.quantizer.codebook.embed

    @torch.inference_mode()
    def encoder_output(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, encoder_dim, L) continuous SEANet output, before quantisation."""
        return self.feature_extractor.encodec.encoder(wav.unsqueeze(1))

    @torch.inference_mode()
    def _encode(self, wav: torch.Tensor) -> torch.Tensor:
        cb = self.feature_extractor.encodec.quantizer.codebook
        if float(cb.inited) == 0.0:
            raise CodecError(
                "the codebook is not initialised (inited == 0): the reference would silently run "
                "k-means on this input; load a trained checkpoint"
            )
        e = self.encoder_output(wav)  # (B, D, L)
        B, D, L = e.shape
        return cb.nearest(e.transpose(1, 2).reshape(B * L, D)).view(B, L)

    @torch.inference_mode()
    def _decode(self, features: torch.Tensor) -> torch.Tensor:
        cond = torch.tensor([self.bandwidth_id], device=features.device)
        return self.head(self.backbone(features, cond))

    def int8_decoder(self) -> "WavTokenizer":
        """A copy whose decoder (``backbone`` and ``head``) runs int8 weights on the CPU
        (:func:`vxlib.quant.quantize_modules`: the Linear layers and the dense convolutions; norms
        and depth-wise convolutions stay fp32); the encoder and codebook are shared with ``self``.

        Decoding a short streaming chunk reads all 62M decoder weights for a handful of frames,
        so it is memory-bound: int8 weights make the first chunk about 3x cheaper here. The
        waveform differs from the fp32 decoder's (``python -m vxlib.bench tts`` prints the SNR);
        the fp32 decoder stays the reference."""
        from vxlib.quant import quantize_modules

        q = copy.deepcopy(self, memo={id(self.feature_extractor): self.feature_extractor})
        q.backbone, q.head = quantize_modules(self.backbone), quantize_modules(self.head)
        return q.eval()

    @classmethod
    def from_pretrained(
        cls,
        config_path: str | os.PathLike,
        ckpt_path: str | os.PathLike,
        map_location: str | torch.device = "cpu",
        trust_pickle: bool = False,
        **config_overrides,
    ) -> "WavTokenizer":
        """Load an official WavTokenizer: its YAML and Lightning ``.ckpt`` (``state_dict`` entries
        starting ``feature_extractor.``, ``backbone.``, ``head.`` are kept; the discriminators and
        losses are dropped) and load them strictly.

        The file is read with ``weights_only=True``. A full Lightning training checkpoint can hold
        pickled Python objects that this refuses; only then, and only for a file you trust, pass
        ``trust_pickle=True``.
        """
        from vxlib.llmvox.model import CheckpointError, load_state_dict_strict

        cfg = WavTokenizerConfig.from_yaml(config_path, **config_overrides)
        src = os.fspath(ckpt_path)
        if not os.path.isfile(src):
            raise CheckpointError(f"{src}: file not found")
        try:
            ckpt = torch.load(src, map_location=map_location, weights_only=not trust_pickle)
        except Exception as err:
            hint = "" if trust_pickle else " (if it is a trusted full Lightning checkpoint, pass trust_pickle=True)"
            raise CheckpointError(f"{src}: cannot load checkpoint: {err}{hint}") from err
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
            raise CheckpointError(f"{src}: expected a Lightning checkpoint dict with 'state_dict'")
        keep = ("feature_extractor.", "backbone.", "head.")
        sd = {k: v for k, v in ckpt["state_dict"].items() if k.startswith(keep)}
        model = cls(cfg)
        load_state_dict_strict(model, sd, src)
        return model.eval()
