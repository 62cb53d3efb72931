"""Pitch agreement between a converted signal and its reference (the teacher's output).

The two signals are time-aligned by construction (LLVC is trained on sample-aligned teacher
pairs), so frames are compared one to one, without DTW. Per frame pair:

- voicing decision error (VDE): fraction of frames where exactly one side is voiced;
- on frames voiced in both: f0 RMSE in Hz, RMSE in cents (``1200 log2(f / f_ref)``, the same
  number for a low and a high voice, unlike Hz) and the Pearson correlation of f0 in Hz.

f0 comes from :func:`vxlib.pitch.extract_f0` at 16 kHz (inputs at other rates are resampled with
soxr first): RVC's settings, 10 ms hop, 50-1100 Hz, so a +12-semitone teacher output stays in
range. ``method="harvest"`` (default): robust voicing on speech, ~0.25x real time here, but it
needs harmonics and marks a pure sine unvoiced. ``"dio"``: ~4x faster, tracks pure tones, misses
more voiced speech frames.
``"crepe"``: torchcrepe, slowest.
"""

from __future__ import annotations

import numpy as np

from vxlib import pitch
from vxlib.audio import AudioError, resample

__all__ = ["F0_SAMPLE_RATE", "extract_f0", "f0_metrics", "f0_metrics_from_tracks"]

F0_SAMPLE_RATE = pitch.SAMPLE_RATE  # 16 kHz, 10 ms frames


def extract_f0(wav: np.ndarray, sr: int, method: str = "harvest", name: str = "audio") -> np.ndarray:
    """f0 in Hz ``(frames,)`` of a ``(T,)`` signal at ``sr``, 0 where unvoiced, 100 frames/s."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0:
        raise AudioError(f"{name}: f0 needs non-empty mono (T,) audio, got shape {wav.shape}")
    return pitch.extract_f0(resample(wav, sr, F0_SAMPLE_RATE), method)


def f0_metrics_from_tracks(f0: np.ndarray, f0_ref: np.ndarray) -> dict[str, float]:
    """Metrics of two equal-length f0 tracks (Hz, 0 = unvoiced). NaN where undefined (no frame
    voiced in both; correlation of a constant track)."""
    f0, f0_ref = np.asarray(f0, np.float64), np.asarray(f0_ref, np.float64)
    if f0.shape != f0_ref.shape:
        raise ValueError(f"f0 tracks differ in length: {f0.shape} vs {f0_ref.shape}")
    voiced, voiced_ref = f0 > 0, f0_ref > 0
    both = voiced & voiced_ref
    out = {"vde": float(np.mean(voiced != voiced_ref)), "f0_voiced_frames": int(both.sum()),
           "f0_rmse_hz": float("nan"), "f0_rmse_cents": float("nan"), "f0_corr": float("nan")}
    if both.any():
        a, b = f0[both], f0_ref[both]
        out["f0_rmse_hz"] = float(np.sqrt(np.mean((a - b) ** 2)))
        out["f0_rmse_cents"] = float(np.sqrt(np.mean((1200.0 * np.log2(a / b)) ** 2)))
        if both.sum() > 1 and a.std() > 0 and b.std() > 0:
            out["f0_corr"] = float(np.corrcoef(a, b)[0, 1])
    return out


def f0_metrics(converted: np.ndarray, reference: np.ndarray, sr: int, method: str = "harvest",
               max_length_difference_ms: float = 20.0) -> dict[str, float]:
    """f0 RMSE (Hz, cents), correlation and VDE of ``converted`` against the time-aligned
    ``reference`` (both ``(T,)`` at ``sr``).

    Lengths may differ by up to ``max_length_difference_ms`` (resampling and codec padding leave a
    few samples); the extra frames of the longer one are not scored. A larger difference means the
    pair is not aligned and is an error, not something to crop.
    """
    diff_ms = abs(len(converted) - len(reference)) / sr * 1000.0
    if diff_ms > max_length_difference_ms:
        raise AudioError(
            f"converted ({len(converted) / sr:.3f} s) and reference ({len(reference) / sr:.3f} s) differ by "
            f"{diff_ms:.0f} ms: f0 metrics compare time-aligned pairs (allowed {max_length_difference_ms:g} ms)"
        )
    f0 = extract_f0(converted, sr, method, name="converted")
    f0_ref = extract_f0(reference, sr, method, name="reference")
    n = min(len(f0), len(f0_ref))
    return f0_metrics_from_tracks(f0[:n], f0_ref[:n])
