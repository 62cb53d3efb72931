"""WorldCodec's learned envelope decoder: codes -> the spectral envelope four times per token.

Why it exists (docs/codec.md, "Where the WORLD ceiling is lost" and "A learned envelope decoder"):
one 13.3 ms envelope snapshot per token misses fast formant moves and bursts, and a 4096-entry
codebook cannot carry two snapshots per token. But *where* a formant goes between two tokens is
largely predictable from the codes around them. This small network reads the centroids of codes
``t - left .. t + right`` and predicts the envelope at the ``subframes`` instants inside token
``t`` (3.33 ms apart with the defaults), as a residual on top of the plain linear interpolation
between the centroids of tokens ``t`` and ``t + 1``. It is trained by least squares on the
training corpus's own codes against a fine (3.33 ms) CheapTrick analysis, then its outputs get the
same per-dimension "global variance" gain as the linear decoder (Toda & Tokuda 2007): MSE-trained
trajectories are too flat.

Shape contract (``B`` batch, ``D`` frame dim, ``C`` cepstra, ``L`` tokens, ``U`` subframes):

    centroids z (B, D, L), normalised  ->  cepstra (B, L * U, C), normalised
    fine frame ``t * U + j`` is the envelope at sample ``(t * U + j) * hop / U``.

Row ``t * U + j`` depends on codes ``t - left .. t + right`` and ``t + 1`` (the interpolation), so
with ``right >= 1`` a decoder must hold back ``right`` codes for the envelope.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["EnvelopeDecoder", "fit_envelope_decoder"]


class EnvelopeDecoder(nn.Module):
    """Linear interpolation of the centroid cepstra + a convolutional MLP residual (see the module
    docstring). The first layer is one convolution over the ``left + right + 1`` codes around each
    token; the rest are per-token (kernel 1) layers."""

    def __init__(self, frame_dim: int, n_cepstra: int, subframes: int, left: int, right: int, hidden: int, layers: int):
        super().__init__()
        if left < 0 or right < 0 or layers < 1 or hidden < 1 or subframes < 1:
            raise ValueError(f"EnvelopeDecoder needs left, right >= 0 and hidden, layers, subframes >= 1, "
                             f"got {left}, {right}, {hidden}, {layers}, {subframes}")
        self.n_cepstra, self.subframes, self.left, self.right = n_cepstra, subframes, left, right
        body: list[nn.Module] = [nn.Conv1d(frame_dim, hidden, left + right + 1), nn.GELU()]
        for _ in range(layers - 1):
            body += [nn.Conv1d(hidden, hidden, 1), nn.GELU()]
        body.append(nn.Conv1d(hidden, subframes * n_cepstra, 1))
        self.net = nn.Sequential(*body)

    def interpolate(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder without the network: (B, D, L) -> (B, U * C, L), subframe-major rows."""
        c = z[:, : self.n_cepstra]  # (B, C, L)
        nxt = torch.cat([c[:, :, 1:], c[:, :, -1:]], dim=2)  # token t + 1, the last one held
        return torch.cat([c + (nxt - c) * (j / self.subframes) for j in range(self.subframes)], dim=1)

    def residual(self, z: torch.Tensor) -> torch.Tensor:
        # replicate-pad so every token has a full window; the edges see copies of the end codes
        return self.net(F.pad(z, (self.left, self.right), mode="replicate"))  # (B, U * C, L)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, _, n = z.shape
        y = self.interpolate(z) + self.residual(z)  # (B, U * C, L)
        return y.view(b, self.subframes, self.n_cepstra, n).permute(0, 3, 1, 2).reshape(b, n * self.subframes, self.n_cepstra)


def fit_envelope_decoder(
    inputs: list[np.ndarray],
    targets: list[np.ndarray],
    model: EnvelopeDecoder,
    epochs: int,
    lr: float,
    seed: int,
    batch_utterances: int = 8,
    log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Train ``model`` in place by least squares: per utterance, normalised centroids ``(L_i, D)``
    -> normalised fine cepstra ``(L_i * U, C)``. AdamW with a one-cycle learning rate, utterances in
    a seeded random order, ``batch_utterances`` per step (losses averaged). Returns the per-cepstrum
    variance gain ``std(target) / std(prediction)`` over the training frames ``(C,)``.

    Deterministic for a seed and thread count: the weights are initialised and the order drawn from
    ``seed`` without touching the global RNG.
    """
    if len(inputs) != len(targets) or not inputs:
        raise ValueError(f"fit_envelope_decoder: {len(inputs)} input and {len(targets)} target utterances")
    u, c = model.subframes, model.n_cepstra
    zs = [torch.from_numpy(np.ascontiguousarray(z.T, dtype=np.float32))[None] for z in inputs]  # (1, D, L)
    ys = []
    for i, (z, y) in enumerate(zip(inputs, targets)):
        if y.shape != (z.shape[0] * u, c):
            raise ValueError(f"fit_envelope_decoder: utterance {i} has {z.shape[0]} tokens but fine targets of shape "
                             f"{y.shape}, expected {(z.shape[0] * u, c)}")
        ys.append(torch.from_numpy(np.asarray(y, dtype=np.float32))[None])  # (1, L * U, C)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():
            if isinstance(m, nn.Conv1d):
                m.reset_parameters()
    order = np.random.default_rng(seed)
    steps_per_epoch = math.ceil(len(zs) / batch_utterances)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch))
    model.train()
    for epoch in range(epochs):
        perm = order.permutation(len(zs))
        total = 0.0
        for k in range(0, len(perm), batch_utterances):
            ids = perm[k : k + batch_utterances]
            loss = sum(F.mse_loss(model(zs[i]), ys[i]) for i in ids) / len(ids)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(ids)
        if log and (epoch % 10 == 9 or epoch == epochs - 1):
            log(f"envelope decoder: epoch {epoch + 1}/{epochs}, training MSE {total / len(zs):.4f}")
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(z)[0] for z in zs]).numpy()  # (M * U, C)
    true = torch.cat([y[0] for y in ys]).numpy()
    return (true.std(0) / (pred.std(0) + 1e-8)).astype(np.float64)
