"""LLVC generator ``Net`` (Sadov et al., "Low-latency Real-time Voice Conversion on CPU", 2023).

Bottom-up: causal prenet blocks -> dilated causal conv encoder -> chunked transformer decoder ->
mask network -> ``Net``. Module and parameter names match the official checkpoints
(KoeAI/LLVC ``G_*.pth``) so they load unchanged; ``Net(**config["model_params"])`` accepts an
official ``config.json`` verbatim.

Shapes: audio ``(B, 1, T)``; latents channels-first ``(B, C, frames)`` with one frame per ``L``
samples. ``forward`` is the plain differentiable path used for training and offline inference;
the low-overhead streaming kernel lives in :mod:`vxlib.llvc.streaming` and reads these weights.

Streaming state (the reference's buffers, zeros at the start):
- ``convnet_pre_ctx`` ``(B, max(prenet channels), sum((k-1)*d))``: last inputs of each prenet layer;
- ``enc_buf`` ``(B, enc_dim, 2*(2**num_enc_layers - 1))``: last inputs of each encoder layer;
- ``dec_buf`` ``(B, num_dec_layers + 1, dec_buf_len, dec_dim)``: previous decoder block's memory
  and per-layer inputs;
- ``out_buf`` ``(B, enc_dim, out_buf_len)``: last masked frames for the transposed output conv.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Net", "DecoderBlockLayout", "count_parameters"]


# ----------------------------------------------------------------------------------------------
# Prenet: a stack of causal gated residual blocks on the raw waveform, with a context cache.


class GatedResidualBlock(nn.Module):
    """``tanh(filter(x)) * sigmoid(gate(x)) + x`` on a causal window, then channel dropout.

    Input ``(B, C_in, T + (k-1)*d)`` (context already prepended) -> output ``(B, C_out, T)``.
    The residual is the input cropped by the receptive field and zero-padded to ``C_out`` channels.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.filter = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.gate = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        # Dropout1d drops whole channels; on the 1-channel prenet it silences the whole signal of a
        # batch item (p=0.5 in the official config). Kept for training fidelity; off in eval().
        self.dropout = nn.Dropout1d(dropout)
        self.receptive = dilation * (kernel_size - 1)
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(self.filter(x)) * torch.sigmoid(self.gate(x))
        residual = F.pad(x[..., self.receptive:], (0, 0, 0, self.extra_channels))
        return self.dropout(residual + y)


class CausalConvBlock(nn.Module):
    """Conv -> BatchNorm -> channel dropout -> LeakyReLU (the official non-residual prenet block)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation),
            nn.BatchNorm1d(out_channels),
            nn.Dropout1d(dropout),
            nn.LeakyReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CachedConvNet(nn.Module):
    """Causal 1-D conv stack with a context cache, so that chunked calls equal one long call.

    ``combine_residuals`` (None | "add" | "multiply") says how each block's output combines with
    its input; None replaces it (the official config).
    """

    def __init__(self, in_channels: int, kernel_sizes: list[int], dilations: list[int], out_channels: list[int],
                 dropout: float, combine_residuals: str | None, use_residual_blocks: bool):
        super().__init__()
        if not (len(kernel_sizes) == len(dilations) == len(out_channels)):
            raise ValueError(
                f"convnet_config: kernel_sizes ({len(kernel_sizes)}), dilations ({len(dilations)}) and "
                f"out_channels ({len(out_channels)}) must have the same length")
        if combine_residuals not in (None, "add", "multiply"):
            raise ValueError(f"convnet_config.combine_residuals must be null, 'add' or 'multiply', got {combine_residuals!r}")
        block = GatedResidualBlock if use_residual_blocks else CausalConvBlock
        channels_in = [in_channels] + list(out_channels[:-1])
        self.down_convs = nn.ModuleList(
            block(ci, co, k, d, dropout) for ci, co, k, d in zip(channels_in, out_channels, kernel_sizes, dilations))
        self.channels_in = channels_in
        self.buf_lengths = [(k - 1) * d for k, d in zip(kernel_sizes, dilations)]
        self.buf_starts = [sum(self.buf_lengths[:i]) for i in range(len(self.buf_lengths))]
        self.ctx_channels = max(out_channels)
        self.combine_residuals = combine_residuals

    def init_ctx_buf(self, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch_size, self.ctx_channels, sum(self.buf_lengths), device=device)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(B, C, T)``, ctx ``(B, ctx_channels, sum(buf))`` -> (y ``(B, C_out, T)``, updated ctx).

        ctx is updated in place (as the reference does) and also returned.
        """
        for block, c_in, start, n in zip(self.down_convs, self.channels_in, self.buf_starts, self.buf_lengths):
            window = torch.cat((ctx[:, :c_in, start:start + n], x), dim=-1)  # (B, C, n + T)
            ctx[:, :c_in, start:start + n] = window[..., window.shape[-1] - n:]
            y = block(window)
            if self.combine_residuals == "add":
                x = x + y
            elif self.combine_residuals == "multiply":
                x = x * y
            else:
                x = y
        return x, ctx


# ----------------------------------------------------------------------------------------------
# Encoder: dilated causal depthwise-separable convolutions with residual connections.


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a ``(B, C, T)`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise conv (k=3, dilation d, no padding) -> LN -> ReLU -> 1x1 conv -> LN -> ReLU."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size, groups=channels, dilation=dilation),
            ChannelLayerNorm(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=1),
            ChannelLayerNorm(channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DilatedCausalConvEncoder(nn.Module):
    """``num_layers`` residual depthwise-separable layers with dilations 1, 2, 4, ... 2**(n-1).

    Receptive field: 1 + (k-1)(2**n - 1) frames = 511 frames (8.2 s) for the official config.
    """

    kernel_size = 3

    def __init__(self, channels: int, num_layers: int):
        super().__init__()
        self.channels = channels
        self.dilations = [2 ** i for i in range(num_layers)]
        self.buf_lengths = [(self.kernel_size - 1) * d for d in self.dilations]
        self.buf_starts = [sum(self.buf_lengths[:i]) for i in range(num_layers)]
        self.dcc_layers = nn.Sequential()
        for i, d in enumerate(self.dilations):
            self.dcc_layers.add_module(f"dcc_{i}", DepthwiseSeparableConv(channels, self.kernel_size, d))

    def init_ctx_buf(self, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch_size, self.channels, sum(self.buf_lengths), device=device)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(B, C, T)``, ctx ``(B, C, sum(buf))`` -> (encoded ``(B, C, T)``, ctx updated in place)."""
        for layer, start, n in zip(self.dcc_layers, self.buf_starts, self.buf_lengths):
            window = torch.cat((ctx[..., start:start + n], x), dim=-1)  # (B, C, n + T)
            ctx[..., start:start + n] = window[..., window.shape[-1] - n:]
            x = x + layer(window)
        return x, ctx


# ----------------------------------------------------------------------------------------------
# Decoder: transformer over blocks of `chunk` frames, each block seeing the previous `ctx` frames.


def sinusoidal_positions(max_len: int, dim: int) -> torch.Tensor:
    """``(1, max_len, dim)`` table: sin on even, cos on odd channels (Vaswani et al. 2017)."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(max_len, dim)
    pe[:, 0::2] = torch.sin(position * inv_freq)
    pe[:, 1::2] = torch.cos(position * inv_freq)
    return pe.unsqueeze(0)


class PositionalEncoding(nn.Module):
    """Holds the persistent ``pe`` table (it is part of the official state dict)."""

    def __init__(self, dim: int, max_len: int = 200):
        super().__init__()
        self.register_buffer("pe", sinusoidal_positions(max_len, dim))

    def forward(self, length: int) -> torch.Tensor:
        return self.pe[:, :length]  # (1, length, dim)


class BlockDecoderLayer(nn.Module):
    """Post-norm transformer decoder layer where only the last ``chunk`` tokens of each window
    are queries; they attend (unmasked) to the whole window, and across to the memory window.

    Parameter names follow ``torch.nn.TransformerDecoderLayer`` (ReLU FFN, dropout everywhere).
    """

    def __init__(self, dim: int, nhead: int, ff_dim: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, nhead, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(dim, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ff_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, chunk: int) -> torch.Tensor:
        """tgt, memory ``(N, ctx + chunk, D)`` -> ``(N, chunk, D)``."""
        x = tgt[:, -chunk:]
        x = self.norm1(x + self.dropout1(self.self_attn(x, tgt, tgt, need_weights=False)[0]))
        x = self.norm2(x + self.dropout2(self.multihead_attn(x, memory, memory, need_weights=False)[0]))
        x = self.norm3(x + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(x))))))
        return x


class DecoderBlockLayout:
    """How a frame sequence is cut into decoder blocks: every ``chunk`` consecutive frames (from
    the first frame of the stream) form one block that also sees the ``ctx`` frames before it.
    Sequences are zero-padded at the end to whole blocks (the padded latents are exact zeros)."""

    def __init__(self, ctx: int, chunk: int):
        self.ctx, self.chunk = ctx, chunk

    def windows(self, x: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """x ``(B, T, D)`` (T a multiple of chunk), history ``(B, ctx, D)`` -> ``(B*T/chunk, ctx+chunk, D)``."""
        B, T, D = x.shape
        seq = torch.cat((history, x), dim=1)  # (B, ctx + T, D)
        w = seq.unfold(1, self.ctx + self.chunk, self.chunk)  # (B, T/chunk, D, ctx + chunk)
        return w.permute(0, 1, 3, 2).reshape(-1, self.ctx + self.chunk, D)


class ChunkedTransformerDecoder(nn.Module):
    """Decodes ``tgt`` (queries) against ``mem`` block by block; see :class:`DecoderBlockLayout`.

    Positional encodings (window positions 0..ctx+chunk-1) are added to the memory windows and to
    the first layer's target windows only.
    """

    def __init__(self, model_dim: int, ctx_len: int, chunk_size: int, num_layers: int, nhead: int,
                 use_pos_enc: bool, ff_dim: int, dropout: float):
        super().__init__()
        self.model_dim, self.ctx_len, self.chunk_size, self.num_layers = model_dim, ctx_len, chunk_size, num_layers
        self.nhead = nhead
        self.use_pos_enc = use_pos_enc
        self.layout = DecoderBlockLayout(ctx_len, chunk_size)
        self.pos_enc = PositionalEncoding(model_dim, max_len=200)
        self.tf_dec_layers = nn.ModuleList(
            BlockDecoderLayer(model_dim, nhead, ff_dim, dropout) for _ in range(num_layers))

    def init_ctx_buf(self, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch_size, self.num_layers + 1, self.ctx_len, self.model_dim, device=device)

    def forward(self, tgt: torch.Tensor, mem: torch.Tensor, ctx_buf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tgt, mem ``(B, D, T)`` -> (decoded ``(B, D, T)``, ctx_buf updated in place)."""
        T = tgt.shape[-1]
        pad = (-T) % self.chunk_size
        tgt = F.pad(tgt, (0, pad)).transpose(1, 2)  # (B, T', D)
        mem = F.pad(mem, (0, pad)).transpose(1, 2)
        B, Tp, D = tgt.shape
        window = self.ctx_len + self.chunk_size
        pos = self.pos_enc(window) if self.use_pos_enc else None

        mem_windows = self.layout.windows(mem, ctx_buf[:, 0])  # (B*nb, window, D)
        ctx_buf[:, 0] = torch.cat((ctx_buf[:, 0], mem), 1)[:, -self.ctx_len:]
        if pos is not None:
            mem_windows = mem_windows + pos
        for i, layer in enumerate(self.tf_dec_layers):
            tgt_windows = self.layout.windows(tgt, ctx_buf[:, i + 1])
            ctx_buf[:, i + 1] = torch.cat((ctx_buf[:, i + 1], tgt), 1)[:, -self.ctx_len:]
            if pos is not None and i == 0:
                tgt_windows = tgt_windows + pos
            tgt = layer(tgt_windows, mem_windows, self.chunk_size).reshape(B, Tp, D)
        return tgt.transpose(1, 2)[..., :T], ctx_buf


# ----------------------------------------------------------------------------------------------
# Mask network and the full generator.


def grouped_projection(in_dim: int, out_dim: int, groups: int) -> nn.Sequential:
    """Grouped 1x1 conv + ReLU (the official ``proj_*`` layers: 2 channels per group)."""
    return nn.Sequential(nn.Conv1d(in_dim, out_dim, kernel_size=1, groups=groups), nn.ReLU())


class MaskNet(nn.Module):
    """Encoder -> label integration -> (projected) chunked decoder -> mask over encoder channels."""

    def __init__(self, enc_dim: int, num_enc_layers: int, dec_dim: int, dec_buf_len: int, dec_chunk_size: int,
                 num_dec_layers: int, use_pos_enc: bool, skip_connection: bool, proj: bool, decoder_dropout: float):
        super().__init__()
        self.skip_connection, self.proj = skip_connection, proj
        self.encoder = DilatedCausalConvEncoder(enc_dim, num_enc_layers)
        if proj:
            self.proj_e2d_e = grouped_projection(enc_dim, dec_dim, dec_dim)
            self.proj_e2d_l = grouped_projection(enc_dim, dec_dim, dec_dim)
            self.proj_d2e = grouped_projection(dec_dim, enc_dim, dec_dim)
        decoder_dim = dec_dim if proj else enc_dim
        self.decoder = ChunkedTransformerDecoder(
            model_dim=decoder_dim, ctx_len=dec_buf_len, chunk_size=dec_chunk_size, num_layers=num_dec_layers,
            nhead=8, use_pos_enc=use_pos_enc, ff_dim=2 * decoder_dim, dropout=decoder_dropout)

    def forward(self, x: torch.Tensor, label: torch.Tensor, enc_buf: torch.Tensor, dec_buf: torch.Tensor):
        """x ``(B, enc_dim, T)``, label embedding ``(B, enc_dim)`` -> (mask ``(B, enc_dim, T)``, enc_buf, dec_buf)."""
        e, enc_buf = self.encoder(x, enc_buf)
        l = label.unsqueeze(2) * e  # (B, enc_dim, T)
        if self.proj:
            m, dec_buf = self.decoder(self.proj_e2d_l(l), self.proj_e2d_e(e), dec_buf)
            m = self.proj_d2e(m)
        else:
            m, dec_buf = self.decoder(l, e, dec_buf)
        if self.skip_connection:
            m = l + m
        return m, enc_buf, dec_buf


class Net(nn.Module):
    """The LLVC generator. Keyword arguments and defaults are the official ones, so
    ``Net(**config["model_params"])`` builds the model of an official ``config.json``.

    ``label_len`` is accepted and ignored, as in the reference: the label is a constant zero
    vector of length 1 (one target speaker), so its embedding is a learned constant.
    """

    def __init__(self, label_len: int = 1, L: int = 8, enc_dim: int = 512, num_enc_layers: int = 10,
                 dec_dim: int = 256, dec_buf_len: int = 100, num_dec_layers: int = 2, dec_chunk_size: int = 72,
                 out_buf_len: int = 2, use_pos_enc: bool = True, skip_connection: bool = True, proj: bool = True,
                 lookahead: bool = True, decoder_dropout: float = 0.0,
                 convnet_config: Mapping[str, Any] | None = None):
        super().__init__()
        self.L, self.enc_dim, self.out_buf_len = L, enc_dim, out_buf_len
        self.dec_chunk_size, self.dec_buf_len = dec_chunk_size, dec_buf_len
        self.lookahead = lookahead
        self.convnet_config = dict(convnet_config) if convnet_config else {"convnet_prenet": False}
        cc = self.convnet_config
        if cc.get("convnet_prenet"):
            self.convnet_pre = CachedConvNet(
                1, list(cc["kernel_sizes"]), list(cc["dilations"]), list(cc["out_channels"]), cc["dropout"],
                cc.get("combine_residuals"), cc.get("use_residual_blocks", True))
        # Lookahead: each frame sees L samples before and L after its own L samples.
        self.in_conv = nn.Sequential(
            nn.Conv1d(1, enc_dim, kernel_size=3 * L if lookahead else L, stride=L, bias=False), nn.ReLU())
        self.label_embedding = nn.Sequential(
            nn.Linear(1, 512), nn.LayerNorm(512), nn.ReLU(), nn.Linear(512, enc_dim), nn.LayerNorm(enc_dim), nn.ReLU())
        self.mask_gen = MaskNet(enc_dim, num_enc_layers, dec_dim, dec_buf_len, dec_chunk_size, num_dec_layers,
                                use_pos_enc, skip_connection, proj, decoder_dropout)
        # Transposed conv: each frame writes (out_buf_len + 1) * L samples; the padding trims the
        # out_buf_len * L samples before frame 0, so output sample s depends on frames <= s // L.
        self.out_conv = nn.Sequential(
            nn.ConvTranspose1d(enc_dim, 1, kernel_size=(out_buf_len + 1) * L, stride=L,
                               padding=out_buf_len * L, bias=False),
            nn.Tanh())

    @property
    def has_prenet(self) -> bool:
        return hasattr(self, "convnet_pre")

    @property
    def chunk_samples(self) -> int:
        """Samples per decoder block: the smallest streaming step (208 = 13 ms for ``llvc``)."""
        return self.dec_chunk_size * self.L

    def label_vector(self) -> torch.Tensor:
        """The constant label embedding ``(1, enc_dim)`` (input is a zero label)."""
        p = next(self.parameters())
        return self.label_embedding(torch.zeros(1, 1, device=p.device, dtype=p.dtype))

    def init_buffers(self, batch_size: int, device: torch.device | str = "cpu"):
        """Zero ``(enc_buf, dec_buf, out_buf)`` for streaming calls with ``pad=False``."""
        return (self.mask_gen.encoder.init_ctx_buf(batch_size, device),
                self.mask_gen.decoder.init_ctx_buf(batch_size, device),
                torch.zeros(batch_size, self.enc_dim, self.out_buf_len, device=device))

    def init_prenet_ctx(self, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor | None:
        return self.convnet_pre.init_ctx_buf(batch_size, device) if self.has_prenet else None

    def apply_prenet(self, x: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prenet with its skip connection: x ``(B, 1, T)`` -> (x', ctx). Identity without a prenet."""
        if not self.has_prenet:
            return x, ctx
        y, ctx = self.convnet_pre(x, ctx)
        skip = self.convnet_config.get("skip_connection")
        if skip == "add":
            return x + y, ctx
        if skip == "multiply":
            return x * y, ctx
        return y, ctx

    def forward(self, x: torch.Tensor, init_enc_buf: torch.Tensor | None = None,
                init_dec_buf: torch.Tensor | None = None, init_out_buf: torch.Tensor | None = None,
                convnet_pre_ctx: torch.Tensor | None = None, pad: bool = True):
        """x ``(B, 1, T)``.

        ``pad=True`` (training / offline): right-pad to a multiple of L, add L zeros at each end
        (lookahead) and return ``(B, 1, T)``. With buffers (streaming, ``pad=False``): the input
        must hold 2L samples of context before the new samples; returns
        ``(out, enc_buf, dec_buf, out_buf, convnet_pre_ctx)``.
        """
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"Net expects audio of shape (B, 1, T), got {tuple(x.shape)}")
        mod = 0
        if pad:
            mod = (-x.shape[-1]) % self.L
            x = F.pad(x, (0, mod))
            if self.lookahead:
                x = F.pad(x, (self.L, self.L))
        if self.has_prenet:
            if convnet_pre_ctx is None:
                convnet_pre_ctx = self.init_prenet_ctx(x.shape[0], x.device)
            x, convnet_pre_ctx = self.apply_prenet(x, convnet_pre_ctx)

        bufs = (init_enc_buf, init_dec_buf, init_out_buf)
        streaming = init_enc_buf is not None
        if any(b is None for b in bufs) != all(b is None for b in bufs):
            raise ValueError("give all of init_enc_buf, init_dec_buf, init_out_buf, or none")
        enc_buf, dec_buf, out_buf = bufs if streaming else self.init_buffers(x.shape[0], x.device)

        a = self.in_conv(x)  # (B, enc_dim, frames)
        label = self.label_embedding(torch.zeros(x.shape[0], 1, device=x.device, dtype=x.dtype))  # (B, enc_dim)
        mask, enc_buf, dec_buf = self.mask_gen(a, label, enc_buf, dec_buf)
        masked = torch.cat((out_buf, a * mask), dim=-1)  # (B, enc_dim, out_buf_len + frames)
        out_buf = masked[..., masked.shape[-1] - self.out_buf_len:]
        y = self.out_conv(masked)  # (B, 1, L * frames)
        if mod:
            y = y[..., :-mod]
        if streaming:
            return y, enc_buf, dec_buf, out_buf, convnet_pre_ctx
        return y


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
