"""LLVC training losses (Sadov et al. 2023, recipe of the reference ``train.py``).

Generator: ``disc_loss_c`` x LSGAN adversarial + ``feature_loss_c`` x feature matching
+ ``aux_mel.c`` x multi-resolution mel-STFT loss + ``aux_fairseq.c`` x HuBERT feature MSE.
Discriminator: LSGAN (Mao et al. 2017): real logits pushed to 1, fake logits to 0.

All functions take the discriminator outputs of :class:`vxlib.llvc.discriminators.DiscriminatorOutput`
(lists with one entry per sub-discriminator) and return scalars in float32, also under autocast.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["discriminator_loss", "generator_adversarial_loss", "feature_matching_loss", "MelSTFTLoss",
           "MultiResolutionMelLoss", "HubertFeatureLoss"]


# ----------------------------------------------------------------------------------------------
# Adversarial terms.


def discriminator_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
                       ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """LSGAN discriminator loss ``sum_k mean((1 - D_k(real))^2) + mean(D_k(fake)^2)``.

    Returns ``(total, real_terms, fake_terms)`` (terms per sub-discriminator, detached).
    """
    real_terms = [torch.mean((1 - r.float()) ** 2) for r in real_logits]
    fake_terms = [torch.mean(f.float() ** 2) for f in fake_logits]
    total = sum(real_terms) + sum(fake_terms)
    return total, [t.detach() for t in real_terms], [t.detach() for t in fake_terms]


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LSGAN generator loss ``sum_k mean((1 - D_k(fake))^2)``; returns ``(total, terms)``."""
    terms = [torch.mean((1 - f.float()) ** 2) for f in fake_logits]
    return sum(terms), [t.detach() for t in terms]


def feature_matching_loss(real_fmaps: Sequence[Sequence[torch.Tensor]],
                          fake_fmaps: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """``sum over sub-discriminators and layers of mean |F(real) - F(fake)|`` (Larsen et al. 2016).

    Real features are detached: the generator step must not push the discriminator's features
    of real speech towards the fakes.
    """
    loss = torch.zeros((), device=real_fmaps[0][0].device)
    for real_layers, fake_layers in zip(real_fmaps, fake_fmaps):
        for r, f in zip(real_layers, fake_layers):
            loss = loss + torch.mean(torch.abs(r.detach().float() - f.float()))
    return loss


# ----------------------------------------------------------------------------------------------
# Multi-resolution mel-STFT loss.


class MelSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 distance on one mel-scaled STFT resolution.

    This is the definition the reference uses through auraloss' ``STFTLoss(scale="mel")``
    (Yamamoto et al. 2019 with a mel filterbank; Arik et al. 2018 for spectral convergence):

    - ``|X| = sqrt(max(|STFT(x)|^2, 1e-8))``, Hann window of ``win_size`` zero-padded to ``n_fft``,
      centred frames with reflect padding (torch.stft defaults);
    - ``M = fb @ |X|`` with librosa's Slaney-normalised mel filterbank (``num_mels``, fmin..fmax);
    - ``loss = ||M_y - M_x||_F / ||M_y||_F + mean |log M_x - log M_y|``; the Frobenius norms run
      over the whole batch, as in auraloss.

    Input ``(B, 1, T)`` or ``(B, T)`` with ``T > n_fft // 2`` (reflect padding needs it).
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_size: int, win_size: int, num_mels: int = 80,
                 fmin: float = 0.0, fmax: float | None = None, eps: float = 1e-8):
        super().__init__()
        import librosa

        if num_mels > n_fft:
            raise ValueError(f"num_mels ({num_mels}) must not exceed n_fft ({n_fft})")
        if win_size > n_fft:
            raise ValueError(f"win_size ({win_size}) must not exceed n_fft ({n_fft})")
        self.n_fft, self.hop_size, self.win_size, self.eps = n_fft, hop_size, win_size, eps
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("mel_basis", torch.from_numpy(fb).float(), persistent=False)  # (M, F)
        self.register_buffer("window", torch.hann_window(win_size), persistent=False)

    def mel_magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, [1,] T)`` -> mel magnitudes ``(B, num_mels, frames)`` in float32."""
        x = x.reshape(-1, x.shape[-1]).float()
        if x.shape[-1] <= self.n_fft // 2:
            raise ValueError(f"mel-STFT loss with n_fft {self.n_fft} needs more than {self.n_fft // 2} "
                             f"samples, got {x.shape[-1]}")
        spec = torch.stft(x, self.n_fft, self.hop_size, self.win_size, self.window, return_complex=True)
        mag = torch.sqrt(torch.clamp(spec.real ** 2 + spec.imag ** 2, min=self.eps))  # (B, F, frames)
        return self.mel_basis @ mag

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=output.device.type, enabled=False):
            m_out, m_tgt = self.mel_magnitude(output), self.mel_magnitude(target)
            spectral_convergence = torch.linalg.norm(m_tgt - m_out) / torch.linalg.norm(m_tgt)
            log_distance = F.l1_loss(torch.log(m_out), torch.log(m_tgt))
            return spectral_convergence + log_distance


class MultiResolutionMelLoss(nn.Module):
    """Mean of :class:`MelSTFTLoss` over resolutions (the config's ``aux_mel``: ``n_fft``,
    ``hop_size``, ``win_size`` lists, ``num_mels``, ``fmin``, ``fmax``)."""

    def __init__(self, sample_rate: int, n_fft: Sequence[int], hop_size: Sequence[int], win_size: Sequence[int],
                 num_mels: int = 80, fmin: float = 0.0, fmax: float | None = None):
        super().__init__()
        if not (len(n_fft) == len(hop_size) == len(win_size)) or not n_fft:
            raise ValueError(f"aux_mel: n_fft {list(n_fft)}, hop_size {list(hop_size)} and win_size "
                             f"{list(win_size)} must be non-empty lists of the same length")
        self.resolutions = nn.ModuleList(
            MelSTFTLoss(sample_rate, n, h, w, num_mels, fmin, fmax) for n, h, w in zip(n_fft, hop_size, win_size))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "MultiResolutionMelLoss":
        aux = config["aux_mel"]
        if aux.get("type", "multires") != "multires":
            raise NotImplementedError(f"aux_mel.type {aux['type']!r}: only 'multires' (the official configs' "
                                      f"choice) is implemented")
        p = aux["params"]
        return cls(int(config["data"]["sr"]), p["n_fft"], p["hop_size"], p["win_size"], p.get("num_mels", 80),
                   p.get("fmin", 0.0) or 0.0, p.get("fmax"))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(r(output, target) for r in self.resolutions) / len(self.resolutions)


# ----------------------------------------------------------------------------------------------
# HuBERT feature loss.


class HubertFeatureLoss(nn.Module):
    """MSE between the HuBERT convolutional feature-extractor outputs of output and target
    (the reference's ``fairseq_loss``, after Choi et al. 2023, arXiv 2301.04388).

    ``hubert`` is anything with ``cnn_features((B, T)) -> (B, C, frames)``, normally
    :class:`vxlib.hubert.FairseqHubert` loaded from ``hubert_base_ls960.pt``. It is frozen (eval
    mode, no parameter gradients); gradients flow through it to the generator output only.
    """

    def __init__(self, hubert: nn.Module):
        super().__init__()
        self.hubert = hubert.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "HubertFeatureLoss":
        super().train(mode)
        self.hubert.eval()  # a frozen teacher: never in training mode
        return self

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self.hubert.cnn_features(output.reshape(-1, output.shape[-1]).float())
        with torch.no_grad():
            tgt = self.hubert.cnn_features(target.reshape(-1, target.shape[-1]).float())
        return F.mse_loss(out.float(), tgt.float())
