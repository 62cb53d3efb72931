"""Live voice conversion: microphone in, converted voice out (full-duplex sounddevice stream).

    python -m vxlib.llvc.live -p G_500000.pth -c experiments/llvc/config.json [--input-device N]
                              [--output-device N] [-n 1] [--block-size 208] [--duration S]

:class:`LiveConverter` is the duplex callback: each block goes through a
:class:`~vxlib.llvc.StreamingConverter` (exact mode) and the converted samples into a
:class:`~vxlib.stream.SampleFifo` that the output side reads. The FIFO starts with
``latency_samples`` of silence, which is exactly the most the converter can hold back, so the
output never runs dry while compute keeps up; the played signal is the conversion delayed by that
many samples. The audio backend is a seam (:mod:`vxlib.stream.audio_io`): tests drive the same
callback from a file on a simulated clock.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import soxr
import torch

from vxlib.llvc.inference import load_model
from vxlib.llvc.streaming import StreamingConverter
from vxlib.stream import AudioBackend, BackendReport, SampleFifo, SoundDeviceBackend


def _resampler(src: int, dst: int):
    """soxr streaming resampler at "HQ": VHQ buffers ~70 ms each way at 48 kHz <-> 16 kHz, HQ ~35."""
    return soxr.ResampleStream(src, dst, 1, dtype="float32", quality="HQ")


def resampling_holdback(device_rate: int, model_rate: int, block_size: int, seconds: float = 1.0) -> int:
    """Most device-rate samples the device->model->device resampler pair holds back, measured by
    running fresh resamplers on silence in ``block_size`` blocks (deterministic for given rates)."""
    down, up = _resampler(device_rate, model_rate), _resampler(model_rate, device_rate)
    fed = out = worst = 0
    for _ in range(max(1, int(seconds * device_rate / block_size))):
        out += up.resample_chunk(down.resample_chunk(np.zeros(block_size, np.float32))).shape[0]
        fed += block_size
        worst = max(worst, fed - out)
    return worst


class LiveConverter:
    """Duplex callback around a streaming converter, optionally at a device rate other than the
    model's (soxr streaming resamplers on both sides; their hold-back, measured for the block size,
    is added to the priming)."""

    def __init__(self, converter: StreamingConverter, model_rate: int, device_rate: int | None = None,
                 block_size: int | None = None):
        self.converter, self.model_rate = converter, model_rate
        self.device_rate = device_rate or model_rate
        resample = self.device_rate != model_rate
        if resample and block_size is None:
            raise ValueError("block_size is needed to resample between the device and the model rate")
        self._to_model = _resampler(self.device_rate, model_rate) if resample else None
        self._to_device = _resampler(model_rate, self.device_rate) if resample else None
        ratio = self.device_rate / model_rate
        self.prime_samples = int(np.ceil(converter.latency_samples * ratio))
        if resample:  # + the resamplers' hold-back and one frame of rounding
            self.prime_samples += resampling_holdback(self.device_rate, model_rate, block_size) + int(np.ceil(converter.L * ratio))
        self.fifo = SampleFifo(self.prime_samples + int(8 * converter.chunk_samples * ratio) + 8 * (block_size or 0) + 65536)
        self.fifo.write(np.zeros(self.prime_samples, np.float32))
        self._warm_up()

    def _warm_up(self) -> None:
        """Run a few silent chunks through the converter before the device starts, then reset it:
        the first model call pays one-off costs (kernel dispatch, allocations: 17 ms measured at
        cf=1, over the 13 ms deadline) that must not land in the first audio callback."""
        self.converter.process(np.zeros(3 * self.converter.chunk_samples + self.converter.latency_samples, np.float32))
        self.converter.reset()
        self.converter.timings.clear()

    def __call__(self, block: np.ndarray, out: np.ndarray) -> None:
        x = self._to_model.resample_chunk(block) if self._to_model else block
        y = self.converter.process(x)
        if self._to_device:
            y = self._to_device.resample_chunk(y)
        self.fifo.write(y)
        self.fifo.read_into(out)

    def finish(self) -> np.ndarray:
        """What the stream still owes after the input ends: FIFO content plus the flushed tail."""
        tail = []
        if self._to_model:
            tail.append(self.converter.process(self._to_model.resample_chunk(np.zeros(0, np.float32), last=True)))
        tail.append(self.converter.flush())
        y = np.concatenate(tail)
        if self._to_device:
            y = np.concatenate([self._to_device.resample_chunk(y), self._to_device.resample_chunk(np.zeros(0, np.float32), last=True)])
        rest = np.zeros(len(self.fifo), np.float32)
        self.fifo.read_into(rest)
        return np.concatenate([rest, y])

    @property
    def underruns(self) -> int:
        return self.fifo.underruns

    def latency_ms(self, report: BackendReport) -> float:
        """Input-to-output delay: FIFO priming + one block of capture + the device's own latencies."""
        return (self.prime_samples / self.device_rate + report.block_s + sum(report.device_latency_s)) * 1e3


def run_live(converter: LiveConverter, backend: AudioBackend, block_size: int,
             duration_s: float | None = None) -> BackendReport:
    with torch.inference_mode():
        return backend.run(converter, converter.device_rate, block_size, duration_s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.llvc.live", description="Live LLVC voice conversion.")
    ap.add_argument("-p", "--checkpoint_path", required=True)
    ap.add_argument("-c", "--config_path", required=True)
    ap.add_argument("--input-device", default=None, help="sounddevice input device (index or name)")
    ap.add_argument("--output-device", default=None, help="sounddevice output device (index or name)")
    ap.add_argument("-n", "--chunk_factor", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=None, help="device block in samples (default: one chunk)")
    ap.add_argument("--device-rate", type=int, default=None, help="device sample rate (default: the model's)")
    ap.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, sr = load_model(args.checkpoint_path, args.config_path)
    conv = StreamingConverter(model, chunk_factor=args.chunk_factor)
    device_rate = args.device_rate or sr
    block = args.block_size or conv.chunk_samples * device_rate // sr
    live = LiveConverter(conv, sr, device_rate, block)
    dev = lambda d: int(d) if d is not None and str(d).isdigit() else d  # noqa: E731
    try:
        report = run_live(live, SoundDeviceBackend(dev(args.input_device), dev(args.output_device)), block, args.duration)
    except Exception as err:  # PortAudio errors: no device, unsupported rate, ...
        print(f"error: audio device: {err}", file=sys.stderr)
        return 2
    cb = np.array(report.callback_s) * 1e3 if report.callback_s else np.zeros(1)
    print(f"callbacks {report.callbacks}, deadline misses {report.deadline_misses}, input overflows "
          f"{report.input_overflows}, output underflows {report.output_underflows} (device) / {live.underruns} (fifo)")
    print(f"latency {live.latency_ms(report):.1f} ms (priming {live.prime_samples / live.device_rate * 1e3:.1f} ms, "
          f"block {report.block_s * 1e3:.1f} ms, device {sum(report.device_latency_s) * 1e3:.1f} ms); "
          f"callback p50 {np.percentile(cb, 50):.2f} ms p99 {np.percentile(cb, 99):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
