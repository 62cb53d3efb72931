"""Fused CPU loops (numba) for the small, overhead-bound parts of the LLVC streaming step.

At 13 frames per step, the encoder's elementwise work (depthwise conv, LayerNorm, ReLU, residual)
and the 12-layer, 1-channel prenet are tiny, but in eager PyTorch each costs a dozen operator
dispatches per layer; on a loaded 2-core machine that overhead, not arithmetic, dominated the step.
These loops do the same maths in one call per stage (float32 storage, float64 accumulation of the
LayerNorm statistics). The matmuls stay in PyTorch (MKL). numba is a dependency of librosa, so it
is present wherever vxlib is; :data:`AVAILABLE` says whether it imported.
"""

from __future__ import annotations

import math

try:
    import numba
    AVAILABLE = True
except ImportError:  # pragma: no cover - numba ships with librosa
    numba = None
    AVAILABLE = False

__all__ = ["AVAILABLE", "depthwise_ln_relu", "ln_relu_residual", "gated_prenet"]


def _jit(fn):
    return numba.njit(cache=True, fastmath=False, nogil=True)(fn) if AVAILABLE else fn


@_jit
def _ln_moments(x, t, eps):  # pragma: no cover - compiled
    """LayerNorm's mean and 1/sqrt(var + eps) of row ``t`` of ``x`` (n, C)."""
    C = x.shape[1]
    s = 0.0
    for c in range(C):
        s += x[t, c]
    mean = s / C
    v = 0.0
    for c in range(C):
        dev = x[t, c] - mean
        v += dev * dev
    return mean, 1.0 / math.sqrt(v / C + eps)


@_jit
def depthwise_ln_relu(win, d, taps, bias, gamma, beta, eps, out):  # pragma: no cover - compiled
    """out[t] = relu(LN(bias + taps[0]*win[t] + taps[1]*win[t+d] + taps[2]*win[t+2d])), t < out rows.

    win (2d + n, C), taps (3, C), out (n, C)."""
    n, C = out.shape
    for t in range(n):
        for c in range(C):
            out[t, c] = bias[c] + taps[0, c] * win[t, c] + taps[1, c] * win[t + d, c] + taps[2, c] * win[t + 2 * d, c]
        mean, inv = _ln_moments(out, t, eps)
        for c in range(C):
            y = (out[t, c] - mean) * inv * gamma[c] + beta[c]
            out[t, c] = y if y > 0.0 else 0.0


@_jit
def ln_relu_residual(h, gamma, beta, eps, residual, out):  # pragma: no cover - compiled
    """out = residual + relu(LN(h)); all (n, C)."""
    n, C = h.shape
    for t in range(n):
        mean, inv = _ln_moments(h, t, eps)
        for c in range(C):
            y = (h[t, c] - mean) * inv * gamma[c] + beta[c]
            out[t, c] = residual[t, c] + (y if y > 0.0 else 0.0)


@_jit
def gated_prenet(x, state, filt_w, filt_b, gate_w, gate_b, dilations, skip, scratch, out):  # pragma: no cover
    """The 1-channel gated residual prenet: per layer ``tanh(filter) * sigmoid(gate) + input`` over a
    causal window whose history (the layer's last ``(k-1)*d`` inputs) is ``state[layer, :]``.

    x, out (T,); filt_w/gate_w (layers, k); state (layers, max (k-1)*d), updated in place;
    scratch (2, max_hist + T); skip: 0 none, 1 add, 2 multiply.
    """
    T = x.shape[0]
    layers, k = filt_w.shape
    cur = scratch[0]
    nxt = scratch[1]
    for t in range(T):
        cur[t] = x[t]
    for i in range(layers):
        d = dilations[i]
        hist = (k - 1) * d
        # window = [state (hist), cur (T)] laid out in nxt temporarily avoided: index by position.
        for t in range(T):
            f = filt_b[i]
            g = gate_b[i]
            for j in range(k):
                p = t + j * d - hist  # position in cur; negative -> history
                v = state[i, hist + p] if p < 0 else cur[p]
                f += filt_w[i, j] * v
                g += gate_w[i, j] * v
            nxt[t] = math.tanh(f) * (1.0 / (1.0 + math.exp(-g))) + cur[t]
        # new history: the last `hist` samples of this layer's input window
        if T >= hist:
            for j in range(hist):
                state[i, j] = cur[T - hist + j]
        else:
            for j in range(hist - T):
                state[i, j] = state[i, j + T]
            for j in range(T):
                state[i, hist - T + j] = cur[j]
        tmp = cur
        cur = nxt
        nxt = tmp
    for t in range(T):
        if skip == 1:
            out[t] = x[t] + cur[t]
        elif skip == 2:
            out[t] = x[t] * cur[t]
        else:
            out[t] = cur[t]
