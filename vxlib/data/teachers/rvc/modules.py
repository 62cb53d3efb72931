"""Layers of the RVC synthesizer (VITS lineage), bottom-up, with the official state-dict names.

Every module here keeps the parameter names of the official RVC / VITS code, so an official
``.pth`` loads into it unchanged: weight-normed convolutions store ``weight_g`` + ``weight_v``,
layer norms store ``gamma`` + ``beta``, relative attention stores ``emb_rel_k`` / ``emb_rel_v``.
Shapes are written ``(B, C, T)``: batch, channels, frames (or samples in the decoder).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.1  # every leaky ReLU in the decoder except the one before conv_post (see Generator)


# ----------------------------------------------------------------------------------------------
# weight normalisation with the official key names


class _WeightNormMixin:
    """Weight normalisation ``w = g * v / ||v||`` with the norm over every dim except dim 0.

    The official checkpoints were written with the legacy ``torch.nn.utils.weight_norm``, which
    stores ``weight_g`` and ``weight_v``; the newer parametrisation API would name them
    ``parametrizations.weight.original0/1``. Re-implementing the three lines keeps the official
    names without depending on a deprecated API. For ``ConvTranspose1d`` the weight is
    ``(in, out, k)``, so ``g`` is ``(in, 1, 1)``: normalised per *input* channel, as upstream.
    """

    def _init_weight_norm(self) -> None:
        weight = self.weight
        del self.weight
        dims = tuple(range(1, weight.dim()))
        self.weight_g = nn.Parameter(weight.detach().norm(dim=dims, keepdim=True))
        self.weight_v = nn.Parameter(weight.detach())

    def _normed_weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 0)


class WNConv1d(_WeightNormMixin, nn.Conv1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self._normed_weight(), self.bias)


class WNConvTranspose1d(_WeightNormMixin, nn.ConvTranspose1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self._normed_weight(), self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on valid frames."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


# ----------------------------------------------------------------------------------------------
# text (content) encoder: relative-position transformer


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, T) tensor; parameters named gamma/beta (VITS)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class RelativeMultiHeadAttention(nn.Module):
    """Self-attention with learned relative-position keys and values (Shaw et al. 2018, as VITS).

    Relative offsets are clipped to ``±window_size`` (10): offsets further apart get no relative
    term. One table is shared by all heads (``heads_share`` in VITS), shape (1, 2·window+1, C/H).
    Masked scores are filled with -1e4 (not -inf), as the reference, so a fully masked row stays
    finite.
    """

    def __init__(self, channels: int, n_heads: int, window_size: int = 10):
        super().__init__()
        assert channels % n_heads == 0
        self.n_heads = n_heads
        self.head_dim = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        rel_std = self.head_dim**-0.5
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.head_dim) * rel_std)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.head_dim) * rel_std)

    def _relative_table(self, table: torch.Tensor, length: int) -> torch.Tensor:
        """(1, 2W+1, D) -> (1, 2L-1, D): row r holds offset r-(L-1); offsets beyond ±W are zero."""
        w = self.window_size
        pad = max(length - (w + 1), 0)
        start = max((w + 1) - length, 0)
        table = F.pad(table, (0, 0, pad, pad))
        return table[:, start:start + 2 * length - 1]

    @staticmethod
    def _offset_index(length: int, device: torch.device) -> torch.Tensor:
        """(L, L) index of the offset j-i in a (2L-1)-long relative axis."""
        pos = torch.arange(length, device=device)
        return pos[None, :] - pos[:, None] + length - 1

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        B, C, T = x.shape
        H, D = self.n_heads, self.head_dim
        q = self.conv_q(x).view(B, H, D, T).transpose(2, 3)  # (B, H, T, D)
        k = self.conv_k(x).view(B, H, D, T).transpose(2, 3)
        v = self.conv_v(x).view(B, H, D, T).transpose(2, 3)
        q = q / math.sqrt(D)
        offsets = self._offset_index(T, x.device).expand(B, H, T, T)

        scores = q @ k.transpose(-2, -1)  # (B, H, T, T)
        rel_k = self._relative_table(self.emb_rel_k, T)  # (1, 2T-1, D)
        rel_logits = q @ rel_k.unsqueeze(0).transpose(-2, -1)  # (B, H, T, 2T-1)
        scores = scores + torch.gather(rel_logits, -1, offsets)
        scores = scores.masked_fill(attn_mask == 0, -1e4)
        p_attn = F.softmax(scores, dim=-1)

        out = p_attn @ v  # (B, H, T, D)
        rel_weights = torch.zeros(B, H, T, 2 * T - 1, dtype=p_attn.dtype, device=x.device)
        rel_weights.scatter_(-1, offsets, p_attn)  # same weights indexed by offset
        rel_v = self._relative_table(self.emb_rel_v, T)
        out = out + rel_weights @ rel_v.unsqueeze(0)
        out = out.transpose(2, 3).reshape(B, C, T)
        return self.conv_o(out)


class FFN(nn.Module):
    """Two 'same'-padded convolutions with a ReLU between them, masked before each conv."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int):
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x * x_mask, self.pad)))
        x = self.conv_2(F.pad(x * x_mask, self.pad))
        return x * x_mask


class RelativeTransformer(nn.Module):
    """Post-norm transformer stack (VITS ``attentions.Encoder``): n_layers × (attention, FFN)."""

    def __init__(self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 window_size: int = 10):
        super().__init__()
        self.attn_layers = nn.ModuleList(RelativeMultiHeadAttention(channels, n_heads, window_size) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FFN(channels, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # (B, 1, T, T)
        x = x * x_mask
        for attn, norm1, ffn, norm2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = norm1(x + attn(x, attn_mask))
            x = norm2(x + ffn(x, x_mask))
        return x * x_mask


# ----------------------------------------------------------------------------------------------
# WaveNet (flow couplings and posterior encoder)


class WaveNet(nn.Module):
    """Non-causal WaveNet with gated tanh·sigmoid units, speaker-conditioned via one 1x1 conv.

    The last layer's res/skip conv has only ``hidden`` outputs (skip only), the others ``2·hidden``.
    """

    def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int):
        super().__init__()
        self.hidden = hidden
        self.n_layers = n_layers
        self.cond_layer = WNConv1d(gin_channels, 2 * hidden * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(WNConv1d(hidden, 2 * hidden, kernel_size, dilation=dilation,
                                           padding=same_padding(kernel_size, dilation)))
            out = 2 * hidden if i < n_layers - 1 else hidden
            self.res_skip_layers.append(WNConv1d(hidden, out, 1))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        h = self.hidden
        skip = torch.zeros_like(x)
        cond = self.cond_layer(g)  # (B, 2·hidden·n_layers, 1)
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = in_layer(x) + cond[:, 2 * h * i:2 * h * (i + 1)]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            rs = res_skip_layer(acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * x_mask
                skip = skip + rs[:, h:]
            else:
                skip = skip + rs
        return skip * x_mask


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half is shifted by a WaveNet of the first half."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WaveNet(hidden, kernel_size, dilation_rate, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden, self.half, 1)
        # zero-initialised (as RVC) so an untrained coupling is the identity
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        x0, x1 = x[:, :self.half], x[:, self.half:]
        h = self.enc(self.pre(x0) * x_mask, x_mask, g)
        shift = self.post(h) * x_mask
        x1 = (x1 - shift) * x_mask if reverse else shift + x1 * x_mask
        return torch.cat([x0, x1], dim=1)


class ChannelFlip(nn.Module):
    """Reverses the channel order so the next coupling transforms the other half (no parameters)."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return torch.flip(x, [1])


# ----------------------------------------------------------------------------------------------
# HiFi-GAN residual blocks


class ResBlock1(nn.Module):
    """Three (dilated conv, plain conv) pairs, each pair residual ("1" in the config)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(WNConv1d(channels, channels, kernel_size, dilation=d,
                                             padding=same_padding(kernel_size, d)) for d in dilations)
        self.convs2 = nn.ModuleList(WNConv1d(channels, channels, kernel_size, padding=same_padding(kernel_size))
                                    for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Two dilated convs, each residual ("2" in the config; uses the first two dilations)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...] = (1, 3)):
        super().__init__()
        self.convs = nn.ModuleList(WNConv1d(channels, channels, kernel_size, dilation=d,
                                            padding=same_padding(kernel_size, d)) for d in dilations[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x
