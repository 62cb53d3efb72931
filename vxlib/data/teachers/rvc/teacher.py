"""``RVCTeacher``: an official RVC model as a dataset teacher (``Teacher.convert`` contract)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from vxlib.audio import AudioError, resample

from ..base import Teacher
from .checkpoint import RVCModel, load_rvc
from .pipeline import SAMPLE_RATE, ContentEncoder, Padding, RVCPipeline


class RVCTeacher(Teacher):
    """Converts speech with an official RVC v1/v2 ``.pth`` (index-free, as LLVC's data generation).

    Content encoder: a ContentVec (or HuBERT) fairseq checkpoint read by :mod:`vxlib.hubert`, or
    any injected :class:`ContentEncoder` callable. 768-d (v2) models take transformer layer 12;
    256-d (v1) models take ``final_proj`` of layer 9, as official RVC does. LLVC's reference
    pipeline always reads layer 12 (it writes ``embedder_output_layer`` but reads
    ``embedding_output_layer``), i.e. ``final_proj`` of layer 12 for v1 models: set
    ``v1_reference_layer12=True`` to reproduce that.

    Paper settings: ``f0_method="rmvpe"`` with ``rmvpe_path`` = RVC's ``rmvpe.pt`` (see
    :mod:`vxlib.rmvpe`), ``f0_up_key=12``, ``sid=1``, ``f0_relative=True``. Defaults below use
    harvest (no extra weights) and sid 0.

    Time alignment: the RVC pipeline returns 1-2 frames (10-20 ms) less than its input plus the
    remainder under one 10 ms frame (the content encoder's frame count rounds down). The
    teacher resamples the output to the input rate and appends zeros at the end to restore the
    exact input length; the start is aligned sample-exactly, so nothing shifts in time. A
    shortfall larger than 3 frames (or any surplus beyond resampler rounding) raises.

    Output is float32 at the input rate (soxr VHQ resampling from the model rate); LLVC's
    reference instead truncated to int16 at the model rate, then resampled with ``librosa.load``
    and re-quantised to 16-bit (the pair writer decides the file format).

    Determinism: each call draws the synthesizer's noise from a private generator seeded with
    ``seed``, so the same input gives the same output regardless of global RNG state;
    ``noise=False`` removes the sampling noise altogether.
    """

    name = "rvc"

    def __init__(self, model: str | os.PathLike | RVCModel, content_encoder: str | os.PathLike | ContentEncoder, *,
                 f0_method: str = "harvest", f0_up_key: float = 12, sid: int = 0, f0_relative: bool = False,
                 rmvpe_path: str | os.PathLike | None = None, v1_reference_layer12: bool = False,
                 padding: Padding = Padding(), noise: bool = True, seed: int = 1234, device: str = "cpu"):
        self.model = model if isinstance(model, RVCModel) else load_rvc(model, device=device)
        if not 0 <= sid < self.model.n_speakers:
            raise ValueError(f"sid {sid} out of range: {self.model.path} has {self.model.n_speakers} speakers")
        if self.model.content_dim == 768:  # v2 (and 768-d rvc-webui files, whatever their version tag)
            self.content_layer, self.use_final_proj = 12, False
        else:
            self.content_layer, self.use_final_proj = (12 if v1_reference_layer12 else 9), True
        if isinstance(content_encoder, (str, os.PathLike)):
            from vxlib.hubert import FairseqHubert

            self.content_source = str(content_encoder)
            hubert = FairseqHubert.from_checkpoint(content_encoder, device=device)
            encoder = hubert.content_encoder(self.content_layer, self.use_final_proj)
        else:
            self.content_source = getattr(content_encoder, "__name__", type(content_encoder).__name__)
            encoder = content_encoder
        self.pipeline = RVCPipeline(self.model, encoder, f0_method=f0_method, padding=padding,
                                    rmvpe_path=None if rmvpe_path is None else str(rmvpe_path), f0_device=device)
        self.f0_method, self.f0_up_key, self.sid, self.f0_relative = f0_method, f0_up_key, sid, f0_relative
        self.noise, self.seed = noise, seed

    def convert(self, wav: np.ndarray, sr: int) -> np.ndarray:
        wav = np.asarray(wav)
        if wav.ndim != 1:
            raise AudioError(f"RVCTeacher.convert: expected 1-D mono audio, got shape {wav.shape}")
        if not np.isfinite(wav).all():
            raise AudioError(f"RVCTeacher.convert: input contains {int((~np.isfinite(wav)).sum())} NaN/inf samples")
        if int(sr) != sr or sr <= 0:
            raise AudioError(f"RVCTeacher.convert: invalid sample rate {sr!r}")
        x16 = resample(wav.astype(np.float32), sr, SAMPLE_RATE)
        if x16.shape[0] < 2 * 160:
            raise AudioError(f"RVCTeacher.convert: input too short ({wav.shape[0]} samples at {sr} Hz; need >= 20 ms)")
        generator = torch.Generator().manual_seed(self.seed)
        out = self.pipeline(x16, f0_up_key=self.f0_up_key, sid=self.sid, f0_relative=self.f0_relative,
                            noise=self.noise, generator=generator)
        y = resample(out, self.model.sample_rate, sr)
        return align_to_length(y, wav.shape[0], sr)

    def describe(self) -> dict:
        m = self.model
        return {"teacher": self.name, "model": Path(m.path).name, "version": m.version, "f0": int(m.use_f0),
                "model_sr": m.sample_rate, "content_encoder": self.content_source, "content_layer": self.content_layer,
                "final_proj": self.use_final_proj, "f0_method": self.f0_method if m.use_f0 else None,
                "f0_up_key": self.f0_up_key, "f0_relative": self.f0_relative, "sid": self.sid,
                "x_pad": self.pipeline.padding.x_pad, "index": None, "noise": self.noise, "seed": self.seed}


def align_to_length(y: np.ndarray, length: int, sr: int, max_shortfall_frames: int = 3) -> np.ndarray:
    """Zero-pad the end of ``y`` to ``length`` samples (the RVC frame shortfall), checking its size."""
    shortfall = length - y.shape[0]
    limit = math.ceil(max_shortfall_frames * sr / 100)
    if shortfall > limit or shortfall < -2:
        raise AudioError(f"RVC output has {y.shape[0]} samples for a {length}-sample input at {sr} Hz: "
                         f"more than {max_shortfall_frames} frames off, the pipeline is misaligned")
    if shortfall <= 0:
        return np.ascontiguousarray(y[:length], dtype=np.float32)
    return np.concatenate([y, np.zeros(shortfall, dtype=np.float32)]).astype(np.float32)
