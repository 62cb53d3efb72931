"""Waveform discriminators for LLVC's GAN training, in the layouts of the reference checkpoints.

Bottom-up: weight-normalised convolutions -> one scale discriminator / one period discriminator
-> the two ensembles the official configs name:

- ``"rvc"`` (:class:`MultiPeriodDiscriminator`, the RVC/VITS layout): ``discriminators.0`` is one
  VITS scale discriminator on the raw waveform, ``discriminators.1..`` one period discriminator per
  entry of the config's ``periods`` (``[2, 3, 5, 7, 11, 17, 23, 37]`` in ``experiments/llvc``);
- ``"hfg"`` (:class:`HifiGanDiscriminator`, HiFi-GAN, Kong et al. 2020): ``discriminators.0`` the
  multi-scale discriminator (3 scales, raw / x2 / x4 average-pooled, the first with spectral norm),
  ``discriminators.1`` the multi-period discriminator with periods 2, 3, 5, 7, 11.

Parameter names follow those layouts (weight norm as ``weight_g`` / ``weight_v``, spectral norm as
``weight_orig`` / ``weight_u`` / ``weight_v``), so discriminator state dicts written by the
reference trainer load unchanged.

Shape contract of every :class:`Discriminator`: ``forward(real, fake)`` with both ``(B, 1, T)``
returns a :class:`DiscriminatorOutput` whose four lists hold one entry per sub-discriminator:
logits ``(B, N_k)`` and the feature maps (every hidden activation and the final logits map).
The argument order is (real = target speech, fake = generator output); the reference trainer
passed them the other way round in its discriminator step (see :mod:`vxlib.llvc.train`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DiscriminatorOutput", "Discriminator", "ScaleDiscriminator", "PeriodDiscriminator",
           "MultiPeriodDiscriminator", "MultiScaleDiscriminator", "HifiGanPeriodDiscriminator",
           "HifiGanDiscriminator", "build_discriminator", "DISCRIMINATORS"]

LRELU_SLOPE = 0.1  # HiFi-GAN / VITS value for every hidden activation


# ----------------------------------------------------------------------------------------------
# Normalised convolutions.


class _WeightNormMixin:
    """Weight normalisation (Salimans & Kingma 2016) stored as ``weight_g`` (per output channel
    norm) and ``weight_v`` (direction), the key names of checkpoints made with the classic
    ``torch.nn.utils.weight_norm`` (deprecated in recent torch; its parametrizations replacement
    renames the keys). The effective weight ``g * v / ||v||`` is recomputed on every call."""

    def _init_weight_norm(self) -> None:
        weight = self.weight.detach()
        del self.weight
        self.weight_g = nn.Parameter(torch.norm_except_dim(weight, 2, 0))
        self.weight_v = nn.Parameter(weight.clone())

    def normalised_weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalised_weight(), self.bias)


class WeightNormConv1d(_WeightNormMixin, nn.Conv1d):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()


class WeightNormConv2d(_WeightNormMixin, nn.Conv2d):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()


def _conv1d(spectral: bool, c_in: int, c_out: int, kernel: int, stride: int, groups: int, padding: int) -> nn.Module:
    if spectral:
        return nn.utils.spectral_norm(nn.Conv1d(c_in, c_out, kernel, stride, padding=padding, groups=groups))
    return WeightNormConv1d(c_in, c_out, kernel, stride, padding=padding, groups=groups)


# ----------------------------------------------------------------------------------------------
# Single discriminators.

# (in, out, kernel, stride, groups, padding) of the hidden convolutions.
VITS_SCALE_LAYERS = [(1, 16, 15, 1, 1, 7), (16, 64, 41, 4, 4, 20), (64, 256, 41, 4, 16, 20),
                     (256, 1024, 41, 4, 64, 20), (1024, 1024, 41, 4, 256, 20), (1024, 1024, 5, 1, 1, 2)]
HIFIGAN_SCALE_LAYERS = [(1, 128, 15, 1, 1, 7), (128, 128, 41, 2, 4, 20), (128, 256, 41, 2, 16, 20),
                        (256, 512, 41, 4, 16, 20), (512, 1024, 41, 4, 16, 20), (1024, 1024, 41, 1, 16, 20),
                        (1024, 1024, 5, 1, 1, 2)]
PERIOD_CHANNELS = [1, 32, 128, 512, 1024, 1024]  # the last layer keeps 1024 channels at stride 1


def narrowed_scale_layers(layers: Sequence[tuple[int, int, int, int, int, int]], divisor: int
                          ) -> list[tuple[int, int, int, int, int, int]]:
    """Scale-discriminator layers with every hidden channel count (and group count, at least 1)
    divided by ``divisor``; the input stays 1 channel. ``divisor=1`` returns the layers unchanged."""
    out = []
    for c_in, c_out, k, s, g, p in layers:
        c_in = c_in if c_in == 1 else c_in // divisor
        c_out, g = c_out // divisor, max(1, g // divisor)
        if c_out < 1 or c_in % g or c_out % g:
            raise ValueError(f"discriminator_width_divisor {divisor} does not divide the layer "
                             f"({c_in * divisor if c_in > 1 else 1}->{c_out * divisor}, groups {g * divisor})")
        out.append((c_in, c_out, k, s, g, p))
    return out


def narrowed_period_channels(divisor: int) -> list[int]:
    return [1] + [c // divisor for c in PERIOD_CHANNELS[1:]]


class ScaleDiscriminator(nn.Module):
    """Strided grouped 1-D convolutions over the waveform: ``(B, 1, T)`` -> (logits ``(B, N)``, fmaps)."""

    def __init__(self, layers: Sequence[tuple[int, int, int, int, int, int]] = tuple(VITS_SCALE_LAYERS),
                 use_spectral_norm: bool = False):
        super().__init__()
        self.convs = nn.ModuleList(_conv1d(use_spectral_norm, *spec) for spec in layers)
        self.conv_post = _conv1d(use_spectral_norm, layers[-1][1], 1, 3, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)  # (B, C, T / stride so far)
            fmaps.append(x)
        x = self.conv_post(x)  # (B, 1, N)
        fmaps.append(x)
        return x.flatten(1), fmaps


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN period discriminator: the waveform folded to ``(B, 1, T / p, p)`` so that 2-D
    convolutions with ``(k, 1)`` kernels see samples ``p`` apart (periodic structure such as the
    harmonics of f0). ``T`` is reflect-padded up to a multiple of ``p`` first."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3,
                 channels: Sequence[int] = tuple(PERIOD_CHANNELS)):
        super().__init__()
        self.period = period
        pad = (kernel_size - 1) // 2
        strides = [stride] * (len(channels) - 2) + [1]
        self.convs = nn.ModuleList(
            WeightNormConv2d(c_in, c_out, (kernel_size, 1), (s, 1), padding=(pad, 0))
            for c_in, c_out, s in zip(channels[:-1], channels[1:], strides))
        self.conv_post = WeightNormConv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        B, C, T = x.shape
        if T % self.period:
            x = F.pad(x, (0, self.period - T % self.period), mode="reflect")
        x = x.view(B, C, -1, self.period)  # (B, 1, T / p, p)
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmaps.append(x)
        x = self.conv_post(x)  # (B, 1, T', p)
        fmaps.append(x)
        return x.flatten(1), fmaps


# ----------------------------------------------------------------------------------------------
# Ensembles.


@dataclass
class DiscriminatorOutput:
    """One entry per sub-discriminator: logits ``(B, N_k)``, feature maps (list of tensors)."""

    real_logits: list[torch.Tensor]
    fake_logits: list[torch.Tensor]
    real_fmaps: list[list[torch.Tensor]]
    fake_fmaps: list[list[torch.Tensor]]


class Discriminator(nn.Module):
    """An ensemble of sub-discriminators judging ``real`` and ``fake`` waveforms.

    ``forward(real (B, 1, T), fake (B, 1, T)) -> DiscriminatorOutput`` (real = target speech,
    fake = generator output). Real and fake go through each sub-discriminator as one batch of
    ``2B`` (half the kernel launches of two calls; no layer mixes batch items).

    ``feature_loss_scale`` multiplies the feature-matching loss on top of the config's
    ``feature_loss_c``: the reference's HiFi-GAN loss doubled it internally, its RVC loss did not.
    """

    feature_loss_scale: float = 1.0

    def groups(self) -> list[list[tuple[nn.Module, nn.Module | None]]]:
        """Sub-discriminators in output order, as groups that each start from the raw waveform;
        inside a group each ``(discriminator, pooling or None)`` sees the previous one's input,
        pooled."""
        raise NotImplementedError

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> DiscriminatorOutput:
        if real.shape != fake.shape or real.dim() != 3 or real.shape[1] != 1:
            raise ValueError(f"discriminator expects real and fake of the same shape (B, 1, T), "
                             f"got {tuple(real.shape)} and {tuple(fake.shape)}")
        B = real.shape[0]
        out = DiscriminatorOutput([], [], [], [])
        for group in self.groups():
            x = torch.cat((real, fake), dim=0)  # (2B, 1, T)
            for disc, pool in group:
                if pool is not None:
                    x = pool(x)
                logits, fmaps = disc(x)
                out.real_logits.append(logits[:B])
                out.fake_logits.append(logits[B:])
                out.real_fmaps.append([f[:B] for f in fmaps])
                out.fake_fmaps.append([f[B:] for f in fmaps])
        return out


class MultiPeriodDiscriminator(Discriminator):
    """The ``"rvc"`` discriminator (RVC v2 / VITS): one scale discriminator + period discriminators.

    ``width_divisor`` > 1 narrows every hidden layer (not part of the reference; the official
    configs leave it at 1): the full-width ensemble has 71 M parameters and dominates a CPU step.
    """

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11, 17, 23, 37), width_divisor: int = 1):
        super().__init__()
        if not periods or any(int(p) < 1 for p in periods):
            raise ValueError(f"periods must be a non-empty list of positive integers, got {periods!r}")
        self.periods = [int(p) for p in periods]
        channels = narrowed_period_channels(width_divisor)
        self.discriminators = nn.ModuleList(
            [ScaleDiscriminator(narrowed_scale_layers(VITS_SCALE_LAYERS, width_divisor))]
            + [PeriodDiscriminator(p, channels=channels) for p in self.periods])

    def groups(self):
        return [[(d, None)] for d in self.discriminators]


class MultiScaleDiscriminator(nn.Module):
    """HiFi-GAN MSD: scale discriminators on the waveform, then x2 and x4 average-pooled copies.
    The first (raw waveform) uses spectral norm, as in HiFi-GAN, to stabilise the loudest scale."""

    def __init__(self, width_divisor: int = 1):
        super().__init__()
        layers = narrowed_scale_layers(HIFIGAN_SCALE_LAYERS, width_divisor)
        self.discriminators = nn.ModuleList([ScaleDiscriminator(layers, use_spectral_norm=True),
                                             ScaleDiscriminator(layers), ScaleDiscriminator(layers)])
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])


class HifiGanPeriodDiscriminator(nn.Module):
    """HiFi-GAN MPD: period discriminators for periods 2, 3, 5, 7, 11 (fixed in HiFi-GAN)."""

    periods = (2, 3, 5, 7, 11)

    def __init__(self, width_divisor: int = 1):
        super().__init__()
        channels = narrowed_period_channels(width_divisor)
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels=channels) for p in self.periods)


class HifiGanDiscriminator(Discriminator):
    """The ``"hfg"`` discriminator: HiFi-GAN MSD (``discriminators.0``) + MPD (``discriminators.1``)."""

    feature_loss_scale = 2.0

    def __init__(self, width_divisor: int = 1):
        super().__init__()
        self.discriminators = nn.ModuleList([MultiScaleDiscriminator(width_divisor),
                                             HifiGanPeriodDiscriminator(width_divisor)])

    def groups(self):
        msd, mpd = self.discriminators
        return [list(zip(msd.discriminators, [None, *msd.meanpools]))] + [[(d, None)] for d in mpd.discriminators]


DISCRIMINATORS = ("rvc", "hfg")


def build_discriminator(config: Mapping[str, Any]) -> Discriminator:
    """The discriminator an official config names (``discriminator``: ``"rvc"`` uses ``periods``).

    ``discriminator_width_divisor`` (a vxlib extension, default 1 = the reference widths) narrows
    the hidden layers for CPU-sized runs such as ``experiments/llvc_tiny``.
    """
    kind = config.get("discriminator", "rvc")
    divisor = int(config.get("discriminator_width_divisor", 1))
    if divisor < 1 or divisor & (divisor - 1):
        raise ValueError(f"discriminator_width_divisor must be a power of two >= 1, got {divisor}")
    if kind == "rvc":
        return MultiPeriodDiscriminator(config.get("periods", (2, 3, 5, 7, 11, 17, 23, 37)), divisor)
    if kind == "hfg":
        return HifiGanDiscriminator(divisor)
    raise ValueError(f"unknown discriminator {kind!r} in config (expected one of {DISCRIMINATORS})")
