"""Speaker similarity with Resemblyzer (GE2E d-vectors, 256-d, unit norm).

Two scores:

- :func:`reference_similarity` reproduces the LLVC reference ``eval.py``: every ground-truth file
  longer than 10 s is split with ``np.array_split`` into ``len // (10 s)`` near-equal pieces (so
  pieces are 10-20 s), at most 10 per file; files of 10 s or less are skipped. Each converted
  utterance scores the mean dot product of its embedding with all piece embeddings; the system
  score is the mean over utterances. The paper's "ground truth" row (0.898) is the same score of the
  pieces against themselves (``eval_gt``), diagonal included. A corpus of short utterances gives
  the reference no pieces at all (it then crashes); ``concatenate=True`` joins the ground-truth
  files (sorted by name) into one signal first, which is what such corpora need.
- :func:`target_similarity`: per utterance, the dot product with the target voice embedding
  (mean of the target's utterance embeddings, re-normalised: Resemblyzer's ``embed_speaker``).

Embedding follows Resemblyzer's own ``preprocess_wav`` (resample to 16 kHz with librosa, volume
normalised to -30 dBFS, long silences trimmed by webrtcvad), as the reference does.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from vxlib.audio import AudioError

__all__ = ["SPEAKER_SAMPLE_RATE", "PIECE_SECONDS", "MAX_PIECES_PER_FILE", "speaker_embedding", "split_ground_truth",
           "reference_similarity", "target_embedding", "target_similarity"]

SPEAKER_SAMPLE_RATE = 16000  # Resemblyzer's rate; the reference reads ground truth at 16 kHz
PIECE_SECONDS = 10.0  # reference eval.py: SECONDS = 10
MAX_PIECES_PER_FILE = 10  # reference eval.py: NUM_SUBSETS = 10


@functools.lru_cache(maxsize=1)
def _voice_encoder():
    """Resemblyzer's pretrained encoder (weights ship in the package), once per process."""
    from resemblyzer import VoiceEncoder

    return VoiceEncoder(device="cpu", verbose=False)


def speaker_embedding(wav: np.ndarray, sr: int, name: str = "audio") -> np.ndarray:
    """Unit-norm d-vector ``(256,)`` of one utterance (Resemblyzer ``preprocess_wav`` + ``embed_utterance``)."""
    from resemblyzer import preprocess_wav

    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0:
        raise AudioError(f"{name}: speaker embedding needs non-empty mono (T,) audio, got shape {wav.shape}")
    if not np.any(wav):
        raise AudioError(f"{name}: no speech found for the speaker embedding (digital silence)")
    speech = preprocess_wav(wav, source_sr=sr)
    if speech.size < 1600:  # < 0.1 s of speech left after VAD trimming
        raise AudioError(f"{name}: no speech found for the speaker embedding (silent or too short after VAD)")
    return _voice_encoder().embed_utterance(speech).astype(np.float32)


def split_ground_truth(wavs: Sequence[np.ndarray], sr: int, concatenate: bool = False,
                       piece_seconds: float = PIECE_SECONDS, max_pieces_per_file: int = MAX_PIECES_PER_FILE,
                       ) -> list[np.ndarray]:
    """Cut ground-truth audio into speaker-reference pieces the way the reference eval does (see module doc)."""
    if concatenate:
        wavs = [np.concatenate([np.asarray(w, dtype=np.float32) for w in wavs])] if len(wavs) else []
    piece_len = int(round(piece_seconds * sr))
    pieces: list[np.ndarray] = []
    for wav in wavs:
        if len(wav) > piece_len:
            pieces += np.array_split(wav, len(wav) // piece_len)[:max_pieces_per_file]
    if not pieces:
        longest = max((len(w) / sr for w in wavs), default=0.0)
        raise AudioError(
            f"no ground-truth file is longer than {piece_seconds:g} s (longest {longest:.1f} s): the reference "
            f"evaluation skips such files; concatenate them first (concatenate=True, CLI --concat-ground-truth)"
        )
    return pieces


def reference_similarity(converted: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """Per converted utterance, the mean dot product with all ground-truth piece embeddings.

    ``converted``: ``(N, 256)`` embeddings; ``pieces``: ``(P, 256)``. Returns ``(N,)``.
    """
    return (np.asarray(pieces) @ np.asarray(converted).T).mean(axis=0)


def target_embedding(embeddings: np.ndarray) -> np.ndarray:
    """Voice embedding of a speaker from ``(N, 256)`` utterance embeddings: normalised mean."""
    mean = np.asarray(embeddings, dtype=np.float64).mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def target_similarity(converted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cosine similarity ``(N,)`` of each converted embedding ``(N, 256)`` with the voice ``(256,)``."""
    return np.asarray(converted) @ np.asarray(target)
