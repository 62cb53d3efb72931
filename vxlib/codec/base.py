"""The audio-codec interface LLMVoX is trained and run against.

A codec turns a waveform into one integer code per frame (a single codebook) and back. The GPT
never sees audio: it reads, for every step, the *feature vector* of the previous code, so a codec
also exposes its per-code feature table (:attr:`AudioCodec.codebook`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

__all__ = ["AudioCodec", "CodecError"]


class CodecError(ValueError):
    """Input a codec cannot take (wrong rate, shape, dtype, non-finite samples, codes out of range)."""


class AudioCodec(ABC):
    """Single-codebook audio tokenizer. Shape contract (``B`` batch, ``T`` samples, ``L`` frames):

    - ``encode(wav, sr) -> codes``: ``wav`` is ``(T,)`` or ``(B, T)`` float audio (numpy or torch) at
      exactly ``sr == sample_rate`` (nothing is resampled here: use :func:`vxlib.audio.resample`);
      returns int64 ``(L,)`` or ``(B, L)`` codes in ``[0, codebook_size)``, with
      ``L = ceil(T / hop_length)`` (the last frame is zero/reflect padded by the codec).
    - ``codes_to_features(codes) -> (B, feature_dim, L)`` float32: the per-code vectors (a lookup in
      :attr:`codebook`); ``(L,)`` codes give ``B = 1``.
    - ``decode(x) -> (B, L * hop_length)`` float32 audio at ``sample_rate``; ``x`` is either codes
      (any integer dtype, ``(L,)`` or ``(B, L)``) or features ``(B, feature_dim, L)``.
    - :attr:`codebook`: ``(codebook_size, feature_dim)`` float32 table; row ``c`` is the vector the
      LLMVoX GPT receives for previous code ``c``.

    ``frame_rate = sample_rate / hop_length`` (75 Hz for the LLMVoX codecs). Subclasses implement
    ``_encode``, ``_decode`` and ``codebook`` on validated tensors; the public methods here check
    inputs and shapes so every codec rejects bad input the same way.
    """

    sample_rate: int
    hop_length: int
    codebook_size: int
    feature_dim: int

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def lookahead_samples(self) -> int | None:
        """How far past a sample the codes its decoded value depends on reach, for codecs whose
        decoder has a bounded right context (a chunked decoder holding back that many samples' worth
        of codes reproduces the whole decode); ``None`` when it is unbounded (non-causal decoders)."""
        return None

    @property
    @abstractmethod
    def codebook(self) -> torch.Tensor:
        """``(codebook_size, feature_dim)`` float32 per-code feature vectors."""

    @abstractmethod
    def _encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` float32 -> ``(B, L)`` int64."""

    @abstractmethod
    def _decode(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, feature_dim, L)`` float32 -> ``(B, L * hop_length)`` float32."""

    # -- public, validated -------------------------------------------------------------------

    def encode(self, wav: np.ndarray | torch.Tensor, sr: int) -> torch.Tensor:
        if sr != self.sample_rate:
            raise CodecError(
                f"{type(self).__name__} takes {self.sample_rate} Hz audio, got {sr} Hz "
                f"(resample first, e.g. vxlib.audio.resample(wav, {sr}, {self.sample_rate}))"
            )
        x = torch.as_tensor(wav)
        if not x.is_floating_point():
            raise CodecError(f"audio must be floating point, got {x.dtype}")
        if x.dim() not in (1, 2) or x.shape[-1] == 0:
            raise CodecError(f"audio must be non-empty (T,) or (B, T), got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise CodecError(f"audio contains {int((~torch.isfinite(x)).sum())} NaN/inf samples")
        codes = self._encode(x.reshape(-1, x.shape[-1]).float().to(self.codebook.device))
        return codes[0] if x.dim() == 1 else codes

    def codes_to_features(self, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        c = self._check_codes(codes)
        return self.codebook[c].transpose(1, 2)  # (B, L, D) -> (B, D, L)

    def decode(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(x)
        if not t.is_floating_point():
            t = self.codes_to_features(t)
        if t.dim() != 3 or t.shape[1] != self.feature_dim or t.shape[2] == 0:
            raise CodecError(
                f"features must be (B, {self.feature_dim}, L) with L > 0, got shape {tuple(t.shape)}"
            )
        return self._decode(t.float().to(self.codebook.device))

    def _check_codes(self, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        c = torch.as_tensor(codes)
        if c.is_floating_point() or c.is_complex() or c.dtype == torch.bool:
            raise CodecError(f"codes must be integers, got {c.dtype}")
        if c.dim() == 1:
            c = c.unsqueeze(0)
        if c.dim() != 2 or c.shape[1] == 0:
            raise CodecError(f"codes must be non-empty (L,) or (B, L), got shape {tuple(torch.as_tensor(codes).shape)}")
        if c.numel() and (c.min() < 0 or c.max() >= self.codebook_size):
            raise CodecError(
                f"codes out of range [0, {self.codebook_size}): min {int(c.min())}, max {int(c.max())}"
            )
        return c.long().to(self.codebook.device)
