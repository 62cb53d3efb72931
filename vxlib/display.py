"""Notebook display helpers: audio players, waveform/spectrogram/f0 plots.

Everything a notebook shows more than once lives here so that notebooks stay thin. Widgets are
imported lazily: the plotting functions work in scripts and tests without ipywidgets.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
import soundfile as sf

__all__ = ["wav_bytes", "audio_player", "audio_table", "plot_waveform", "plot_spectrogram", "plot_audio"]


def wav_bytes(wav: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes (what browsers play); float audio is clipped to [-1, 1] first."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wav, np.float32), -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def audio_player(wav: np.ndarray, sample_rate: int, title: str = ""):
    """An ipywidgets audio player with a caption (duration and rate are shown)."""
    import ipywidgets as w

    caption = f"{title} — {len(wav) / sample_rate:.2f} s @ {sample_rate} Hz" if title else f"{len(wav) / sample_rate:.2f} s @ {sample_rate} Hz"
    player = w.Audio(value=wav_bytes(wav, sample_rate), format="wav", autoplay=False, loop=False)
    return w.VBox([w.Label(caption), player])


def audio_table(rows: Mapping[str, Mapping[str, tuple[np.ndarray, int]]]):
    """A grid of players: ``{row_name: {column_name: (wav, sr)}}`` (e.g. pairs × original/converted)."""
    import ipywidgets as w

    columns: list[str] = []
    for cols in rows.values():
        columns += [c for c in cols if c not in columns]
    header = [w.Label("")] + [w.HTML(f"<b>{c}</b>") for c in columns]
    cells = list(header)
    for name, cols in rows.items():
        cells.append(w.HTML(f"<b>{name}</b>"))
        for c in columns:
            cells.append(audio_player(*cols[c]) if c in cols else w.Label("—"))
    return w.GridBox(cells, layout=w.Layout(grid_template_columns=f"repeat({len(columns) + 1}, auto)"))


def plot_waveform(ax, wav: np.ndarray, sample_rate: int, title: str = "") -> None:
    t = np.arange(len(wav)) / sample_rate
    ax.plot(t, wav, lw=0.5)
    ax.set(xlabel="time (s)", ylabel="amplitude", title=title, xlim=(0, t[-1] if len(t) else 1))


def plot_spectrogram(ax, wav: np.ndarray, sample_rate: int, title: str = "", n_fft: int = 1024,
                     hop: int | None = None, f0: np.ndarray | None = None, f0_hop_s: float = 0.01) -> None:
    """Log-magnitude STFT in dB (Hann window); an optional f0 track (Hz, 0 = unvoiced) is overlaid."""
    import librosa

    hop = hop or n_fft // 4
    spec = np.abs(librosa.stft(np.asarray(wav, np.float32), n_fft=n_fft, hop_length=hop))
    db = librosa.amplitude_to_db(spec, ref=np.max, top_db=80)
    extent = (0, len(wav) / sample_rate, 0, sample_rate / 2)
    ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=title)
    if f0 is not None:  # on its own axis: on a 0..sr/2 scale a pitch track would hug the floor
        f = np.where(np.asarray(f0) > 0, f0, np.nan)
        top = max(400.0, 1.25 * float(np.nanmax(f))) if np.isfinite(f).any() else 400.0
        ax_f0 = ax.twinx()
        ax_f0.plot(np.arange(len(f)) * f0_hop_s, f, color="cyan", lw=1.4)
        ax_f0.set(ylim=(0, top), ylabel="f0 (Hz)")
        ax_f0.yaxis.label.set_color("tab:cyan")


def plot_audio(items: Sequence[tuple[str, np.ndarray, int]], figsize_per_row: tuple[float, float] = (12, 2.2)):
    """Waveform and spectrogram side by side for each ``(title, wav, sr)``; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(items), 2, figsize=(figsize_per_row[0], figsize_per_row[1] * len(items)), squeeze=False)
    for (title, wav, sr), (a, b) in zip(items, axes):
        plot_waveform(a, wav, sr, title)
        plot_spectrogram(b, wav, sr, title)
    fig.tight_layout()
    return fig
