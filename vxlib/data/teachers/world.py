"""An embedded, deterministic DSP teacher: WORLD analysis -> pitch mapping -> formant warping ->
WORLD synthesis. No weights, no download; a stand-in for the paper's RVC teacher, not a copy of it.

WORLD (Morise et al., IEICE 2016; the ``pyworld`` bindings) splits speech into a pitch track f0, a
smooth spectral envelope (CheapTrick) and a band aperiodicity (D4C), sampled every
``frame_period`` ms. Speaker identity lives mostly in two of these, so this teacher changes them:

- **pitch**: the utterance's voiced log-f0 is mapped to the target's log-f0 mean and standard
  deviation (the classic Gaussian log-f0 conversion of Toda et al. 2007), or, when
  ``f0_up_key`` is given, shifted by that many semitones as RVC's ``f0_up_key`` does;
- **vocal tract**: the envelope is warped along frequency, ``sp'(f) = sp(f / formant_shift)``, which
  moves every formant by the factor ``formant_shift`` (>1: a shorter vocal tract, as from an adult
  male to an adult female voice, whose formants are ~15-20 % higher; Peterson & Barney 1952).

Aperiodicity is left unwarped: it encodes voicing/noise per band, not vocal-tract resonances.
Timing is untouched (the same frames are resynthesised), so the output is time-aligned with the
input; it is cut or zero-padded by at most one frame to exactly the input length, and its RMS is
set to the input's so the teacher changes voice, not loudness.

The target is a *profile* stored as JSON (``profiles/<name>.json``): ``log_f0_mean`` and
``log_f0_std`` (natural log of Hz, over voiced frames) and ``formant_shift``.
:func:`measure_profile` derives the pitch statistics from recordings of a target voice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vxlib.data.teachers.base import Teacher

__all__ = ["WorldProfile", "WorldTeacher", "PROFILE_DIR", "measure_profile", "world_analyze", "world_synthesize"]

PathLike = str | os.PathLike
PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
F0_METHODS = ("harvest", "dio")


@dataclass(frozen=True)
class WorldProfile:
    """The fixed target voice: its pitch statistics and how far to move the formants."""

    name: str
    log_f0_mean: float  # mean of ln(f0 / Hz) over voiced frames
    log_f0_std: float  # their standard deviation
    formant_shift: float  # frequency-warping factor of the spectral envelope (1 = unchanged)
    description: str = ""

    @classmethod
    def load(cls, name_or_path: str | PathLike) -> "WorldProfile":
        """A profile by name (``default`` -> ``profiles/default.json``) or by path to a JSON file."""
        path = Path(name_or_path)
        if path.suffix != ".json":
            path = PROFILE_DIR / f"{name_or_path}.json"
        if not path.exists():
            known = sorted(p.stem for p in PROFILE_DIR.glob("*.json"))
            raise FileNotFoundError(f"{path}: WORLD target profile not found (shipped profiles: {known})")
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = set(cls.__dataclass_fields__)
        unknown, missing = sorted(set(data) - fields), sorted({"name", "log_f0_mean", "log_f0_std", "formant_shift"} - set(data))
        if unknown or missing:
            raise ValueError(f"{path}: bad WORLD profile (missing keys {missing}, unknown keys {unknown})")
        profile = cls(**data)
        if profile.log_f0_std <= 0 or not 0.5 <= profile.formant_shift <= 2.0:
            raise ValueError(f"{path}: log_f0_std must be > 0 and formant_shift within [0.5, 2], got {data}")
        return profile


def world_analyze(
    x: np.ndarray, sr: int, f0_method: str = "harvest", frame_period: float = 5.0, f0_floor: float = 60.0, f0_ceil: float = 700.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(f0 (F,), sp (F, K), ap (F, K))`` of a 1-D signal; f0 = 0 on unvoiced frames.

    dio is ~4x faster than harvest but makes more voicing errors; both are refined by StoneMask.
    """
    import pyworld as pw

    if f0_method not in F0_METHODS:
        raise ValueError(f"f0_method must be one of {F0_METHODS} for the WORLD teacher, got {f0_method!r}")
    x64 = np.ascontiguousarray(x, dtype=np.float64)  # pyworld needs C-contiguous float64
    track = pw.harvest if f0_method == "harvest" else pw.dio
    f0, t = track(x64, sr, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=frame_period)
    f0 = pw.stonemask(x64, f0, t, sr)
    sp = pw.cheaptrick(x64, f0, t, sr, f0_floor=f0_floor)
    ap = pw.d4c(x64, f0, t, sr)
    return f0, sp, ap


def world_synthesize(f0: np.ndarray, sp: np.ndarray, ap: np.ndarray, sr: int, length: int, frame_period: float = 5.0) -> np.ndarray:
    """Resynthesise and cut/zero-pad to exactly ``length`` samples (WORLD yields one frame's worth
    more or less than the input)."""
    import pyworld as pw

    y = pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap), sr, frame_period)
    out = np.zeros(length, dtype=np.float32)
    n = min(length, len(y))
    out[:n] = y[:n]
    return out


def warp_envelope(sp: np.ndarray, factor: float) -> np.ndarray:
    """``sp'(f) = sp(f / factor)`` on every frame by linear interpolation over the bins of ``sp (F, K)``;
    bins that map beyond Nyquist repeat the last bin."""
    if factor == 1.0:
        return sp
    k = sp.shape[1]
    src = np.arange(k) / factor  # (K,) fractional source bin of each output bin
    lo = np.minimum(np.floor(src).astype(int), k - 1)
    hi = np.minimum(lo + 1, k - 1)
    w = (src - lo)[None, :]
    return np.ascontiguousarray((1 - w) * sp[:, lo] + w * sp[:, hi])


def _log_f0_stats(f0: np.ndarray) -> tuple[float, float] | None:
    voiced = f0[f0 > 0]
    if len(voiced) < 2:
        return None
    lf = np.log(voiced)
    return float(lf.mean()), float(lf.std())


def measure_profile(
    wavs: list[np.ndarray], sr: int, name: str, formant_shift: float, f0_method: str = "harvest", description: str = ""
) -> WorldProfile:
    """A profile whose pitch statistics are those of the given recordings of the target voice."""
    f0s = [world_analyze(w, sr, f0_method)[0] for w in wavs]
    stats = _log_f0_stats(np.concatenate(f0s))
    if stats is None:
        raise ValueError(f"measure_profile({name!r}): the recordings have fewer than 2 voiced frames")
    return WorldProfile(name, round(stats[0], 4), round(stats[1], 4), formant_shift, description)


class WorldTeacher(Teacher):
    """Converts any voice towards one fixed target profile with WORLD; see the module docstring.

    ``f0_up_key``: ``None`` maps log-f0 to the profile's statistics; a number of semitones instead
    shifts the source pitch (RVC's convention, +12 = one octave up). Deterministic: WORLD's
    analysis and synthesis use no randomness.
    """

    name = "world"

    def __init__(
        self,
        profile: str | PathLike | WorldProfile = "default",
        f0_method: str = "harvest",
        f0_up_key: float | None = None,
        frame_period: float = 5.0,
        f0_floor: float = 60.0,
        f0_ceil: float = 700.0,
    ):
        if f0_method not in F0_METHODS:
            raise ValueError(f"f0_method must be one of {F0_METHODS} for the WORLD teacher, got {f0_method!r}")
        self.profile = profile if isinstance(profile, WorldProfile) else WorldProfile.load(profile)
        self.f0_method, self.f0_up_key, self.frame_period = f0_method, f0_up_key, frame_period
        self.f0_floor, self.f0_ceil = f0_floor, f0_ceil

    def map_f0(self, f0: np.ndarray) -> np.ndarray:
        """Target f0 track (F,) for a source track; unvoiced frames stay 0."""
        voiced = f0 > 0
        out = np.zeros_like(f0)
        if self.f0_up_key is not None:
            out[voiced] = f0[voiced] * 2.0 ** (self.f0_up_key / 12.0)
            return out
        stats = _log_f0_stats(f0)
        if stats is None:
            return out
        mean, std = stats
        scale = self.profile.log_f0_std / std if std > 1e-3 else 1.0  # a monotone source keeps its (flat) contour
        out[voiced] = np.exp((np.log(f0[voiced]) - mean) * scale + self.profile.log_f0_mean)
        return out

    def convert(self, wav: np.ndarray, sr: int) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1 or len(wav) == 0:
            raise ValueError(f"WorldTeacher.convert expects a non-empty 1-D array, got shape {wav.shape}")
        if not np.isfinite(wav).all():
            raise ValueError("WorldTeacher.convert: input contains NaN/inf")
        rms_in = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        if rms_in == 0.0:
            return np.zeros_like(wav)
        f0, sp, ap = world_analyze(wav, sr, self.f0_method, self.frame_period, self.f0_floor, self.f0_ceil)
        y = world_synthesize(self.map_f0(f0), warp_envelope(sp, self.profile.formant_shift), ap, sr, len(wav), self.frame_period)
        rms_out = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
        return (y * (rms_in / rms_out)).astype(np.float32) if rms_out > 0 else y

    def describe(self) -> dict:
        return {
            "teacher": self.name,
            "profile": asdict(self.profile),
            "f0_method": self.f0_method,
            "f0_up_key": self.f0_up_key,
            "frame_period": self.frame_period,
            "f0_range": [self.f0_floor, self.f0_ceil],
        }
