# %% [markdown]
# # 00 · Quickstart: audio, plots, players and tracking
#
# This notebook proves the plumbing every other notebook relies on, with nothing downloaded:
#
# 1. a sound is **made on the spot** (a sung vowel glide with vibrato), written to disk and read back
#    through `vxlib.audio` — the same validated loader that reads corpora and checkpoints' test files;
# 2. its waveform and spectrogram are plotted;
# 3. it is played with an **ipywidgets** audio player;
# 4. a few numbers are logged through `vxlib.tracking` (offline wandb or none) and recorded for the
#    batch summary that `python -m vxlib.run` writes.
#
# Run it interactively, or in batch with `./vx run 00`.

# %% tags=["parameters"]
run_dir = "../experiments/runs/interactive"  # where tracking files, figures and metrics go
tracking = "none"  # none or wandb (offline unless WANDB_MODE is set to online)
sample_rate = 16000  # LLVC's working rate
duration_s = 2.0
f0_start_hz = 120.0  # the glide goes from here...
f0_end_hz = 220.0  # ...to here, with 5 Hz vibrato on top
seed = 0

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import vxlib
from vxlib import audio, display as vxdisplay, tracking as vxtracking
from vxlib.run import NotebookRecord

run_dir = Path(run_dir)
record = NotebookRecord(run_dir, "00_quickstart")
print(f"vxlib {vxlib.__version__}; run_dir = {run_dir.resolve()}")

# %% [markdown]
# ## A sound made on the spot
# A glottal-like pulse train (harmonics with a 1/k spectral tilt) whose pitch glides up, shaped by
# two formant resonances that move from /a/ towards /i/, plus a little breath noise.

# %%
rng = np.random.default_rng(seed)
n = int(duration_s * sample_rate)
t = np.arange(n) / sample_rate
f0 = np.geomspace(f0_start_hz, f0_end_hz, n) * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
phase = 2 * np.pi * np.cumsum(f0) / sample_rate
formants = np.stack([np.linspace(700, 300, n), np.linspace(1200, 2300, n)])  # F1, F2 (Hz)
wave = np.zeros(n)
for k in range(1, int(sample_rate / 2 / f0_end_hz)):
    fk = k * f0
    gain = sum(1 / (1 + ((fk - F) / 90) ** 2) for F in formants) / k
    wave += np.where(fk < sample_rate / 2, gain, 0) * np.sin(k * phase)
wave += 0.01 * rng.standard_normal(n)
envelope = np.minimum(1, np.minimum(t, duration_s - t) / 0.05)
wave = (0.5 * wave * envelope / np.abs(wave).max()).astype(np.float32)

path = audio.save(run_dir / "quickstart" / "glide.wav", wave, sample_rate)
loaded, sr = audio.load(path)
meta = audio.info(path)
print(f"{path.name}: {meta.frames} samples, {meta.duration:.2f} s, {meta.sample_rate} Hz, {meta.subtype}")
print(f"max |saved - original| = {np.abs(loaded - wave).max():.2e} (16-bit quantisation)")

# %% [markdown]
# ## Waveform and spectrogram (the f0 track we synthesised is drawn on top)

# %%
fig, (ax_w, ax_s) = plt.subplots(1, 2, figsize=(13, 3.2))
vxdisplay.plot_waveform(ax_w, loaded, sr, "waveform")
vxdisplay.plot_spectrogram(ax_s, loaded, sr, "spectrogram", f0=f0[:: sr // 100], f0_hop_s=0.01)
fig.tight_layout()
record.figure("waveform_spectrogram", fig)
plt.show()

# %% [markdown]
# ## Listen

# %%
display(vxdisplay.audio_player(loaded, sr, "vowel glide"))

# %% [markdown]
# ## Track and record
# The same numbers go to the tracker (for wandb) and to the run's record (for the batch summary).

# %%
rms_db = float(20 * np.log10(np.sqrt(np.mean(loaded**2))))
spectrum = np.abs(np.fft.rfft(loaded * np.hanning(len(loaded))))
centroid_hz = float((np.fft.rfftfreq(len(loaded), 1 / sr) * spectrum).sum() / spectrum.sum())
with vxtracking.make_tracker(tracking, run_dir / "tracking" / "00_quickstart",
                             config={"sample_rate": sample_rate, "duration_s": duration_s, "seed": seed}) as tr:
    tr.log({"rms_db": rms_db, "spectral_centroid_hz": centroid_hz}, step=0)
    tr.log_audio("glide", loaded, sr, step=0)
    tr.log_figure("waveform_spectrogram", fig, step=0)
record.metrics({"duration_s": meta.duration, "rms_db": rms_db, "spectral_centroid_hz": centroid_hz,
                "tracking_backend": tracking})
print(record.data["metrics"])
