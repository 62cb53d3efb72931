"""Speech for the evaluation tests, made on the spot with espeak-ng and flite (Debian main; ~0.1 s a clip).

espeak-ng writes 22.05 kHz WAVs, so the tests also exercise every metric's resampling path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vxlib.audio import load

SENTENCES = {
    "u1": "The quick brown fox jumps over the lazy dog.",
    "u2": "She sold 3 sea shells by the sea shore in 1990.",
    "u3": "Streaming voice conversion needs a very low latency.",
}
VOICE = "en-us"  # the "ground truth" speaker
OTHER_VOICE = "en-us+f3"  # a clearly different espeak voice (Resemblyzer cosine ~0.65 to VOICE)


def espeak(text: str, path: Path, voice: str = VOICE) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="session")
def flite_speech(tmp_path_factory) -> tuple[np.ndarray, int]:
    """The first sentence by flite's "slt" voice (16 kHz): clearer than espeak for weak recognisers."""
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (apt-get install flite)")
    path = tmp_path_factory.mktemp("flite") / "u1.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", SENTENCES["u1"], "-o", str(path)], check=True)
    return load(path)


@pytest.fixture(scope="session")
def speech_dirs(tmp_path_factory) -> dict[str, Path]:
    """Folders ``voice`` and ``other`` with the same three sentences (files u1..u3.wav) in two voices."""
    root = tmp_path_factory.mktemp("speech")
    dirs = {"voice": root / "voice", "other": root / "other"}
    for name, voice in (("voice", VOICE), ("other", OTHER_VOICE)):
        dirs[name].mkdir()
        for key, text in SENTENCES.items():
            espeak(text, dirs[name] / f"{key}.wav", voice)
    return dirs


@pytest.fixture(scope="session")
def sentences() -> dict[str, str]:
    return dict(SENTENCES)


@pytest.fixture(scope="session")
def speech(speech_dirs) -> tuple[np.ndarray, int]:
    """The first sentence in the main voice: ``(wav, 22050)``."""
    return load(speech_dirs["voice"] / "u1.wav")
