"""Pitch agreement between a converted signal and its reference (the teacher's output).

The two signals are time-aligned by construction (LLVC is trained on sample-aligned teacher
pairs), so frames are compared one to one, without DTW. Per frame pair:

- voicing decision error (VDE): fraction of frames where exactly one side is voiced;
- on frames voiced in both: f0 RMSE in Hz, RMSE in cents (``1200 log2(f / f_ref)``, the same
  number for a low and a high voice, unlike Hz) and the Pearson correlation of f0 in Hz.

f0 comes from WORLD (pyworld), 10 ms frames, 50-1100 Hz so that a +12-semitone teacher output
(a voice an octave up) stays in range. ``method="harvest"`` (default; one of the RVC pipeline's f0 methods):
robust voicing on speech, ~0.25x real time here; it needs harmonics and marks a pure sine
unvoiced. ``method="dio"``: DIO + StoneMask refinement, ~4x faster, tracks pure tones, but misses
more voiced speech frames (on espeak speech it labels ~15% of frames differently from Harvest).
"""

from __future__ import annotations

import numpy as np

from vxlib.audio import AudioError

__all__ = ["F0_FRAME_MS", "F0_FLOOR_HZ", "F0_CEIL_HZ", "F0_METHODS", "extract_f0", "f0_metrics", "f0_metrics_from_tracks"]

F0_FRAME_MS = 10.0
F0_FLOOR_HZ = 50.0
F0_CEIL_HZ = 1100.0


F0_METHODS = ("harvest", "dio")


def extract_f0(wav: np.ndarray, sr: int, method: str = "harvest", frame_ms: float = F0_FRAME_MS,
               name: str = "audio") -> np.ndarray:
    """f0 track in Hz ``(frames,)``, 0 where unvoiced, one frame per ``frame_ms`` from t = 0."""
    import pyworld

    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0:
        raise AudioError(f"{name}: f0 needs non-empty mono (T,) audio, got shape {wav.shape}")
    x = np.ascontiguousarray(wav, dtype=np.float64)  # pyworld needs C-contiguous float64
    band = dict(f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ, frame_period=frame_ms)
    if method == "harvest":
        return pyworld.harvest(x, sr, **band)[0]
    if method == "dio":
        f0, times = pyworld.dio(x, sr, **band)
        return pyworld.stonemask(x, f0, times, sr)
    raise ValueError(f"unknown f0 method {method!r} (use one of {F0_METHODS})")


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
               frame_ms: float = F0_FRAME_MS, max_length_difference_ms: float = 20.0) -> dict[str, float]:
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
    f0 = extract_f0(converted, sr, method, frame_ms, name="converted")
    f0_ref = extract_f0(reference, sr, method, frame_ms, name="reference")
    n = min(len(f0), len(f0_ref))
    return f0_metrics_from_tracks(f0[:n], f0_ref[:n])
