"""Naturalness proxies: DNSMOS (+ P.808) from speechmos, WVMOS when its weights are present.

DNSMOS (Reddy et al., ICASSP 2022) predicts ITU-T P.835 ratings of speech quality (SIG), background
noise (BAK) and overall quality (OVRL) from 9.01 s windows at 16 kHz; the P.808 model predicts an
overall ACR MOS from a log-mel spectrogram. speechmos wraps Microsoft's ONNX models unchanged,
including DNSMOS's own handling of short clips: a clip shorter than 9.01 s is repeated end to end
until it is long enough (so a 3 s clip is scored as three copies of itself), longer clips are
scored in 9.01 s windows with a 1 s hop and averaged.

WVMOS (Andreev et al., 2022: wav2vec 2.0 base + a small head, trained on VCC 2018 ratings) is
the MOS proxy in the LLVC paper. Its package downloads the head weights and ``facebook/wav2vec2-base``
on import; it belongs to the evaluation environment, and :func:`wvmos` only runs where both are
already on disk.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from vxlib.audio import AudioError, resample

__all__ = ["MOS_SAMPLE_RATE", "WVMOSUnavailable", "dnsmos", "wvmos", "default_wvmos_checkpoint"]

MOS_SAMPLE_RATE = 16000  # both models are trained on 16 kHz speech


def _as_16k(wav: np.ndarray, sr: int, name: str) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0:
        raise AudioError(f"{name}: MOS needs non-empty mono (T,) audio, got shape {wav.shape}")
    peak = float(np.abs(wav).max())
    if peak > 1.0:
        raise AudioError(f"{name}: samples exceed full scale (peak {peak:.3f}); MOS models expect audio in [-1, 1]")
    if peak == 0.0:
        raise AudioError(f"{name}: digital silence; MOS is undefined")
    # Explicit, band-limited resampling (soxr VHQ); the caller's rate is recorded by the harness.
    return np.clip(resample(wav, sr, MOS_SAMPLE_RATE), -1.0, 1.0)  # soxr ringing may overshoot by ~1e-3


@functools.lru_cache(maxsize=1)
def _dnsmos_model(threads: int = 2):
    """speechmos's DNSMOS, created once per process, its two ONNX sessions limited to ``threads``
    without busy-waiting (onnxruntime's default spins every core, which starves a shared machine)."""
    import onnxruntime as ort
    from speechmos import dnsmos as sm

    class _DNSMOS(sm.DNSMOS):
        def __init__(self, primary_model_path: str, p808_model_path: str):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            cpu = ["CPUExecutionProvider"]
            self.primary_model_path = primary_model_path
            self.onnx_sess = ort.InferenceSession(primary_model_path, options, providers=cpu)
            self.p808_onnx_sess = ort.InferenceSession(p808_model_path, options, providers=cpu)

    models = Path(sm.__file__).parent / "dnsmos_models"
    return _DNSMOS(str(models / "sig_bak_ovr.onnx"), str(models / "model_v8.onnx"))


def dnsmos(wav: np.ndarray, sr: int, name: str = "audio") -> dict[str, float]:
    """DNSMOS P.835 (``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl``) and P.808 (``dnsmos_p808``), 1..5.

    Audio not at 16 kHz is resampled to 16 kHz first (soxr).
    """
    scores = _dnsmos_model()(_as_16k(wav, sr, name), MOS_SAMPLE_RATE, False)
    return {"dnsmos_ovrl": float(scores["ovrl_mos"]), "dnsmos_sig": float(scores["sig_mos"]),
            "dnsmos_bak": float(scores["bak_mos"]), "dnsmos_p808": float(scores["p808_mos"])}


class WVMOSUnavailable(RuntimeError):
    """WVMOS cannot run here (package or weights missing); it belongs to the evaluation environment."""


def default_wvmos_checkpoint() -> Path:
    """Where the ``wvmos`` package keeps its head weights (it downloads them there on import)."""
    return Path.home() / ".cache" / "wv_mos" / "wv_mos.ckpt"


@functools.lru_cache(maxsize=2)
def _wvmos_model(checkpoint: str):
    import torch

    try:
        from wvmos.wv_mos import Wav2Vec2MOS  # the submodule: importing `wvmos` itself starts a download
    except ImportError as err:
        raise WVMOSUnavailable(
            "WVMOS needs the 'wvmos' package (pip install wvmos, in the evaluation environment)"
        ) from err
    try:
        return Wav2Vec2MOS(checkpoint, cuda=torch.cuda.is_available())
    except OSError as err:  # transformers cannot find facebook/wav2vec2-base offline
        raise WVMOSUnavailable(
            f"WVMOS needs 'facebook/wav2vec2-base' in the Hugging Face cache (offline here): {err}"
        ) from err


def wvmos(wav: np.ndarray, sr: int, checkpoint: str | os.PathLike | None = None, name: str = "audio") -> float:
    """WVMOS of one utterance. ``checkpoint``: the WV-MOS ``.ckpt`` (default: the wvmos package's cache
    path). Raises :class:`WVMOSUnavailable` naming what is missing; nothing is downloaded."""
    import torch

    path = Path(checkpoint) if checkpoint is not None else default_wvmos_checkpoint()
    if not path.is_file():
        raise WVMOSUnavailable(
            f"{path}: WVMOS weights not found. WVMOS runs in the evaluation environment only: "
            f"install 'wvmos', put its wv_mos.ckpt there (or pass the path), and have "
            f"facebook/wav2vec2-base in the Hugging Face cache"
        )
    model = _wvmos_model(str(path.resolve()))
    x = _as_16k(wav, sr, name)
    inputs = model.processor(x, return_tensors="pt", padding=True, sampling_rate=MOS_SAMPLE_RATE).input_values
    with torch.no_grad():
        return float(model(inputs.to(next(model.parameters()).device)).mean())
