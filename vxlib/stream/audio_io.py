"""The audio-backend seam: a full-duplex callback driven by a sound card or by a file.

A callback receives one block of mono float32 input and fills an equally long output block, as
PortAudio's duplex callbacks do. :class:`SoundDeviceBackend` runs it on a real device;
:class:`FileBackend` replays a signal through it on a :class:`~vxlib.stream.timing.SimulatedClock`
(block k is captured at ``(k+1) * block / sr``; its output must be ready one block period later),
measuring the callback's real compute time, so a test can check deadlines without a sound card.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vxlib.stream.timing import SimulatedClock

__all__ = ["DuplexCallback", "BackendReport", "AudioBackend", "FileBackend", "SoundDeviceBackend"]

DuplexCallback = Callable[[np.ndarray, np.ndarray], None]
"""``callback(input_block (frames,), output_block (frames,))``: fill ``output_block`` in place."""


@dataclass
class BackendReport:
    sample_rate: int
    block_size: int
    callbacks: int = 0
    deadline_misses: int = 0            # callbacks that finished after their output was due
    input_overflows: int = 0            # device-reported (sounddevice status flags)
    output_underflows: int = 0
    device_latency_s: tuple[float, float] = (0.0, 0.0)  # (input, output) as the device reports
    callback_s: list[float] = field(default_factory=list)

    @property
    def block_s(self) -> float:
        return self.block_size / self.sample_rate


class AudioBackend(ABC):
    @abstractmethod
    def run(self, callback: DuplexCallback, sample_rate: int, block_size: int,
            duration_s: float | None = None) -> BackendReport:
        """Call ``callback`` once per block until the source ends or ``duration_s`` has passed."""


class FileBackend(AudioBackend):
    """Replays ``audio`` (1-D, already at ``sample_rate``) block by block on a simulated clock.

    The last block may be shorter than ``block_size``; every captured output block is kept in
    :attr:`output` (concatenated in order by :meth:`played`).
    """

    def __init__(self, audio: np.ndarray, clock: SimulatedClock | None = None,
                 timer: Callable[[], float] = time.perf_counter):
        self.timer = timer  # measures the callback's real compute time
        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        if self.audio.ndim != 1:
            raise ValueError(f"FileBackend needs 1-D audio, got shape {self.audio.shape}")
        self.clock = clock or SimulatedClock()
        self.output: list[np.ndarray] = []

    def played(self) -> np.ndarray:
        return np.concatenate(self.output) if self.output else np.zeros(0, np.float32)

    def run(self, callback: DuplexCallback, sample_rate: int, block_size: int,
            duration_s: float | None = None) -> BackendReport:
        report = BackendReport(sample_rate, block_size)
        period = block_size / sample_rate
        n = self.audio.shape[0] if duration_s is None else min(self.audio.shape[0], int(duration_s * sample_rate))
        for k, start in enumerate(range(0, n, block_size)):
            block = self.audio[start:min(start + block_size, n)]
            captured = (k + 1) * period
            self.clock.advance_to(captured)         # a late previous callback delays this one
            out = np.zeros_like(block)
            t0 = self.timer()
            callback(block, out)
            spent = self.timer() - t0
            self.clock.advance(spent)
            report.callbacks += 1
            report.callback_s.append(spent)
            if self.clock.now() > captured + period:
                report.deadline_misses += 1
            self.output.append(out)
        return report


class SoundDeviceBackend(AudioBackend):
    """A PortAudio full-duplex stream (``sounddevice.Stream``), mono float32."""

    def __init__(self, input_device: int | str | None = None, output_device: int | str | None = None):
        self.input_device, self.output_device = input_device, output_device

    def run(self, callback: DuplexCallback, sample_rate: int, block_size: int,
            duration_s: float | None = None) -> BackendReport:
        import sounddevice as sd  # PortAudio is needed only here

        report = BackendReport(sample_rate, block_size)

        def on_block(indata, outdata, frames, _time, status):
            t0 = time.perf_counter()
            report.input_overflows += int(bool(status.input_overflow))
            report.output_underflows += int(bool(status.output_underflow))
            out = np.zeros(frames, np.float32)
            callback(indata[:, 0].copy(), out)
            outdata[:, 0] = out
            spent = time.perf_counter() - t0
            report.callbacks += 1
            report.callback_s.append(spent)
            report.deadline_misses += int(spent > frames / sample_rate)

        with sd.Stream(samplerate=sample_rate, blocksize=block_size, channels=1, dtype="float32",
                       device=(self.input_device, self.output_device), callback=on_block) as stream:
            report.device_latency_s = tuple(float(v) for v in stream.latency)
            try:
                if duration_s is None:
                    while stream.active:
                        sd.sleep(200)
                else:
                    sd.sleep(int(duration_s * 1000))
            except KeyboardInterrupt:
                pass
        return report
