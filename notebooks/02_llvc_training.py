# %% [markdown]
# # 02 · LLVC training: a GAN trainer that follows the paper's recipe
#
# LLVC (Sadov et al. 2023) is a small causal generator trained to imitate a heavier voice-conversion
# teacher: each training pair is an utterance (`PREFIX_original.wav`) and the teacher's conversion
# of it (`PREFIX_converted.wav`), time-aligned. Notebook 01 builds such pairs. This notebook
# trains on them with `vxlib.llvc.train`, the same trainer as the command line and `torchrun`:
#
# 1. the **generator** converts random `wav_len` crops; a **discriminator** (`rvc`: VITS scale +
#    period discriminators, or `hfg`: HiFi-GAN MSD + MPD) takes an LSGAN step on random
#    `segment_size` slices, real = teacher output, fake = generator output;
# 2. the generator then takes a step on adversarial + feature-matching + multi-resolution mel
#    losses (+ the HuBERT feature loss when `hubert_base_ls960.pt` is present: the log says which);
# 3. every `checkpoint_interval` steps it is **validated** on `val` (speakers seen in training) and
#    `dev` (unseen speakers) with the mel loss and mel-cepstral distortion, and official-format
#    `G_<step>.pth` / `D_<step>.pth` checkpoints are written.
#
# The default is the CPU-sized `llvc_tiny` recipe for a few minutes: the dev mel loss falls clearly
# below its step-0 value, which is what this run can show. The paper's model is `config = "llvc"`
# trained for 500k steps on a GPU (about 3 days on an RTX 3090); fine-tune the released generator
# with `init_from`.
#
# Run it interactively, or in batch with `./vx run 02`.

# %% tags=["parameters"]
run_dir = "../experiments/runs/interactive"  # checkpoints, tracking files, figures and metrics go here
dataset_dir = ""  # pairs from notebook 01 (train, val, dev folders); empty uses the run's data/pairs
config = "llvc_tiny"  # an experiment under experiments/ (llvc_tiny, llvc, llvc_hfg, llvc_nc) or a config.json path
steps = 150  # total optimiser steps of the run (a resumed run counts the steps it already made)
resume = False  # continue from the latest G/D checkpoint pair of this run
init_from = ""  # a G_<step>.pth to fine-tune from, e.g. the released G_500000.pth; empty starts from scratch
device = "auto"  # auto (CUDA when available), cpu or cuda
threads = 1  # torch CPU threads: 1 is fastest on a shared machine, 2 on an idle 2-core one
tracking = "none"  # none or wandb (offline unless WANDB_MODE is set to online)
seed = 0  # replaces the config's seed: initial weights, data order, crops and dropout follow from it

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from vxlib import audio, display as vxdisplay
from vxlib.data.pairs import list_pairs, validate_dataset
from vxlib.llvc.inference import load_config
from vxlib.llvc.train import LLVCTrainer, TrainOptions
from vxlib.run import REPO_ROOT, NotebookRecord
from vxlib.tracking import read_metrics

run_dir = Path(run_dir)
record = NotebookRecord(run_dir, "02_llvc_training")
dataset_dir = Path(dataset_dir) if dataset_dir else run_dir / "data" / "pairs"
config_path = Path(config) if config.endswith(".json") else REPO_ROOT / "experiments" / config / "config.json"
experiment_dir = run_dir / "llvc_training"  # the trainer's -d folder: config.json, checkpoints/, logs/
recipe = load_config(config_path)
recipe["seed"] = seed
experiment_dir.mkdir(parents=True, exist_ok=True)
(experiment_dir / "config.json").write_text(json.dumps(recipe, indent=2))  # what `-d` resumes with
torch.set_num_threads(threads)
sr = int(recipe["data"]["sr"])
print(f"recipe {config_path}; dataset {dataset_dir}; training folder {experiment_dir.resolve()}")

# %% [markdown]
# ## The paired data
# Every pair is checked before training (both halves present, readable, mono, 16 kHz, equal
# length): a bad file stops here with its name rather than half-way through a run.

# %%
report = validate_dataset(dataset_dir, sample_rate=sr)
display(pd.DataFrame({"pairs": report.pairs, "minutes": {k: 60 * v for k, v in report.hours.items()}}))
dev_prefix, dev_original_path, dev_converted_path = list_pairs(dataset_dir, "dev")[0]
dev_original, _ = audio.load(dev_original_path)
dev_target, _ = audio.load(dev_converted_path)
print(f"dev example {dev_prefix}: {len(dev_original) / sr:.2f} s")

# %% [markdown]
# ## Build the trainer
# The model sizes, losses and optimiser settings all come from the recipe; the log says whether the
# HuBERT feature loss is on.

# %%
trainer = LLVCTrainer(recipe, TrainOptions(
    run_dir=experiment_dir, data_dir=dataset_dir, max_steps=steps, resume=resume,
    init_from=Path(init_from) if init_from else None, tracking=tracking, device=None if device == "auto" else device, num_workers=0))
generator_parameters = sum(p.numel() for p in trainer.generator.parameters())
discriminator_parameters = sum(p.numel() for p in trainer.discriminator.parameters())
print(f"generator {generator_parameters:,} parameters, discriminator '{recipe['discriminator']}' "
      f"{discriminator_parameters:,}; starting at step {trainer.step}")
before = trainer.convert(dev_original)

# %% [markdown]
# ## Train
# Validation runs before the first step (the step-0 baseline), every `checkpoint_interval` steps and
# at the end; the reported speed counts training steps only.

# %%
final_metrics = trainer.fit()
trainer.close()
after = trainer.convert(dev_original)

# %% [markdown]
# ## Loss curves
# Training losses are running means over `log_interval` steps (the mel term unweighted); validation
# is scored on whole utterances of the `val` and `dev` splits.

# %%
rows = read_metrics(experiment_dir / "logs")
train_rows = pd.DataFrame([r for r in rows if "loss/g/mel" in r]).set_index("step")
valid_rows = pd.DataFrame([r for r in rows if "dev/mel" in r or "val/mel" in r]).set_index("step")
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
train_rows[["loss/g/mel"]].plot(ax=axes[0], title="generator mel loss (train)")
train_rows[["loss/d/total", "loss/g/adv"]].plot(ax=axes[1], title="adversarial terms (LSGAN)")
valid_rows[[c for c in ("val/mel", "dev/mel") if c in valid_rows]].plot(ax=axes[2], marker="o",
                                                                        title="validation mel loss")
for ax in axes:
    ax.set_xlabel("step")
fig.tight_layout()
record.figure("loss_curves", fig)
plt.show()
display(valid_rows.drop(columns=["time"], errors="ignore"))

# %% [markdown]
# ## Before and after: an unseen-speaker (dev) utterance
# The input, the teacher's conversion (the target), and the generator before and after this run.

# %%
display(vxdisplay.audio_table({dev_prefix: {"input": (dev_original, sr), "teacher (target)": (dev_target, sr),
                                            f"before (step {int(valid_rows.index[0])})": (before, sr),
                                            f"after (step {trainer.step})": (after, sr)}}))
fig = vxdisplay.plot_audio([("input", dev_original, sr), ("teacher (target)", dev_target, sr),
                            ("generator before training", before, sr), ("generator after training", after, sr)])
record.figure("dev_before_after", fig)
plt.show()

# %% [markdown]
# ## Record the results
# The first and last dev mel losses are what the batch summary reports; a clear drop shows the
# trainer works, not that the tiny model converts voices well.

# %%
dev_mel = valid_rows["dev/mel"].dropna()
results = {
    "config": config, "steps": trainer.step, "hubert_loss": trainer.hubert_status,
    "generator_parameters": generator_parameters,
    "dev_mel_first": float(dev_mel.iloc[0]), "dev_mel_final": float(dev_mel.iloc[-1]),
    "dev_mel_first_step": int(dev_mel.index[0]),
    "train_steps_per_s": float(train_rows["steps_per_s"].mean()),
    **{k.replace("/", "_"): v for k, v in final_metrics.items()},
}
record.metrics(results)
print(json.dumps(results, indent=2))
print(f"checkpoints: {sorted(p.name for p in (experiment_dir / 'checkpoints').glob('G_*.pth'))}")

# %% [markdown]
# ## Beyond this notebook
# - The same run from a shell: `python -m vxlib.llvc.train -d <run_dir>/llvc_training --data-dir <pairs> --steps N`,
#   continued after an interruption with `--resume` (no step is lost or repeated).
# - Several GPUs or machines: `torchrun --nproc_per_node=N -m vxlib.llvc.train -d experiments/llvc ...`.
# - Fine-tuning the released model: `init_from = ".../G_500000.pth"` with `config = "llvc"`.
# - A `G_<step>.pth` loads with `vxlib.llvc.load_model(checkpoint, config)` for conversion and streaming.
