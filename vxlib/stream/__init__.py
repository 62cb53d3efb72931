"""Streaming core shared by LLVC and LLMVoX: block->chunk framing, preallocated sliding buffers,
per-chunk timing records, clocks (real and simulated) and the audio-backend seam."""

from vxlib.stream.audio_io import AudioBackend, BackendReport, DuplexCallback, FileBackend, SoundDeviceBackend
from vxlib.stream.buffers import ChunkFramer, SampleFifo, SlidingBuffer
from vxlib.stream.timing import ChunkTiming, Clock, MonotonicClock, SimulatedClock, TimingLog

__all__ = ["AudioBackend", "BackendReport", "DuplexCallback", "FileBackend", "SoundDeviceBackend",
           "ChunkFramer", "SampleFifo", "SlidingBuffer", "ChunkTiming", "Clock", "MonotonicClock", "SimulatedClock", "TimingLog"]
