import numpy as np
import pytest

from vxlib.asr import PocketSphinxTranscriber, WhisperTranscriber, load_transcriber, transcribe
from vxlib.audio import AudioError
from vxlib.eval.text import error_rates


def test_whisper_transcribes_espeak_speech(speech, sentences):
    asr = load_transcriber("whisper")
    assert isinstance(asr, WhisperTranscriber)
    assert load_transcriber("whisper") is asr  # cached per process
    text = transcribe(*speech)  # "auto" is the same cached Whisper
    assert error_rates([sentences["u1"]], [text]).wer <= 0.2  # espeak's "jumps" is often heard as "jumped"


def test_pocketsphinx_fallback(flite_speech, sentences):
    asr = load_transcriber("pocketsphinx")
    assert isinstance(asr, PocketSphinxTranscriber)
    text = asr.transcribe(*flite_speech)  # weak on espeak (WER ~1), fine on flite's clearer voice
    assert error_rates([sentences["u1"]], [text]).wer <= 0.2


def test_bad_inputs():
    with pytest.raises(AudioError, match="empty"):
        transcribe(np.zeros(0, np.float32), 16000)
    with pytest.raises(RuntimeError, match="model.bin"):
        WhisperTranscriber("/nonexistent/whisper")
    with pytest.raises(ValueError, match="unknown ASR engine"):
        load_transcriber("kaldi")
