"""LLM -> speech -> target voice, live: an optional LLVC stage after streaming TTS.

LLMVoX speaks at 24 kHz; LLVC converts 16 kHz speech into its target voice. Each TTS chunk goes
through a streaming resampler (:class:`vxlib.audio.StreamResampler`, soxr) and then
:class:`vxlib.llvc.StreamingConverter`, both of which keep state between chunks, so the converted
stream equals converting the whole TTS output at once (up to soxr's block invariance) and its
length is exactly the resampled length: nothing is dropped or padded. The resampler and the
converter each hold a few milliseconds back; :meth:`TargetVoiceStage.flush` releases them at the
end of a request as one last chunk.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Iterable, Iterator

import numpy as np

from vxlib.audio import StreamResampler
from vxlib.llmvox.stream import SpeechChunk
from vxlib.llvc.inference import load_model
from vxlib.llvc.model import Net
from vxlib.llvc.streaming import StreamingConverter
from vxlib.stream.timing import ChunkTiming, Clock, MonotonicClock
from vxlib.stream.workers import intra_op_threads

__all__ = ["TargetVoiceStage"]


class TargetVoiceStage:
    """``process(tts_chunk (T,) at tts_rate) -> converted (T',) at the LLVC rate`` (whatever is
    ready), ``flush()`` -> the rest (then ready for the next request), ``convert(chunks)``: the
    same over a stream of :class:`~vxlib.llmvox.stream.SpeechChunk`."""

    def __init__(self, model: Net, model_rate: int, tts_rate: int = 24000, chunk_factor: int = 1,
                 clock: Clock | None = None):
        self.model_rate, self.tts_rate = model_rate, tts_rate
        self.clock = clock or MonotonicClock()
        self.converter = StreamingConverter(model.eval(), chunk_factor=chunk_factor, clock=self.clock)
        self.reset()

    RESAMPLE_QUALITY = "HQ"  # soxr HQ holds back ~2 ms where VHQ holds back ~50 ms: this is a live chain

    @classmethod
    def from_files(cls, checkpoint: str | os.PathLike, config: str | os.PathLike, tts_rate: int = 24000,
                   chunk_factor: int = 1) -> "TargetVoiceStage":
        """An LLVC generator checkpoint and its official-format config (notebook 02's outputs)."""
        model, rate = load_model(checkpoint, config)
        return cls(model, rate, tts_rate, chunk_factor)

    @property
    def sample_rate(self) -> int:
        return self.model_rate

    def reset(self) -> None:
        self.resampler = StreamResampler(self.tts_rate, self.model_rate, quality=self.RESAMPLE_QUALITY)
        self.converter.reset()

    # LLVC's streaming step is hundreds of tiny ops that gain nothing from a second thread (docs/llvc.md);
    # here it also shares the CPU with the TTS replicas, and an OpenMP team of two threads whose worker
    # waits for a core makes every op wait (measured: first audio through LLVC 470 ms instead of ~120).
    THREADS = 1

    def process(self, audio: np.ndarray) -> np.ndarray:
        with intra_op_threads(self.THREADS):
            return self.converter.process(self.resampler.process(audio))

    def flush(self) -> np.ndarray:
        with intra_op_threads(self.THREADS):
            rest = self.converter.process(self.resampler.flush())
            out = np.concatenate([rest, self.converter.flush()])
        self.reset()
        return out

    def convert(self, chunks: Iterable[SpeechChunk]) -> Iterator[SpeechChunk]:
        """Converted chunks in the same order, at the LLVC rate; the flushed remainder comes last as
        an extra chunk of the last sentence. Timing: ``compute_end`` is re-stamped after conversion;
        ``first_sample`` counts output samples at the LLVC rate."""
        samples, last = 0, None
        try:
            for chunk in chunks:
                converted = self.process(chunk.audio)
                last = replace(chunk, audio=converted, first_sample=samples,
                               timing=_restamp(chunk.timing, self.clock.now()))
                samples += converted.size
                yield last
            if last is not None:
                tail = self.flush()
                yield replace(last, audio=tail, tokens=0, first_sample=samples, index=last.index + 1,
                              timing=_restamp(last.timing, self.clock.now()))
        finally:
            self.reset()


def _restamp(t: ChunkTiming, now: float) -> ChunkTiming:
    return ChunkTiming(t.index, t.arrival, t.compute_start, now, now)
