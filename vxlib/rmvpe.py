"""RMVPE: the pitch estimator RVC uses by default (and LLVC used to build its dataset, threshold 0.03).

A deep U-Net over a 128-band log-mel spectrogram, followed by a BiGRU and a 360-bin sigmoid
salience per 10 ms frame (20 cents a bin, from ~31.7 Hz up). Built bottom-up with the module
and attribute names of RVC's ``infer/lib/rmvpe.py`` (LLVC's ``minimal_rvc/rmvpe.py`` is the same
file), so RVC's ``assets/rmvpe/rmvpe.pt`` - a plain state dict of ``E2E(4, 1, (2, 2))`` - loads
unchanged: keys such as ``unet.encoder.layers.0.conv.0.conv.0.weight``, ``fc.0.gru.weight_ih_l0``.

Inference (:class:`RMVPE`), as RVC's ``infer_from_audio``:

1. 16 kHz float32 audio -> |STFT| (n_fft = window = 1024, periodic Hann, hop 160, centred with
   reflect padding: len//160 + 1 frames) -> 128 HTK-mel bands 30-8000 Hz with Slaney area
   normalisation (librosa's ``mel(..., htk=True)``) -> ``log(max(mel, 1e-5))``;
2. frames padded on the right to a multiple of 32 (five 2x poolings in time) in *reflect* mode,
   the network run once over the whole utterance, the output cut back to the real frames;
3. decoding: per frame, the salience-weighted mean of the cents of the 9 bins around the
   arg-max (the arrays zero-padded by 4 bins each side), 0 where the peak salience is <= the
   threshold; ``f0 = 10 * 2**(cents / 1200)`` Hz, 0 for unvoiced.

Padding of step 2: recent upstream RMVPE code pads in "constant" mode, but both RVC's WebUI file
and LLVC's ``minimal_rvc/rmvpe.py`` (the code behind the paper's dataset) use "reflect"; that is
what is done here. Where reflect padding is impossible (fewer than 17 frames, or audio of 512
samples or less for the STFT) the reference raises; here such inputs fall back to zero padding,
the other published variant, so very short clips still get an f0 track.

Precision: fp32 only (RVC can run the network in fp16 on GPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["E2E", "RMVPE", "LogMel", "mel_filterbank", "decode_salience", "local_average_cents",
           "save_random_init", "N_STATE_KEYS", "THRESHOLD"]

SAMPLE_RATE = 16000
HOP = 160  # 10 ms: 100 frames/s, the rate every vxlib f0 method returns
N_FFT = 1024  # also the window length
N_MELS = 128
MEL_FMIN, MEL_FMAX = 30.0, 8000.0
LOG_CLAMP = 1e-5
N_BINS = 360  # pitch classes, 20 cents apart
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents (re 10 Hz) of bin 0: 10 * 2**(1997.38/1200) = 31.7 Hz
FRAME_MULTIPLE = 32  # the U-Net halves time five times
THRESHOLD = 0.03  # RVC's (and LLVC's) voicing threshold on the peak salience
# Official state dict of E2E(4, 1, (2, 2)). A ConvBlockRes holds 2 convs + 2 BatchNorms (5 keys
# each, num_batches_tracked included) = 12 keys, +2 for a 1x1 shortcut when channels change.
# encoder: bn 5 + 5 layers x 4 blocks x 12 + 5 shortcuts x 2 = 255; intermediate: 4 x 4 x 12 + 2 = 194;
# decoder: 5 x (transposed conv 1 + bn 5 + 4 x 12 + shortcut 2) = 280; cnn 2; BiGRU 8 + Linear 2.
N_STATE_KEYS = 255 + 194 + 280 + 2 + 10  # 741

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------------------- network


class ConvBlockRes(nn.Module):
    """Two 3x3 conv-BN-ReLU layers with a residual path (1x1 conv where the channel count changes)."""

    def __init__(self, in_channels: int, out_channels: int, momentum: float = 0.01):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, (3, 3), padding=(1, 1), bias=False),
            nn.BatchNorm2d(out_channels, momentum=momentum),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, (3, 3), padding=(1, 1), bias=False),
            nn.BatchNorm2d(out_channels, momentum=momentum),
            nn.ReLU(),
        )
        # only where the channel count changes: whether it exists decides the state-dict keys
        self.is_shortcut = in_channels != out_channels
        if self.is_shortcut:
            self.shortcut = nn.Conv2d(in_channels, out_channels, (1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut(x) if self.is_shortcut else x
        return self.conv(x) + residual  # (B, C_out, T, F)


class ResEncoderBlock(nn.Module):
    """``n_blocks`` ConvBlockRes; with a pooling kernel, also returns the pooled tensor.

    The un-pooled tensor is the U-Net skip connection; the intermediate stage uses the block
    without pooling (``kernel_size=None``) and gets a single tensor back.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int] | None,
                 n_blocks: int = 1, momentum: float = 0.01):
        super().__init__()
        self.conv = nn.ModuleList([ConvBlockRes(in_channels, out_channels, momentum)]
                                  + [ConvBlockRes(out_channels, out_channels, momentum) for _ in range(n_blocks - 1)])
        self.kernel_size = kernel_size
        if kernel_size is not None:
            self.pool = nn.AvgPool2d(kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        for block in self.conv:
            x = block(x)  # (B, C_out, T, F)
        if self.kernel_size is None:
            return x
        return x, self.pool(x)  # skip (B, C_out, T, F), pooled (B, C_out, T/2, F/2)


class Encoder(nn.Module):
    """Input BatchNorm, then ``n_encoders`` pooled blocks doubling the channels (1 -> 16 -> ... -> 256)."""

    def __init__(self, in_channels: int, in_size: int, n_encoders: int, kernel_size: tuple[int, int],
                 n_blocks: int, out_channels: int = 16, momentum: float = 0.01):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels, momentum=momentum)
        self.layers = nn.ModuleList()
        for _ in range(n_encoders):
            self.layers.append(ResEncoderBlock(in_channels, out_channels, kernel_size, n_blocks, momentum))
            in_channels, out_channels, in_size = out_channels, out_channels * 2, in_size // 2
        self.out_size = in_size  # mel bands left after pooling (128 / 32 = 4)
        self.out_channel = out_channels  # twice the last block's channels: the intermediate's width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.bn(x)  # (B, 1, T, 128)
        skips = []
        for layer in self.layers:
            skip, x = layer(x)
            skips.append(skip)
        return x, skips  # (B, 256, T/32, 4), skips from (B, 16, T, 128) to (B, 256, T/16, 8)


class Intermediate(nn.Module):
    """``n_inters`` un-pooled blocks at the bottom of the U-Net (256 -> 512, then 512 -> 512)."""

    def __init__(self, in_channels: int, out_channels: int, n_inters: int, n_blocks: int, momentum: float = 0.01):
        super().__init__()
        self.layers = nn.ModuleList(
            [ResEncoderBlock(in_channels, out_channels, None, n_blocks, momentum)]
            + [ResEncoderBlock(out_channels, out_channels, None, n_blocks, momentum) for _ in range(n_inters - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x  # (B, 512, T/32, 4)


class ResDecoderBlock(nn.Module):
    """Transposed-conv upsampling, concatenation with the encoder's skip, then ``n_blocks`` ConvBlockRes."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int], n_blocks: int = 1,
                 momentum: float = 0.01):
        super().__init__()
        # output_padding makes the size exactly double (3x3 kernel, padding 1)
        out_padding = (0, 1) if tuple(stride) == (1, 2) else (1, 1)
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, (3, 3), stride=stride, padding=(1, 1),
                               output_padding=out_padding, bias=False),
            nn.BatchNorm2d(out_channels, momentum=momentum),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList([ConvBlockRes(out_channels * 2, out_channels, momentum)]
                                   + [ConvBlockRes(out_channels, out_channels, momentum) for _ in range(n_blocks - 1)])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, C_out, 2T', 2F')
        x = torch.cat((x, skip), dim=1)  # (B, 2 C_out, 2T', 2F')
        for block in self.conv2:
            x = block(x)
        return x  # (B, C_out, 2T', 2F')


class Decoder(nn.Module):
    """``n_decoders`` upsampling blocks halving the channels (512 -> 256 -> ... -> 16), skips deepest first."""

    def __init__(self, in_channels: int, n_decoders: int, stride: tuple[int, int], n_blocks: int,
                 momentum: float = 0.01):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(n_decoders):
            self.layers.append(ResDecoderBlock(in_channels, in_channels // 2, stride, n_blocks, momentum))
            in_channels //= 2

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips)):
            x = layer(x, skip)
        return x  # (B, 16, T, 128)


class DeepUnet(nn.Module):
    def __init__(self, kernel_size: tuple[int, int], n_blocks: int, en_de_layers: int = 5, inter_layers: int = 4,
                 in_channels: int = 1, en_out_channels: int = 16):
        super().__init__()
        self.encoder = Encoder(in_channels, N_MELS, en_de_layers, kernel_size, n_blocks, en_out_channels)
        self.intermediate = Intermediate(self.encoder.out_channel // 2, self.encoder.out_channel, inter_layers,
                                         n_blocks)
        self.decoder = Decoder(self.encoder.out_channel, en_de_layers, kernel_size, n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)  # (B, 256, T/32, 4)
        x = self.intermediate(x)  # (B, 512, T/32, 4)
        return self.decoder(x, skips)  # (B, 16, T, 128)


class BiGRU(nn.Module):
    """Bidirectional batch-first GRU returning only the output sequence (so it fits in ``nn.Sequential``)."""

    def __init__(self, input_features: int, hidden_features: int, num_layers: int):
        super().__init__()
        self.gru = nn.GRU(input_features, hidden_features, num_layers=num_layers, batch_first=True,
                          bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]  # (B, T, 2 hidden)


class E2E(nn.Module):
    """Log-mel (B, 128, T) -> pitch salience (B, T, 360) in [0, 1]; T must be a multiple of 32.

    RVC's ``rmvpe.pt`` is ``E2E(n_blocks=4, n_gru=1, kernel_size=(2, 2))``.
    """

    def __init__(self, n_blocks: int = 4, n_gru: int = 1, kernel_size: tuple[int, int] = (2, 2),
                 en_de_layers: int = 5, inter_layers: int = 4, in_channels: int = 1, en_out_channels: int = 16):
        super().__init__()
        self.unet = DeepUnet(kernel_size, n_blocks, en_de_layers, inter_layers, in_channels, en_out_channels)
        self.cnn = nn.Conv2d(en_out_channels, 3, (3, 3), padding=(1, 1))
        # Dropout is inert at inference; it stays so that the Linear keeps the index "fc.1"
        if n_gru:
            self.fc = nn.Sequential(BiGRU(3 * N_MELS, 256, n_gru), nn.Linear(512, N_BINS), nn.Dropout(0.25),
                                    nn.Sigmoid())
        else:
            self.fc = nn.Sequential(nn.Linear(3 * N_MELS, N_BINS), nn.Dropout(0.25), nn.Sigmoid())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.transpose(-1, -2).unsqueeze(1)  # (B, 1, T, 128)
        x = self.cnn(self.unet(x))  # (B, 3, T, 128)
        x = x.transpose(1, 2).flatten(-2)  # (B, T, 384)
        return self.fc(x)  # (B, T, 360)


# ---------------------------------------------------------------------------------------------- front end


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = MEL_FMIN,
                   fmax: float = MEL_FMAX) -> np.ndarray:
    """(n_mels, n_fft//2 + 1) float64 triangles on the HTK mel scale, Slaney area-normalised.

    The same numbers as ``librosa.filters.mel(..., htk=True)`` (default ``norm="slaney"``), which
    RVC uses; written out so that inference needs no librosa and the test can check against it.
    """
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)

    fft_hz = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)  # (F,)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,)
    width = np.diff(edges)  # (n_mels + 1,)
    ramps = edges[:, None] - fft_hz[None, :]  # (n_mels + 2, F)
    rising = -ramps[:-2] / width[:-1, None]  # (n_mels, F)
    falling = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band


class LogMel(nn.Module):
    """16 kHz audio (B, N) -> natural-log mel magnitude (B, 128, N//160 + 1), RVC's RMVPE front end.

    RVC computes the STFT as a convolution with a windowed Fourier basis after reflect-padding by
    n_fft/2; ``torch.stft(center=True)`` is the same transform. Magnitude, not power.
    """

    def __init__(self, dtype: torch.dtype = torch.float32):
        super().__init__()
        # not part of rmvpe.pt: recomputed, never loaded
        self.register_buffer("window", torch.hann_window(N_FFT, dtype=dtype), persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank()).to(dtype), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        # reflect padding needs more than n_fft/2 samples; shorter clips are zero-padded instead
        pad_mode = "reflect" if audio.shape[-1] > N_FFT // 2 else "constant"
        spec = torch.stft(audio, N_FFT, hop_length=HOP, win_length=N_FFT, window=self.window, center=True,
                          pad_mode=pad_mode, return_complex=True)  # (B, 513, T)
        magnitude = torch.sqrt(spec.real ** 2 + spec.imag ** 2)
        mel = torch.matmul(self.mel_basis, magnitude)  # (B, 128, T)
        return torch.log(torch.clamp(mel, min=LOG_CLAMP))


# ---------------------------------------------------------------------------------------------- decoding

# cents of each bin, zero-padded by 4 bins each side like the salience (RVC's 368-entry table)
CENTS = np.pad(CENTS_PER_BIN * np.arange(N_BINS) + CENTS_OFFSET, (4, 4))


def local_average_cents(salience: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """(T, 360) salience -> (T,) cents re 10 Hz: weighted mean of the 9 bins around the peak, 0 if unvoiced.

    Averaging only near the arg-max gives sub-bin resolution without an octave error pulling
    the estimate halfway; a frame is unvoiced when its peak salience is <= ``threshold``.
    """
    padded = np.pad(salience, ((0, 0), (4, 4)))  # (T, 368)
    # bins center-4 .. center+4 of the unpadded array are padded columns center .. center+8
    idx = np.argmax(salience, axis=1)[:, None] + np.arange(9)  # (T, 9)
    weights = np.take_along_axis(padded, idx, axis=1)  # (T, 9)
    with np.errstate(divide="ignore", invalid="ignore"):  # all-zero windows are unvoiced below anyway
        cents = np.sum(weights * CENTS[idx], axis=1) / np.sum(weights, axis=1)  # (T,)
    cents[np.max(padded, axis=1) <= threshold] = 0
    return cents


def decode_salience(salience: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """(T, 360) salience -> f0 Hz float64 (T,), 0 where unvoiced (RVC's ``decode``)."""
    f0 = 10.0 * 2.0 ** (local_average_cents(salience, threshold) / 1200.0)
    f0[f0 == 10.0] = 0.0  # 0 cents: the unvoiced marker
    return f0


# ---------------------------------------------------------------------------------------------- loading


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from vxlib.data.teachers.rvc.checkpoint import read_torch_file

    state = read_torch_file(path, f"{path}: RMVPE weights not found (RVC ships them as assets/rmvpe/rmvpe.pt)")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = f"a dict with keys {sorted(map(str, state))[:5]}" if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: expected a plain state dict (name -> tensor) as RVC's rmvpe.pt, found {found}")
    return state


def load_e2e(path: PathLike) -> E2E:
    """``E2E(4, 1, (2, 2))`` with the weights of an official ``rmvpe.pt``, in eval mode, float32, on CPU.

    Every missing, unexpected or mis-shaped key is listed before failing. Tensors may be stored
    in float16 (RVC's file is: 181 MB for 90.4 M parameters) and are upcast on loading, as
    ``load_state_dict`` does for RVC. BatchNorm's ``num_batches_tracked`` counters may be
    absent (``load_state_dict`` itself fills them in for old files); inference never reads them.
    """
    from vxlib.data.teachers.rvc.checkpoint import load_state_dict_checked

    p = Path(path)
    state = _read_state_dict(p)
    model = E2E(n_blocks=4, n_gru=1, kernel_size=(2, 2))
    counters = {k: torch.zeros((), dtype=torch.long) for k in model.state_dict()
                if k.endswith(".num_batches_tracked") and k not in state}
    load_state_dict_checked(model, {**state, **counters}, str(p), ignore_prefixes=())
    return model.eval()


def save_random_init(path: PathLike, seed: int = 0, dtype: torch.dtype = torch.float16) -> Path:
    """Write a random ``E2E(4, 1, (2, 2))`` in the layout of RVC's ``rmvpe.pt`` (tests; no trained weights).

    Same keys and shapes; floating tensors in ``dtype`` (float16 as the official file, whose size
    is half the float32 parameter bytes). BatchNorm statistics are randomised too, so a load that
    skipped them would show. The global RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = E2E(n_blocks=4, n_gru=1, kernel_size=(2, 2))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}, p)
    return p


# ---------------------------------------------------------------------------------------------- inference


class RMVPE:
    """Inference: 16 kHz audio -> f0 Hz at 100 frames/s (``len//160 + 1`` frames), as RVC's ``RMVPE``."""

    def __init__(self, model: E2E, device: str | torch.device = "cpu", source: str = "E2E"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.mel = LogMel().to(self.device)
        self.source = source

    @classmethod
    def from_pretrained(cls, path: PathLike, device: str | torch.device = "cpu") -> RMVPE:
        """Load RVC's ``rmvpe.pt`` (a plain state dict, read with ``weights_only=True``)."""
        return cls(load_e2e(path), device, source=str(path))

    @torch.inference_mode()
    def salience(self, audio_16k: np.ndarray) -> np.ndarray:
        """(N,) audio at 16 kHz -> (N//160 + 1, 360) float32 salience."""
        audio = np.asarray(audio_16k)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"RMVPE expects non-empty 1-D audio at 16 kHz, got shape {audio.shape}")
        x = torch.from_numpy(audio.astype(np.float32)).to(self.device)[None]  # (1, N)
        mel = self.mel(x)  # (1, 128, T)
        n_frames = mel.shape[-1]
        pad = -n_frames % FRAME_MULTIPLE
        # reflect as RVC/LLVC; it needs pad < n_frames, true from 17 frames on
        mel = F.pad(mel, (0, pad), mode="reflect" if pad < n_frames else "constant")  # (1, 128, T')
        hidden = self.model(mel)[:, :n_frames]  # (1, T, 360)
        return hidden[0].float().cpu().numpy()

    def infer(self, audio_16k: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
        """(N,) audio at 16 kHz -> f0 Hz float64 (N//160 + 1,), 0 where unvoiced."""
        return decode_salience(self.salience(audio_16k), threshold)
