"""Streaming LLVC conversion: blocks of any size in, converted samples out, exactly aligned.

Two modes of :class:`StreamingConverter`:

``"exact"`` (default) - the concatenated output equals offline :func:`~vxlib.llvc.inference.convert`
    on the whole signal (to float rounding), for every chunk factor and block size, tail included.
    Every stage of ``Net`` is causal given its caches except the decoder, which works on blocks of
    ``dec_chunk_size`` frames counted from the first frame, and the input conv, which looks ``L``
    samples ahead. So chunk k (``chunk_factor`` decoder blocks) is computed as soon as the input
    reaches ``L`` samples past its end, on the *same* padded signal the offline call sees: ``L`` leading
    zeros, the audio, zeros up to a multiple of ``L`` plus ``L`` trailing zeros, all through the
    causal prenet exactly once. (The reference ``infer_stream`` instead feeds each chunk's 2L-sample
    overlap through the prenet a second time while the prenet cache already holds it, so its output
    drifts from the offline one by up to 0.11.) The last, partial decoder block is zero-padded in
    latent space, as the offline decoder does.

``"reference"`` - reproduces the reference ``infer_stream`` (KoeAI/LLVC infer.py) sample for sample,
    defects included, for the paper's numbers: audio shifted left by ``L``, chunks of
    ``208 * chunk_factor`` samples each prefixed by the previous chunk's last ``2L`` samples, the plain
    ``Net.forward(pad=False)`` with carried buffers, end zero-padded to a whole chunk.

The exact mode runs a low-overhead kernel (:class:`ChunkKernel`) on weights rearranged once from
the ``Net``: the constant label embedding is precomputed, every stage works on ``(frames, channels)``
rows kept in preallocated :class:`~vxlib.stream.SlidingBuffer` windows (no ``torch.cat``),
convolutions over frames become single matmuls on strided views, and the decoder caches the
key/value projections of its context frames and uses fused scaled-dot-product attention on
pre-split weights. It is plain PyTorch (no compilation step), batch 1, CPU float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vxlib.llvc import fastops
from vxlib.llvc.model import GatedResidualBlock, Net
from vxlib.stream import ChunkFramer, Clock, MonotonicClock, SlidingBuffer, TimingLog

__all__ = ["StreamingConverter", "ChunkKernel", "FusedPrenet"]


@dataclass
class _EncoderLayer:
    dilation: int
    taps: torch.Tensor          # (3, C): weights on x[t-2d], x[t-d], x[t]
    bias: torch.Tensor          # (C,)
    norm1: tuple[torch.Tensor, torch.Tensor]
    pointwise_t: torch.Tensor   # (C, C) transposed 1x1 conv weight
    pointwise_b: torch.Tensor
    norm2: tuple[torch.Tensor, torch.Tensor]
    eps: float


@dataclass
class _Attention:
    q_t: torch.Tensor           # (D, D)
    q_bias: torch.Tensor        # (chunk, D): bias + projected positions of the query rows
    kv_t: torch.Tensor          # (D, 2D)
    kv_bias: torch.Tensor       # (ctx + chunk, 2D): bias + projected positions of the window rows
    out_t: torch.Tensor         # (D, D)
    out_b: torch.Tensor


@dataclass
class _DecoderLayer:
    self_attn: _Attention
    cross_attn: _Attention
    norms: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    ff1_t: torch.Tensor
    ff1_b: torch.Tensor
    ff2_t: torch.Tensor
    ff2_b: torch.Tensor
    eps: float
    query_pos: torch.Tensor | None  # positions of the query rows: part of the first residual


def _split_attention(mha: torch.nn.MultiheadAttention, query_pos: torch.Tensor, window_pos: torch.Tensor) -> _Attention:
    """Pre-split an ``nn.MultiheadAttention``'s packed projections. Positional encodings enter the
    projections linearly, ``W(x + p) + b = Wx + (Wp + b)``, so they are folded into per-row biases;
    the ``1/sqrt(head_dim)`` score scale is folded into the query projection."""
    D = mha.embed_dim
    scale = (D // mha.num_heads) ** -0.5
    w, b = mha.in_proj_weight, mha.in_proj_bias
    wq, wkv = w[:D], w[D:]
    return _Attention(
        q_t=(wq.t() * scale).contiguous(), q_bias=((query_pos @ wq.t() + b[:D]) * scale).contiguous(),
        kv_t=wkv.t().contiguous(), kv_bias=(window_pos @ wkv.t() + b[D:]).contiguous(),
        out_t=mha.out_proj.weight.t().contiguous(), out_b=mha.out_proj.bias.clone())


class FusedPrenet:
    """The official prenet (1-channel gated residual blocks, outputs replacing inputs) with its
    skip connection, at a fraction of the per-call overhead: one compiled loop over all blocks
    (``fast=True``, numba) or one 2-output conv per block (plain PyTorch), each block's causal
    context kept as state. Exactly the reference ``CachedConvNet`` maths; other prenet layouts use
    the module itself (see :meth:`supports`)."""

    def __init__(self, net: Net, max_samples: int, fast: bool):
        pre = net.convnet_pre
        self.skip = net.convnet_config.get("skip_connection")
        self.fast = fast and fastops.AVAILABLE
        blocks = list(pre.down_convs)
        with torch.no_grad():
            w = [torch.cat((b.filter.weight, b.gate.weight)).float().contiguous() for b in blocks]  # (2, 1, k)
            bias = [torch.cat((b.filter.bias, b.gate.bias)).float().contiguous() for b in blocks]
        self.dilations = [b.filter.dilation[0] for b in blocks]
        self.hist = list(pre.buf_lengths)
        if self.fast:
            self.filt_w = np.stack([x[0, 0].numpy() for x in w])
            self.gate_w = np.stack([x[1, 0].numpy() for x in w])
            self.filt_b = np.array([x[0].item() for x in bias], np.float32)
            self.gate_b = np.array([x[1].item() for x in bias], np.float32)
            self.dil = np.array(self.dilations, np.int64)
            self.skip_code = {"add": 1, "multiply": 2}.get(self.skip, 0)
            self.state = np.zeros((len(blocks), max(self.hist)), np.float32)
            self.scratch = np.zeros((2, max_samples), np.float32)
        else:
            self.layers = [(wi, bi, d, n, SlidingBuffer(n, max_samples))
                           for wi, bi, d, n in zip(w, bias, self.dilations, self.hist)]

    @staticmethod
    def supports(net: Net) -> bool:
        pre = getattr(net, "convnet_pre", None)
        return (pre is not None and pre.combine_residuals is None and pre.ctx_channels == 1
                and all(isinstance(b, GatedResidualBlock) for b in pre.down_convs)
                and len({b.filter.kernel_size[0] for b in pre.down_convs}) == 1)

    def reset(self) -> None:
        if self.fast:
            self.state.fill(0.0)
        else:
            for *_, ring in self.layers:
                ring.reset()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (T,) -> prenet output with the skip connection applied, (T,)."""
        if self.fast:
            out = torch.empty_like(x)
            fastops.gated_prenet(x.numpy(), self.state, self.filt_w, self.filt_b, self.gate_w, self.gate_b,
                                 self.dil, self.skip_code, self.scratch, out.numpy())
            return out
        y, T = x, x.shape[0]
        for w, b, dilation, n, ring in self.layers:
            ring.push(y)
            window = ring.last(n + T)
            h = F.conv1d(window.view(1, 1, -1), w, b, dilation=dilation)[0]  # (2, T)
            y = torch.tanh(h[0]).mul_(torch.sigmoid(h[1])).add_(window[n:])
        if self.skip == "add":
            return y.add_(x)
        if self.skip == "multiply":
            return y.mul_(x)
        return y


class ChunkKernel:
    """One streaming step of ``Net`` on ``n`` new frames (batch 1, eval, CPU float32).

    ``step(samples)`` takes the post-prenet signal window ``(n*L + K - L,)`` (K = input conv
    kernel: the window overlaps the previous step by ``K - L`` samples) and returns the ``n*L``
    output samples of those frames. ``n`` is a whole number of decoder blocks except for the last
    step of a stream, whose partial block is zero-padded in latent space like the offline decoder.
    Caches: per encoder layer its last ``2*dilation`` inputs, per decoder attention the projected
    keys/values of the last ``dec_buf_len`` rows, and the last ``out_buf_len`` masked frames.
    """

    def __init__(self, net: Net, max_frames: int, fast: bool = True):
        if net.training:
            raise ValueError("ChunkKernel needs a model in eval mode (dropout off): call model.eval()")
        self.L, self.max_frames = net.L, max_frames
        dec = net.mask_gen.decoder
        self.ctx, self.chunk = dec.ctx_len, dec.chunk_size
        if max_frames % self.chunk:
            raise ValueError(f"max_frames {max_frames} must be a multiple of dec_chunk_size {self.chunk}")
        self.skip_connection, self.proj = net.mask_gen.skip_connection, net.mask_gen.proj
        self.nhead = dec.nhead
        self.fast = fast and fastops.AVAILABLE
        with torch.no_grad():
            self._prepare(net)
        self.reset()

    def _prepare(self, net: Net) -> None:
        cpu = lambda t: t.detach().to("cpu", torch.float32).contiguous()  # noqa: E731
        E, L = net.enc_dim, net.L
        w_in = cpu(net.in_conv[0].weight)  # (E, 1, K)
        self.K = w_in.shape[-1]
        self.in_t = w_in[:, 0, :].t().contiguous()  # (K, E)
        self.label = cpu(net.label_vector()[0])  # (E,): the constant label embedding
        enc = net.mask_gen.encoder
        self.encoder = []
        for layer, d in zip(enc.dcc_layers, enc.dilations):
            dw, ln1, _, pw, ln2, _ = layer.layers
            self.encoder.append(_EncoderLayer(
                d, cpu(dw.weight[:, 0, :].t()), cpu(dw.bias), (cpu(ln1.weight), cpu(ln1.bias)),
                cpu(pw.weight[:, :, 0].t()), cpu(pw.bias), (cpu(ln2.weight), cpu(ln2.bias)), ln1.eps))
        mg = net.mask_gen
        if self.proj:
            D = mg.proj_e2d_e[0].out_channels
            # Grouped 1x1 convs with 2 input channels per group; the label scale folds into proj_e2d_l.
            w_mem = cpu(mg.proj_e2d_e[0].weight[:, :, 0])  # (D, 2)
            w_tgt = cpu(mg.proj_e2d_l[0].weight[:, :, 0]) * self.label.view(D, 2)
            self.e2d_w = torch.stack((w_mem, w_tgt))  # (2, D, 2)
            self.e2d_b = torch.stack((cpu(mg.proj_e2d_e[0].bias), cpu(mg.proj_e2d_l[0].bias)))  # (2, D)
            self.d2e_w = cpu(mg.proj_d2e[0].weight[:, 0, 0]).view(D, 2)
            self.d2e_b = cpu(mg.proj_d2e[0].bias).view(D, 2)
        else:
            D = E
        self.D = D
        dec = mg.decoder
        window = self.ctx + self.chunk
        pe = cpu(dec.pos_enc.pe[0, :window]) if dec.use_pos_enc else torch.zeros(window, D)
        zeros = torch.zeros(window, D)
        self.decoder = []
        for i, layer in enumerate(dec.tf_dec_layers):
            tgt_pe = pe if i == 0 else zeros
            self.decoder.append(_DecoderLayer(
                self_attn=_split_attention(layer.self_attn, tgt_pe[self.ctx:], tgt_pe),
                cross_attn=_split_attention(layer.multihead_attn, zeros[self.ctx:], pe),
                norms=tuple((cpu(n.weight), cpu(n.bias)) for n in (layer.norm1, layer.norm2, layer.norm3)),
                ff1_t=cpu(layer.linear1.weight.t()), ff1_b=cpu(layer.linear1.bias),
                ff2_t=cpu(layer.linear2.weight.t()), ff2_b=cpu(layer.linear2.bias), eps=layer.norm1.eps,
                query_pos=tgt_pe[self.ctx:].contiguous() if i == 0 and dec.use_pos_enc else None))
        w_out = cpu(net.out_conv[0].weight)[:, 0, :]  # (E, (ob+1)*L)
        ob = net.out_buf_len
        self.out_buf_len = ob
        # Row i of a (ob+1)-frame window is frame q-ob+i, which writes output taps (ob-i)*L .. +L.
        self.out_w = torch.cat([w_out[:, (ob - i) * L:(ob - i + 1) * L] for i in range(ob + 1)], 0).contiguous()
        self.E = E

        n = self.max_frames
        self.enc_rings = [SlidingBuffer(2 * layer.dilation, n, (E,)) for layer in self.encoder]
        self.encoded = torch.zeros(n, E)
        self.hidden = torch.zeros(n, E)
        self.hidden2 = torch.zeros(n, E)
        if self.fast:  # numpy views of the encoder weights for the compiled loops
            self.encoder_np = [(l.taps.numpy(), l.bias.numpy(), l.norm1[0].numpy(), l.norm1[1].numpy(),
                                l.norm2[0].numpy(), l.norm2[1].numpy()) for l in self.encoder]
        self.latents = torch.zeros(n, 2, D)  # (mem, tgt) rows, zero-padded to whole decoder blocks
        self.decoded = torch.zeros(n, D)
        self.mask = torch.zeros(n, E)
        self.self_kv = [SlidingBuffer(self.ctx, self.chunk, (2 * D,)) for _ in self.decoder]
        self.cross_kv = [SlidingBuffer(self.ctx, self.chunk, (2 * D,)) for _ in self.decoder]
        self.masked = SlidingBuffer(ob, n, (E,))

    def reset(self) -> None:
        for ring in (*self.enc_rings, *self.self_kv, *self.cross_kv, self.masked):
            ring.reset()

    def _attend(self, att: _Attention, query: torch.Tensor, kv_ring: SlidingBuffer, kv_input: torch.Tensor) -> torch.Tensor:
        """Attention of ``query`` rows (chunk, D) over the window ending with ``kv_input`` rows.
        Written out (bmm, softmax, bmm): at 13 x 26 per head this is about twice as fast on CPU
        as ``F.scaled_dot_product_attention``, whose per-call setup dominates at this size."""
        D, H = self.D, self.nhead
        hd = D // H
        torch.mm(kv_input, att.kv_t, out=kv_ring.reserve(self.chunk))
        kv = kv_ring.last(self.ctx + self.chunk) + att.kv_bias  # (window, 2D)
        q = torch.addmm(att.q_bias, query, att.q_t).view(-1, H, hd).transpose(0, 1)  # (H, chunk, hd), pre-scaled
        k = kv[:, :D].view(-1, H, hd).permute(1, 2, 0)  # (H, hd, window)
        v = kv[:, D:].view(-1, H, hd).transpose(0, 1)  # (H, window, hd)
        o = torch.bmm(torch.softmax(torch.bmm(q, k), dim=-1), v)  # (H, chunk, hd)
        return torch.addmm(att.out_b, o.transpose(0, 1).reshape(-1, D), att.out_t)

    def _decode_block(self, tgt: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """One decoder block: tgt, mem (chunk, D) -> (chunk, D)."""
        x = tgt
        for layer, s_kv, c_kv in zip(self.decoder, self.self_kv, self.cross_kv):
            (g1, b1), (g2, b2), (g3, b3) = layer.norms
            D = self.D
            res = x if layer.query_pos is None else x + layer.query_pos
            x = F.layer_norm(res + self._attend(layer.self_attn, x, s_kv, x), (D,), g1, b1, layer.eps)
            x = F.layer_norm(x + self._attend(layer.cross_attn, x, c_kv, mem), (D,), g2, b2, layer.eps)
            h = torch.addmm(layer.ff1_b, x, layer.ff1_t).relu_()
            x = F.layer_norm(torch.addmm(x, h, layer.ff2_t).add_(layer.ff2_b), (D,), g3, b3, layer.eps)
        return x

    def step(self, samples: torch.Tensor) -> torch.Tensor:
        L, E = self.L, self.E
        n = (samples.shape[0] - (self.K - L)) // L
        if n <= 0 or n > self.max_frames or samples.shape[0] != n * L + self.K - L:
            raise ValueError(f"step needs n*{L} + {self.K - L} samples with 0 < n <= {self.max_frames}, got {samples.shape[0]}")
        frames = samples.as_strided((n, self.K), (L, 1))  # (n, K) overlapping frame windows
        a = self.enc_rings[0].reserve(n)
        torch.mm(frames, self.in_t, out=a).relu_()  # (n, E) input conv
        # Encoder: each layer writes its residual output straight into the next layer's window.
        for i, layer in enumerate(self.encoder):
            d = layer.dilation
            win = self.enc_rings[i].last(2 * d + n)
            nxt = self.enc_rings[i + 1].reserve(n) if i + 1 < len(self.encoder) else self.encoded[:n]
            if self.fast:
                taps, bias, g1, b1, g2, b2 = self.encoder_np[i]
                h = self.hidden[:n]
                fastops.depthwise_ln_relu(win.numpy(), d, taps, bias, g1, b1, layer.eps, h.numpy())
                h2 = torch.addmm(layer.pointwise_b, h, layer.pointwise_t, out=self.hidden2[:n])
                fastops.ln_relu_residual(h2.numpy(), g2, b2, layer.eps, win[2 * d:].numpy(), nxt.numpy())
                continue
            h = torch.addcmul(layer.bias, win[:n], layer.taps[0])
            h.addcmul_(win[d:d + n], layer.taps[1]).addcmul_(win[2 * d:], layer.taps[2])
            h = F.layer_norm(h, (E,), *layer.norm1, layer.eps).relu_()
            h = F.layer_norm(torch.addmm(layer.pointwise_b, h, layer.pointwise_t), (E,), *layer.norm2, layer.eps).relu_()
            torch.add(win[2 * d:], h, out=nxt)
        e = self.encoded[:n]
        # Decoder inputs, zero-padded (in latent space) to whole blocks.
        blocks = -(-n // self.chunk)
        lat = self.latents[:blocks * self.chunk]
        if n % self.chunk:
            lat[n:].zero_()
        if self.proj:
            torch.sum(e.view(n, 1, self.D, 2) * self.e2d_w, dim=-1, out=lat[:n])
            lat[:n].add_(self.e2d_b).relu_()
        else:
            lat[:n, 0] = e
            torch.mul(e, self.label, out=lat[:n, 1])
        decoded = self.decoded[:blocks * self.chunk]
        for k in range(0, blocks * self.chunk, self.chunk):
            decoded[k:k + self.chunk] = self._decode_block(lat[k:k + self.chunk, 1], lat[k:k + self.chunk, 0])
        m = decoded[:n]
        mask = self.mask[:n]
        if self.proj:
            torch.addcmul(self.d2e_b, m.unsqueeze(-1), self.d2e_w, out=mask.view(n, self.D, 2)).relu_()
        else:
            mask.copy_(m)
        if self.skip_connection:
            mask.addcmul_(e, self.label)
        torch.mul(a, mask, out=self.masked.reserve(n))
        ob = self.out_buf_len
        win = self.masked.last(n + ob).as_strided((n, (ob + 1) * E), (E, 1))
        return torch.mm(win, self.out_w).tanh_().view(-1)  # (n*L,)


class StreamingConverter:
    """Convert a stream block by block. See the module docstring for the two modes.

    ``process(block)`` accepts 1-D audio of any length (numpy or torch, at the model's rate) and
    returns the converted samples that are ready (1-D float32 numpy); ``flush()`` returns the rest
    and resets the converter for a new stream. All returned pieces, concatenated, are exactly as
    long as the input and aligned with it. :attr:`latency_samples` is the algorithmic latency.
    Per-chunk timings of ``process`` calls accumulate in :attr:`timings` (``reset`` keeps them;
    call ``timings.clear()``).
    """

    def __init__(self, model: Net, chunk_factor: int = 1, mode: str = "exact", clock: Clock | None = None,
                 fast: bool = True):
        if mode not in ("exact", "reference"):
            raise ValueError(f"mode must be 'exact' or 'reference', got {mode!r}")
        if int(chunk_factor) != chunk_factor or chunk_factor < 1:
            raise ValueError(f"chunk_factor must be a positive integer, got {chunk_factor!r}")
        if model.training:
            raise ValueError("StreamingConverter needs a model in eval mode (dropout off): call model.eval()")
        self.model, self.mode, self.chunk_factor = model, mode, int(chunk_factor)
        self.L = model.L
        self.frames_per_chunk = model.dec_chunk_size * self.chunk_factor
        self.chunk_samples = self.frames_per_chunk * self.L
        # Input samples beyond a chunk's end that its frames read (in_conv look-ahead).
        self.lookahead = self.L if model.lookahead else 0
        self.clock = clock or MonotonicClock()
        self.timings = TimingLog()
        self._kernel = ChunkKernel(model, self.frames_per_chunk, fast) if mode == "exact" else None
        # Exact mode: the prenet sees each sample once, up to one chunk (+ padding) per call.
        max_prenet = self.chunk_samples + 3 * self.L
        self._fused_prenet = FusedPrenet(model, max_prenet, fast) if mode == "exact" and FusedPrenet.supports(model) else None
        self.reset()

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency: a sample at the start of a chunk is output once the input reaches
        the chunk's end plus the look-ahead (``208*cf + 16`` samples, 14 ms at cf=1 for ``llvc``;
        the reference quotes ``(208*cf + 2L)/sr`` = 15 ms because it counts its 2L re-fed overlap)."""
        return self.chunk_samples + self.lookahead

    def reset(self) -> None:
        self._framer = ChunkFramer(self.chunk_samples, self.lookahead)
        self._prenet_ctx = self.model.init_prenet_ctx(1)
        if self._fused_prenet is not None:
            self._fused_prenet.reset()
        self._samples_in = 0
        self._samples_out = 0
        if self.mode == "exact":
            self._kernel.reset()
            overlap = self._kernel.K - self.L
            self._signal = SlidingBuffer(overlap, self.chunk_samples + overlap)
            if self.lookahead:  # the offline call's L leading zeros, through the prenet like any input
                self._signal.push(self._prenet(torch.zeros(self.lookahead)))
        else:
            self._bufs = self.model.init_buffers(1)
            self._prev_tail = torch.zeros(2 * self.L)

    # -- shared plumbing ---------------------------------------------------------------------

    def _prenet(self, x: torch.Tensor) -> torch.Tensor:
        if not self.model.has_prenet or x.numel() == 0:
            return x
        if self._fused_prenet is not None:
            return self._fused_prenet(x)
        y, self._prenet_ctx = self.model.apply_prenet(x.view(1, 1, -1), self._prenet_ctx)
        return y.view(-1)

    def _as_tensor(self, block) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(block, dtype=np.float32) if not isinstance(block, torch.Tensor) else block)
        if x.dim() != 1:
            raise ValueError(f"process expects a 1-D block of mono samples, got shape {tuple(x.shape)}")
        x = x.detach().to("cpu", torch.float32)
        if not torch.isfinite(x).all():
            raise ValueError(f"block contains NaN/inf samples (first at index {int((~torch.isfinite(x)).nonzero()[0])})")
        return x

    def process(self, block) -> np.ndarray:
        arrival = self.clock.now()
        x = self._as_tensor(block)
        with torch.inference_mode():
            outs = self.timings.run_chunks(self._framer.feed(x), self._run_chunk, self.clock, arrival)
        self._samples_in += x.shape[0]
        return self._emit(outs)

    def flush(self) -> np.ndarray:
        """The remaining output (the tail, completed with the offline padding); then ``reset()``."""
        with torch.inference_mode():
            rest = self._framer.remainder()
            outs = self._flush_exact(rest) if self.mode == "exact" else self._flush_reference(rest)
        y = self._emit(outs, limit=self._samples_in - self._samples_out)
        self.reset()
        return y

    def _emit(self, outs: list[torch.Tensor], limit: int | None = None) -> np.ndarray:
        y = torch.cat(outs) if len(outs) > 1 else (outs[0] if outs else torch.zeros(0))
        if limit is not None:
            y = y[:limit]
        self._samples_out += y.shape[0]
        return y.numpy().copy()

    def _run_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        if self.mode == "exact":
            self._signal.push(self._prenet(chunk))
            return self._kernel.step(self._signal.last(self.chunk_samples + self._kernel.K - self.L))
        first = self._framer.chunks_out == 1
        return self._reference_step(chunk[self.L:] if first else chunk)

    # -- exact mode --------------------------------------------------------------------------

    def _flush_exact(self, rest: torch.Tensor) -> list[torch.Tensor]:
        T, L = self._samples_in, self.L
        if T == 0:
            return []
        padded_len = -(-T // L) * L
        frames_total = padded_len // L
        frames_left = frames_total - self._framer.chunks_out * self.frames_per_chunk
        overlap = self._kernel.K - L
        # Signal already through the prenet but not yet the start of a computed frame: the leading
        # zeros plus consumed input, minus the frames done (L at the start, the overlap later).
        consumed = T - rest.shape[0]
        held = self.lookahead + consumed - self._framer.chunks_out * self.chunk_samples
        # Unconsumed input, then the offline padding: zeros to a multiple of L, then L more.
        tail = torch.cat((rest, torch.zeros(padded_len - T + self.lookahead)))
        signal = torch.cat((self._signal.last(held), self._prenet(tail)))
        outs, start = [], 0
        while frames_left > 0:
            n = min(self.frames_per_chunk, frames_left)
            outs.append(self._kernel.step(signal[start:start + n * L + overlap]))
            start += n * L
            frames_left -= n
        return outs

    # -- reference mode ----------------------------------------------------------------------

    def _reference_step(self, shifted: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self._prev_tail, shifted))  # 2L context + chunk
        self._prev_tail = shifted[-2 * self.L:].clone()
        y, *bufs, self._prenet_ctx = self.model(x.view(1, 1, -1), *self._bufs, convnet_pre_ctx=self._prenet_ctx, pad=False)
        self._bufs = tuple(bufs)
        return y.view(-1)

    def _flush_reference(self, rest: torch.Tensor) -> list[torch.Tensor]:
        T, C = self._samples_in, self.chunk_samples
        if T == 0:
            return []
        done = self._framer.chunks_out
        shifted = rest[self.L:] if done == 0 else rest  # the reference drops the first L samples
        left = -(-T // C) * C - done * C
        shifted = torch.cat((shifted, torch.zeros(left - shifted.shape[0])))
        return [self._reference_step(shifted[i:i + C]) for i in range(0, left, C)]
