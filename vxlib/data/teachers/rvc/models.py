"""The RVC synthesizer (v1/v2, with and without f0), built bottom-up with official key names.

One class, :class:`Synthesizer`, covers the four official classes; which one a file needs follows
from ``(version, f0)``:

=========  =====  ===================================  ==============  =====================
version    f0     official class                       content dim     decoder
=========  =====  ===================================  ==============  =====================
v1         1      ``SynthesizerTrnMs256NSFsid``        256             NSF HiFi-GAN
v1         0      ``SynthesizerTrnMs256NSFsid_nono``   256             plain HiFi-GAN
v2         1      ``SynthesizerTrnMs768NSFsid``        768             NSF HiFi-GAN
v2         0      ``SynthesizerTrnMs768NSFsid_nono``   768             plain HiFi-GAN
=========  =====  ===================================  ==============  =====================

Inference path (``infer``): content features (B, T, 256|768) at 100 frames/s [+ coarse pitch]
-> text encoder -> prior (m_p, logs_p) -> sample z_p -> reverse flow (speaker-conditioned)
-> decoder (speaker-conditioned, NSF: driven by a sine at the target f0) -> (B, 1, T·hop) audio.
The posterior encoder ``enc_q`` is training-only: official inference files omit it, and it is
only built on request (to read training checkpoints ``G_*.pth``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .modules import (
    LRELU_SLOPE,
    ChannelFlip,
    RelativeTransformer,
    ResBlock1,
    ResBlock2,
    ResidualCouplingLayer,
    WaveNet,
    WNConvTranspose1d,
    sequence_mask,
)

# The prior sample is m_p + exp(logs_p)·ε·0.66666: the reference writes the constant with five
# sixes, not 2/3; using 2/3 would move outputs by ~1e-5·|ε| for no reason.
PRIOR_NOISE_SCALE = 0.66666


@dataclass
class SynthesizerConfig:
    """Constructor arguments of the official classes (the 18-entry ``config`` list, by name).

    Defaults are the full-size v2 32 kHz model with f0. ``content_dim`` is not in the official
    list: it follows ``version`` (v1 -> 256, v2 -> 768).
    """

    spec_channels: int = 513  # linear-spectrogram bins; only the posterior encoder uses it
    segment_size: int = 32  # training slice in frames; unused at inference
    inter_channels: int = 192  # latent z channels
    hidden_channels: int = 192
    filter_channels: int = 768  # text-encoder FFN width
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    p_dropout: float = 0.0  # inference is eval-mode: dropout is never applied here
    resblock: str = "1"
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5]] * 3)
    upsample_rates: list[int] = field(default_factory=lambda: [10, 8, 2, 2])
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [20, 16, 4, 4])
    spk_embed_dim: int = 109  # official files store 109; loaders use the rows of emb_g.weight
    gin_channels: int = 256
    sr: int = 32000
    content_dim: int = 768
    use_f0: bool = True

    # names of the 18 positional entries of an official config list, in order
    LIST_FIELDS = (
        "spec_channels", "segment_size", "inter_channels", "hidden_channels", "filter_channels",
        "n_heads", "n_layers", "kernel_size", "p_dropout", "resblock", "resblock_kernel_sizes",
        "resblock_dilation_sizes", "upsample_rates", "upsample_initial_channel",
        "upsample_kernel_sizes", "spk_embed_dim", "gin_channels", "sr",
    )

    @property
    def hop_length(self) -> int:
        """Output samples per content frame (10 ms at every official rate)."""
        return math.prod(self.upsample_rates)


# ----------------------------------------------------------------------------------------------
# prior: content (+ pitch) encoder


class TextEncoder(nn.Module):
    """Content features (+ coarse pitch) -> prior mean and log-std, (B, inter, T) each.

    Embeddings are summed, scaled by sqrt(hidden) and passed through a leaky ReLU(0.1) before
    the transformer (as the official code; VITS has no activation there).
    """

    def __init__(self, cfg: SynthesizerConfig):
        super().__init__()
        self.hidden = cfg.hidden_channels
        self.out_channels = cfg.inter_channels
        self.emb_phone = nn.Linear(cfg.content_dim, cfg.hidden_channels)
        if cfg.use_f0:
            self.emb_pitch = nn.Embedding(256, cfg.hidden_channels)  # coarse pitch 1..255 (0 unused)
        self.encoder = RelativeTransformer(cfg.hidden_channels, cfg.filter_channels, cfg.n_heads, cfg.n_layers,
                                           cfg.kernel_size)
        self.proj = nn.Conv1d(cfg.hidden_channels, 2 * cfg.inter_channels, 1)

    def forward(self, phone: torch.Tensor, pitch: torch.Tensor | None, lengths: torch.Tensor):
        """phone (B, T, content_dim), pitch (B, T) int64 or None, lengths (B,) -> m, logs, mask."""
        x = self.emb_phone(phone)  # (B, T, hidden)
        if pitch is not None:
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * math.sqrt(self.hidden), LRELU_SLOPE).transpose(1, 2)  # (B, hidden, T)
        x_mask = sequence_mask(lengths, x.shape[2]).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        x = self.encoder(x * x_mask, x_mask)
        stats = self.proj(x) * x_mask  # (B, 2·inter, T)
        m, logs = stats.split(self.out_channels, dim=1)
        return m, logs, x_mask


class PosteriorEncoder(nn.Module):
    """Linear spectrogram -> latent z (training only; ``enc_q`` in training checkpoints)."""

    def __init__(self, cfg: SynthesizerConfig):
        super().__init__()
        self.out_channels = cfg.inter_channels
        self.pre = nn.Conv1d(cfg.spec_channels, cfg.hidden_channels, 1)
        self.enc = WaveNet(cfg.hidden_channels, 5, 1, 16, cfg.gin_channels)
        self.proj = nn.Conv1d(cfg.hidden_channels, 2 * cfg.inter_channels, 1)

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor, g: torch.Tensor):
        x_mask = sequence_mask(lengths, spec.shape[2]).unsqueeze(1).to(spec.dtype)
        x = self.enc(self.pre(spec) * x_mask, x_mask, g)
        m, logs = (self.proj(x) * x_mask).split(self.out_channels, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask


class ResidualCouplingFlow(nn.Module):
    """4 × (mean-only WaveNet coupling, channel flip); keys ``flows.{0,2,4,6}``."""

    def __init__(self, cfg: SynthesizerConfig, n_flows: int = 4):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(ResidualCouplingLayer(cfg.inter_channels, cfg.hidden_channels, 5, 1, 3, cfg.gin_channels))
            self.flows.append(ChannelFlip())

    def forward(self, z: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        flows = reversed(self.flows) if reverse else self.flows
        for flow in flows:
            z = flow(z, x_mask, g=g, reverse=reverse)
        return z


# ----------------------------------------------------------------------------------------------
# decoder: HiFi-GAN, optionally with a neural-source-filter (NSF) harmonic source


class SineSource(nn.Module):
    """NSF harmonic source (``m_source``): sine at f0 -> Linear(1, 1) -> tanh, (B, T·hop, 1).

    Phase is accumulated at frame rate and corrected at sample rate, exactly as RVC's ``SineGen``
    (harmonic_num 0): per frame r = (f0/sr) mod 1; a coarse phase cumsum(r)·hop is linearly
    interpolated to samples (align_corners) and wrapped to [0, 1); wherever it wraps, -1 is added
    to that sample's increment; the sample increment is r repeated hop times. The corrections
    keep the accumulated phase small, which is why float32 stays accurate over long inputs.
    Unvoiced samples (f0 <= 0) carry noise of std sine_amp/3 instead of the sine.

    Random draws (torch's generator, in this order, as the reference): a (B, 1) uniform initial
    phase that is then zeroed (harmonic 0 has none; drawn only to keep the generator in step),
    then a (B, T·hop, 1) Gaussian. ``noise=False`` replaces the Gaussian by zeros.
    """

    def __init__(self, sample_rate: int, sine_amp: float = 0.1, noise_std: float = 0.003):
        super().__init__()
        self.sample_rate = sample_rate
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.l_linear = nn.Linear(1, 1)

    def sine(self, f0: torch.Tensor, upp: int, noise: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """f0 (B, T) Hz -> noisy sine excitation (B, T·upp, 1), before l_linear/tanh."""
        with torch.no_grad():
            f0 = f0.float().unsqueeze(-1)  # (B, T, 1)
            B, T, _ = f0.shape
            rad = (f0 / self.sample_rate) % 1  # phase increment per sample, per frame
            initial_phase = torch.rand(B, 1, generator=generator, device=f0.device)
            initial_phase[:, 0] = 0  # the fundamental starts at phase 0
            rad[:, 0, :] = rad[:, 0, :] + initial_phase
            coarse = torch.cumsum(rad, dim=1) * upp  # (B, T, 1)
            coarse = F.interpolate(coarse.transpose(1, 2), size=T * upp, mode="linear",
                                   align_corners=True).transpose(1, 2) % 1  # (B, T·upp, 1)
            rad = F.interpolate(rad.transpose(1, 2), size=T * upp, mode="nearest").transpose(1, 2)
            wraps = torch.zeros_like(rad)
            wraps[:, 1:, :] = -1.0 * ((coarse[:, 1:, :] - coarse[:, :-1, :]) < 0)
            sine = torch.sin(torch.cumsum(rad + wraps, dim=1) * 2 * math.pi) * self.sine_amp
            uv = F.interpolate((f0 > 0).float().transpose(1, 2), size=T * upp, mode="nearest").transpose(1, 2)
            eps = torch.randn(sine.shape, generator=generator, device=f0.device)
            if not noise:
                eps = torch.zeros_like(eps)
            noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
            return sine * uv + noise_amp * eps

    def forward(self, f0: torch.Tensor, upp: int, noise: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:
        sine = self.sine(f0, upp, noise, generator)
        return torch.tanh(self.l_linear(sine.to(self.l_linear.weight.dtype)))


class Generator(nn.Module):
    """HiFi-GAN decoder, latent (B, inter, T) -> audio (B, 1, T·hop), speaker-conditioned.

    With ``use_f0`` it is RVC's ``GeneratorNSF``: the harmonic source, downsampled by a strided
    conv to each stage's rate (``noise_convs``), is added after every upsampling. Every stage
    multiplies the length exactly by its rate (ConvTranspose padding (k-u)//2). The activation
    before ``conv_post`` is a leaky ReLU with the functional default slope 0.01, not 0.1: the
    official code calls ``F.leaky_relu(x)`` there without a slope.
    """

    def __init__(self, cfg: SynthesizerConfig):
        super().__init__()
        self.use_f0 = cfg.use_f0
        self.upp = cfg.hop_length
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        rates, ch0 = cfg.upsample_rates, cfg.upsample_initial_channel
        if cfg.use_f0:
            self.m_source = SineSource(cfg.sr)
            self.noise_convs = nn.ModuleList()
        self.conv_pre = nn.Conv1d(cfg.inter_channels, ch0, 7, 1, padding=3)
        resblock = {"1": ResBlock1, "2": ResBlock2}[str(cfg.resblock)]
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(rates, cfg.upsample_kernel_sizes)):
            ch = ch0 // 2 ** (i + 1)
            self.ups.append(WNConvTranspose1d(ch0 // 2**i, ch, k, u, padding=(k - u) // 2))
            for rk, rd in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(resblock(ch, rk, tuple(rd)))
            if cfg.use_f0:
                stride = math.prod(rates[i + 1:])  # source rate -> this stage's rate
                if i + 1 < len(rates):
                    self.noise_convs.append(nn.Conv1d(1, ch, stride * 2, stride=stride, padding=stride // 2))
                else:
                    self.noise_convs.append(nn.Conv1d(1, ch, 1))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        self.cond = nn.Conv1d(cfg.gin_channels, ch0, 1)

    def forward(self, z: torch.Tensor, g: torch.Tensor, f0: torch.Tensor | None = None, noise: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """z (B, inter, T), g (B, gin, 1), f0 (B, T) Hz for the NSF decoder -> (B, 1, T·hop)."""
        if self.use_f0:
            if f0 is None:
                raise ValueError("this synthesizer has an NSF decoder: f0 (B, T) in Hz is required")
            source = self.m_source(f0, self.upp, noise, generator).transpose(1, 2)  # (B, 1, T·hop)
        x = self.conv_pre(z) + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            if self.use_f0:
                x = x + self.noise_convs[i](source)
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # slope 0.01, see docstring
        return torch.tanh(x)


# ----------------------------------------------------------------------------------------------
# the synthesizer


class Synthesizer(nn.Module):
    """RVC synthesizer: ``enc_p`` (prior), ``dec`` (vocoder), ``flow``, ``emb_g`` [, ``enc_q``].

    Shape contract of :meth:`infer`: phone (B, T, content_dim) float at 100 frames/s, lengths
    (B,) int64, pitch (B, T) int64 coarse 1..255 and nsff0 (B, T) Hz (f0 models only), sid (B,)
    int64 -> audio (B, 1, T·hop) in [-1, 1] at ``config.sr``.
    """

    def __init__(self, cfg: SynthesizerConfig, with_posterior_encoder: bool = False):
        super().__init__()
        self.config = cfg
        self.enc_p = TextEncoder(cfg)
        self.dec = Generator(cfg)
        if with_posterior_encoder:
            self.enc_q = PosteriorEncoder(cfg)
        self.flow = ResidualCouplingFlow(cfg)
        self.emb_g = nn.Embedding(cfg.spk_embed_dim, cfg.gin_channels)

    def speaker(self, sid: torch.Tensor) -> torch.Tensor:
        return self.emb_g(sid).unsqueeze(-1)  # (B, gin, 1)

    @torch.no_grad()
    def infer(self, phone: torch.Tensor, lengths: torch.Tensor, pitch: torch.Tensor | None = None,
              nsff0: torch.Tensor | None = None, sid: torch.Tensor | None = None, *, noise: bool = True,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (audio (B, 1, T·hop), z (B, inter, T), z_p (B, inter, T)).

        Random draws, in the reference order: the prior noise ε (B, inter, T), then (f0 models)
        the sine source's draws (see :class:`SineSource`). ``generator=None`` draws from torch's
        global generator, so ``torch.manual_seed(s)`` right before reproduces a reference run
        seeded the same way. ``noise=False`` replaces every Gaussian draw by zeros
        (z_p = m_p, no source noise): fully deterministic.
        """
        if sid is None:
            raise ValueError("sid (B,) int64 speaker ids is required")
        if self.config.use_f0 and (pitch is None or nsff0 is None):
            raise ValueError("this synthesizer uses f0: pass pitch (coarse, B×T int64) and nsff0 (Hz, B×T)")
        g = self.speaker(sid)
        m_p, logs_p, x_mask = self.enc_p(phone, pitch if self.config.use_f0 else None, lengths)
        eps = torch.randn(m_p.shape, generator=generator, dtype=m_p.dtype, device=m_p.device)
        if not noise:
            eps = torch.zeros_like(eps)
        z_p = (m_p + torch.exp(logs_p) * eps * PRIOR_NOISE_SCALE) * x_mask
        z = self.flow(z_p, x_mask, g=g, reverse=True)
        audio = self.dec(z * x_mask, g, nsff0 if self.config.use_f0 else None, noise=noise, generator=generator)
        return audio, z, z_p
