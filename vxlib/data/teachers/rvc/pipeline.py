"""RVC file conversion (index-free), stage by stage, as LLVC's reference pipeline runs it.

16 kHz mono -> zero-phase 48 Hz high-pass -> [cut long inputs at quiet points] -> reflect-pad
``x_pad`` s -> f0 (once, on the whole padded signal) -> shift by ``f0_up_key`` -> coarse pitch;
per piece: content features (50 frames/s) -> ×2 nearest upsampling (100 frames/s) -> synthesizer
-> drop the ``x_pad`` s of context at both ends -> concatenate. Output at the model rate.

The reference is LLVC's ``minimal_rvc/pipeline.py`` (facts in ``shared/golden/rvc/README.md``);
the 2023-24 official RVC WebUI differs only in the default pads on CPU (x_pad 1 in fp32),
peak-normalising its input to 0.95, and its optional index/protect/RMS-mix stages, none of
which LLVC's data generation used. Output length: the content encoder's frame count rounds
down ((n - 400)//320 + 1 at 50/s), so each piece is 1-2 frames (10-20 ms) shorter than its
input, plus the remainder under one frame: 2 s at 16 kHz -> 63 360 samples at 32 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

from vxlib import pitch as pitch_mod

from .checkpoint import RVCModel

SAMPLE_RATE = 16000  # content encoder and f0 run at 16 kHz
WINDOW = 160  # samples per synthesis frame at 16 kHz (10 ms)


class ContentEncoder(Protocol):
    """(1, N) float32 waveform at 16 kHz -> (1, (N - 400)//320 + 1, D) features at 50 frames/s."""

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Padding:
    """Context and long-input cutting, in seconds (reference names x_pad, x_query, x_center, x_max).

    The default 3/10/60/65 is the reference's setting on CPU (and on GPUs over 5 GB); the
    official WebUI uses 1/6/38/41 in fp32. The text encoder attends over the whole padded piece,
    so x_pad changes every output sample slightly: match it to match a reference run.
    """

    x_pad: float = 3
    x_query: float = 10
    x_center: float = 60
    x_max: float = 65

    def samples(self, seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
        return int(round(seconds * sample_rate))


def highpass(audio: np.ndarray) -> np.ndarray:
    """Order-5 Butterworth high-pass at 48 Hz, forward-backward (zero phase), float64.

    Removes DC and rumble below the lowest f0 the pipeline tracks (50 Hz); ``filtfilt`` with
    scipy's default odd padding, exactly as RVC, so f0 and content see the same signal.
    """
    b, a = scipy.signal.butter(N=5, Wn=48, btype="high", fs=SAMPLE_RATE)
    return scipy.signal.filtfilt(b, a, audio)


def quiet_cut_points(filtered: np.ndarray, pad: Padding) -> list[int]:
    """Where a long input is cut: every x_center s, at the quietest 10 ms within ±x_query s.

    "Quietest" = smallest |signed sum| of a 160-sample moving window (reference and 2023-24
    official; the current official uses the sum of |x|). Empty when the input is short enough.
    """
    t_query, t_center, t_max = (pad.samples(s) for s in (pad.x_query, pad.x_center, pad.x_max))
    padded = np.pad(filtered, (WINDOW // 2, WINDOW // 2), mode="reflect")
    if padded.shape[0] <= t_max:
        return []
    # moving[j] = sum(padded[j : j + 160]): direct sums (not cumsum differences), as the reference
    moving = np.abs(np.convolve(padded, np.ones(WINDOW), mode="valid")[:filtered.shape[0]])
    cuts = []
    for t in range(t_center, filtered.shape[0], t_center):
        seg = moving[t - t_query:t + t_query]
        cuts.append(t - t_query + int(np.flatnonzero(seg == seg.min())[0]))
    return cuts


class RVCPipeline:
    """Index-free RVC conversion of 16 kHz speech with one loaded synthesizer.

    ``content_encoder`` is any :class:`ContentEncoder` (real use: ContentVec via
    :mod:`vxlib.hubert`; tests inject a stand-in). ``f0_extractor`` defaults to
    :func:`vxlib.pitch.extract_f0` with ``f0_method``.
    """

    def __init__(self, model: RVCModel, content_encoder: ContentEncoder, *, f0_method: str = "harvest",
                 padding: Padding = Padding(), rmvpe_path: str | None = None,
                 f0_extractor: Callable[[np.ndarray], np.ndarray] | None = None, f0_device: str = "cpu"):
        self.model = model
        self.content_encoder = content_encoder
        if f0_extractor is None and f0_method not in pitch_mod.METHODS:
            raise ValueError(f"unknown f0 method {f0_method!r}; choose one of {', '.join(pitch_mod.METHODS)}")
        self.f0_method = f0_method
        self.padding = padding
        self.f0_extractor = f0_extractor or (
            lambda x: pitch_mod.extract_f0(x, f0_method, rmvpe_path=rmvpe_path, device=f0_device))  # crepe/rmvpe run there
        self.t_pad = padding.samples(padding.x_pad)
        self.t_pad_tgt = self.t_pad * model.sample_rate // SAMPLE_RATE
        if self.t_pad_tgt * SAMPLE_RATE != self.t_pad * model.sample_rate:
            raise ValueError(f"x_pad {padding.x_pad} s is not a whole number of samples at {model.sample_rate} Hz")

    # -- stages ---------------------------------------------------------------------------------

    def preprocess(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """16 kHz audio -> (high-passed, high-passed + reflect-padded by x_pad s), float64."""
        filtered = highpass(np.asarray(audio, dtype=np.float64))
        return filtered, np.pad(filtered, (self.t_pad, self.t_pad), mode="reflect")

    def pitch(self, padded: np.ndarray, f0_up_key: float, f0_relative: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Padded audio -> (coarse ids int64, shifted f0 Hz float64), both cut to len//160 frames."""
        p_len = padded.shape[0] // WINDOW
        f0 = self.f0_extractor(padded)
        if f0.shape[0] < p_len:
            raise ValueError(f"f0 method {self.f0_method!r} returned {f0.shape[0]} frames for {p_len} 10 ms frames")
        f0 = pitch_mod.transpose_f0(f0, f0_up_key, pitch_mod.F0_RELATIVE_REFERENCE_HZ if f0_relative else None)
        return pitch_mod.coarse_pitch(f0)[:p_len], f0[:p_len]

    @torch.no_grad()
    def synthesize_piece(self, piece: np.ndarray, coarse: np.ndarray | None, f0_hz: np.ndarray | None, sid: int,
                         noise: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """One padded piece -> synthesizer output (T·hop,) at the model rate, context not yet cut."""
        synth = self.model.synthesizer
        device, dtype = synth.emb_g.weight.device, synth.emb_g.weight.dtype
        wave = torch.from_numpy(piece).float().view(1, -1).to(device)  # (1, N) float32, as the reference
        feats = self.content_encoder(wave)  # (1, F, D) at 50 frames/s
        if feats.dim() != 3 or feats.shape[0] != 1 or feats.shape[2] != self.model.content_dim:
            raise ValueError(f"content encoder returned shape {tuple(feats.shape)}; this {self.model.version} model "
                             f"({self.model.path}) needs (1, frames, {self.model.content_dim})")
        feats = F.interpolate(feats.transpose(1, 2), scale_factor=2, mode="nearest").transpose(1, 2)  # 100 frames/s
        p_len = min(piece.shape[0] // WINDOW, feats.shape[1])
        feats = feats[:, :p_len].to(dtype)
        lengths = torch.tensor([p_len], device=device)
        sid_t = torch.tensor([sid], device=device)
        if self.model.use_f0:
            pitch = torch.from_numpy(coarse[:p_len]).long().unsqueeze(0).to(device)
            nsff0 = torch.from_numpy(f0_hz[:p_len]).float().unsqueeze(0).to(device)
            audio, _, _ = synth.infer(feats, lengths, pitch, nsff0, sid_t, noise=noise, generator=generator)
        else:
            audio, _, _ = synth.infer(feats, lengths, sid=sid_t, noise=noise, generator=generator)
        return audio[0, 0].float().cpu()

    # -- whole conversion -----------------------------------------------------------------------

    def __call__(self, audio: np.ndarray, *, f0_up_key: float = 0, sid: int = 0, f0_relative: bool = False,
                 noise: bool = True, generator: torch.Generator | None = None) -> np.ndarray:
        """16 kHz mono float audio -> converted float32 audio at ``model.sample_rate``.

        Random draws come from ``generator`` (torch's global generator when None, which is what
        the reference uses); ``noise=False`` makes the synthesizer fully deterministic.
        """
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ValueError(f"RVC pipeline expects 1-D mono audio at 16 kHz, got shape {audio.shape}")
        if not 0 <= sid < self.model.n_speakers:
            raise ValueError(f"sid {sid} out of range: {self.model.path} has {self.model.n_speakers} speakers")
        filtered, padded = self.preprocess(audio)
        coarse = f0_hz = None
        if self.model.use_f0:
            coarse, f0_hz = self.pitch(padded, f0_up_key, f0_relative)
        pieces, start = [], 0
        bounds = [(t // WINDOW) * WINDOW for t in quiet_cut_points(filtered, self.padding)] + [None]
        for t in bounds:
            # a piece spans [start, t) of the input plus t_pad of context on both sides (+1 frame)
            stop = None if t is None else t + 2 * self.t_pad + WINDOW
            f_stop = None if t is None else (t + 2 * self.t_pad) // WINDOW
            out = self.synthesize_piece(
                padded[start:stop],
                None if coarse is None else coarse[start // WINDOW:f_stop],
                None if f0_hz is None else f0_hz[start // WINDOW:f_stop],
                sid, noise, generator)
            pieces.append(out[self.t_pad_tgt:out.shape[0] - self.t_pad_tgt])
            if t is not None:
                start = t
        return torch.cat(pieces).numpy()
