import numpy as np
import pytest

from vxlib.audio import AudioError, load
from vxlib.eval.speaker import (reference_similarity, speaker_embedding, split_ground_truth, target_embedding,
                                target_similarity)

SR = 16000


def test_split_follows_the_reference_rule():
    long, short = np.zeros(25 * SR, np.float32), np.zeros(5 * SR, np.float32)
    pieces = split_ground_truth([long, short], SR)
    assert [len(p) for p in pieces] == [12.5 * SR] * 2  # array_split(25 s, 25 // 10) ; the 5 s file is skipped
    assert len(split_ground_truth([np.zeros(150 * SR, np.float32)], SR)) == 10  # at most 10 per file
    with pytest.raises(AudioError, match="concatenate"):
        split_ground_truth([short, short, short], SR)
    assert [len(p) for p in split_ground_truth([short, short, short], SR, concatenate=True)] == [15 * SR]


def test_similarity_arithmetic():
    e = np.eye(4, dtype=np.float32)
    converted = np.stack([e[0], (e[0] + e[1]) / np.sqrt(2)])
    pieces = np.stack([e[0], e[1]])
    np.testing.assert_allclose(reference_similarity(converted, pieces), [0.5, np.sqrt(2) / 2], rtol=1e-6)
    voice = target_embedding(np.stack([e[0], e[1]]))
    np.testing.assert_allclose(voice, (e[0] + e[1]) / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(target_similarity(converted, voice), [np.sqrt(2) / 2, 1.0], rtol=1e-6)


def test_resemblyzer_same_voice_vs_other_voice(speech_dirs):
    emb = {name: np.stack([speaker_embedding(*load(p)) for p in sorted(d.glob("*.wav"))])
           for name, d in speech_dirs.items()}  # (3, 256) each
    assert np.linalg.norm(emb["voice"], axis=1) == pytest.approx(1.0, abs=1e-4)
    # identical signal: similarity 1
    assert float(emb["voice"][0] @ speaker_embedding(*load(speech_dirs["voice"] / "u1.wav"))) == pytest.approx(1.0, abs=1e-5)
    voice = target_embedding(emb["voice"])
    same, other = target_similarity(emb["voice"], voice), target_similarity(emb["other"], voice)
    assert same.min() > 0.85 and other.max() < same.min() - 0.1


def test_silence_has_no_speaker():
    with pytest.raises(AudioError, match="no speech"):
        speaker_embedding(np.zeros(SR, np.float32), SR, name="silent.wav")
