"""The teacher interface shared by every voice-conversion teacher."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Teacher(ABC):
    """Converts speech into one fixed target voice.

    Contract: ``convert(wav, sr)`` takes a 1-D float32 array at rate ``sr`` and returns a 1-D float32
    array at the same rate ``sr``, of exactly the same length, time-aligned with the input (a
    phoneme at t seconds in the input is at t seconds in the output). Deterministic for a given
    input and teacher state. ``name`` and ``describe()`` go into dataset manifests and cards.
    """

    name: str = "teacher"

    @abstractmethod
    def convert(self, wav: np.ndarray, sr: int) -> np.ndarray: ...

    def describe(self) -> dict:
        """Settings that determine the output (for manifests/cards)."""
        return {"teacher": self.name}
