"""LLVC GAN training, driven by an official ``config.json`` (``experiments/llvc``, ``llvc_hfg``,
``llvc_nc``) or the CPU-sized ``experiments/llvc_tiny``.

    python -m vxlib.llvc.train -d experiments/llvc_tiny --data-dir data/pairs_tiny --steps 300
    python -m vxlib.llvc.train -d experiments/llvc --resume                 # continue the latest
    python -m vxlib.llvc.train -d experiments/my_ft --init-from G_500000.pth  # fine-tune
    torchrun --nproc_per_node=4 -m vxlib.llvc.train -d experiments/llvc     # DDP (NCCL / gloo)

``-d DIR`` holds ``config.json``; checkpoints go to ``DIR/checkpoints/{G,D}_<step>.pth`` (the
official format ``{'model', 'optimizer', 'learning_rate', 'epoch', 'step'}``; a ``G_`` file loads
with :func:`vxlib.llvc.inference.load_model`), tracking files to ``DIR/logs``.

One step (the paper's recipe): the generator converts a batch of ``wav_len`` clips; the
discriminator takes an LSGAN step on random ``segment_size`` slices (real = target, fake =
detached output); the generator takes a step on ``disc_loss_c`` x adversarial +
``feature_loss_c`` x feature matching (full clips) + ``aux_mel.c`` x multi-resolution mel loss +
``aux_fairseq.c`` x HuBERT feature MSE. AdamW for both with the config's betas/eps, gradient-norm
clipping at ``grad_clip_threshold`` (and value clipping at ``grad_clip_value`` if set), learning
rate ``lr * lr_decay ** epoch``, fp16/bf16 autocast on CUDA.

Defects of the reference ``train.py`` that this trainer fixes:

- its discriminator step called ``net_d(output, gt)``: the discriminator learnt to call the
  generator's output real and the target fake, inverting the adversarial game. Here real is
  always the target (``tests/llvc_train`` checks the orientation);
- its validation scored the *training* batch with the mel loss and only the last validation
  batch with "MCD" (an L1 distance between MFCCs); here every validation batch is scored, per
  utterance at its own length, with the mel loss and a real mel-cepstral distortion in dB;
- it needed fairseq (not importable on Python >= 3.11) for the HuBERT loss: the checkpoint is
  read by :mod:`vxlib.hubert`; without the file the loss is off and the log says so;
- it spawned one process per GPU itself and, without a GPU, trained nothing; here ``torchrun``
  starts the processes (NCCL on GPU, gloo on CPU; multi-node via torchrun's rendezvous flags);
- resuming restarted the interrupted epoch with a fresh shuffle; here the data order, crops,
  segment slices and dropout are functions of ``(seed, epoch / step, rank)``, so a resumed run
  continues exactly where it stopped: N steps straight equal k steps + resume + N - k;
- checkpoints were written in place (a kill mid-write left a corrupt latest checkpoint); here
  they appear atomically, D before G, and only a step with both files counts as resumable;
- training ran for a hard-coded 10000 epochs; ``--steps`` sets the budget, and SIGTERM / Ctrl-C
  finish the step in progress, write a checkpoint and exit, so a killed job loses no steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from vxlib.llvc.discriminators import Discriminator, build_discriminator
from vxlib.llvc.inference import build_model, check_state_dict, load_config
from vxlib.llvc.losses import (HubertFeatureLoss, MultiResolutionMelLoss, discriminator_loss,
                               feature_matching_loss, generator_adversarial_loss)
from vxlib.llvc.model import Net
from vxlib.llvc.pair_loader import DatasetError, EpochBatchSampler, PairDataset, collate_pairs

__all__ = ["TrainOptions", "DistributedContext", "LLVCTrainer", "CHECKPOINT_KEYS", "checkpoint_path",
           "latest_checkpoint_step", "read_checkpoint", "save_checkpoint_atomic", "random_segments", "step_seed",
           "main"]

PathLike = str | os.PathLike
CHECKPOINT_KEYS = ("model", "optimizer", "learning_rate", "epoch", "step")
REQUIRED_CONFIG_KEYS = ("data", "model_params", "optim", "lr_sched", "batch_size", "eval_batch_size", "segment_size",
                        "log_interval", "checkpoint_interval", "aux_mel", "aux_fairseq", "disc_loss_c",
                        "feature_loss_c", "seed", "discriminator")


# ----------------------------------------------------------------------------------------------
# Checkpoints.


def checkpoint_path(checkpoint_dir: PathLike, kind: str, step: int) -> Path:
    """``<dir>/G_<step>.pth`` or ``D_<step>.pth``."""
    if kind not in ("G", "D"):
        raise ValueError(f"checkpoint kind must be 'G' or 'D', got {kind!r}")
    return Path(checkpoint_dir) / f"{kind}_{step}.pth"


def resolve_generator(path: PathLike) -> Path:
    """A generator checkpoint from a ``G_<step>.pth`` file, a ``checkpoints/`` folder or a training folder
    (``-d`` of this trainer): folders give their latest complete step. Notebooks chain on this, so a
    profile can name notebook 02's folder without knowing how many steps it ran."""
    p = Path(path)
    if p.is_file():
        return p
    for d in (p / "checkpoints", p):
        step = latest_checkpoint_step(d)
        if step is not None:
            return checkpoint_path(d, "G", step)
    raise FileNotFoundError(f"{p}: no G_<step>.pth (with its D_<step>.pth) here or in {p / 'checkpoints'}")


def latest_checkpoint_step(checkpoint_dir: PathLike) -> int | None:
    """Highest step for which both ``G_<step>.pth`` and ``D_<step>.pth`` exist (None if none)."""
    d = Path(checkpoint_dir)
    if not d.is_dir():
        return None

    def steps(kind: str) -> set[int]:
        return {int(m.group(1)) for p in d.glob(f"{kind}_*.pth") if (m := re.fullmatch(rf"{kind}_(\d+)\.pth", p.name))}

    both = steps("G") & steps("D")
    return max(both) if both else None


def save_checkpoint_atomic(path: PathLike, payload: Mapping[str, Any]) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``:
    readers see the old file or the complete new one, never a partial write."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(dict(payload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def read_checkpoint(path: PathLike) -> dict[str, Any]:
    """An official-format G/D checkpoint, loaded with ``weights_only=True``; a file that is not
    one raises naming the file and the missing keys."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint file not found")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{p}: not a loadable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(blob, dict) or not isinstance(blob.get("model"), dict):
        raise ValueError(f"{p}: expected an official checkpoint {{'model': state_dict, ...}}")
    return blob


def _load_training_state(path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    blob = read_checkpoint(path)
    missing = [k for k in CHECKPOINT_KEYS if k not in blob]
    if optimizer is not None and missing:
        raise ValueError(f"{path}: cannot resume from it: missing {', '.join(missing)}")
    check_state_dict(module, blob["model"], str(path))
    module.load_state_dict(blob["model"])
    if optimizer is not None:
        optimizer.load_state_dict(blob["optimizer"])
    return blob


# ----------------------------------------------------------------------------------------------
# Processes and devices.


@dataclass
class DistributedContext:
    """Rank, world size and device of this process (world size 1 without torch.distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def setup(cls, device: str | None = None) -> "DistributedContext":
        """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU), or use one that is
        already initialised (tests), or run as a single process. ``device`` None picks CUDA if any."""
        use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
        if dist.is_torchelastic_launched() and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        if not dist.is_initialized():
            return cls(device=torch.device(device or ("cuda" if use_cuda else "cpu")))
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = dist.get_node_local_rank(fallback_rank=rank)
        if use_cuda:
            torch.cuda.set_device(local_rank)
            return cls(rank, world, local_rank, torch.device("cuda", local_rank))
        return cls(rank, world, local_rank, torch.device("cpu"))


def step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of everything random in one step (dropout, segment slices): a function of
    ``(seed, rank, step)`` only, so a resumed run draws exactly what an uninterrupted one would."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def random_segments(real: torch.Tensor, fake: torch.Tensor, size: int, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``size``-sample window (one per batch item) of ``real`` and ``fake`` ``(B, 1, T)``."""
    B, _, T = real.shape
    if size >= T:
        return real, fake
    starts = torch.randint(0, T - size + 1, (B,), generator=generator)
    index = (starts[:, None] + torch.arange(size)).to(real.device)[:, None, :]  # (B, 1, size)
    return real.gather(-1, index), fake.gather(-1, index)


# ----------------------------------------------------------------------------------------------
# The trainer.


@dataclass
class TrainOptions:
    """Run-time choices that are not part of the model recipe (the recipe is the config)."""

    run_dir: Path  # checkpoints/ and logs/ go here
    data_dir: Path | None = None  # default: the config's data.dir (relative to the working dir)
    max_steps: int | None = None  # total optimizer steps of the run; None trains until interrupted
    resume: bool = False  # continue from the latest G_/D_ pair in run_dir/checkpoints
    init_from: Path | None = None  # fine-tune: start the generator from this G_<step>.pth
    tracking: str = "none"  # none | wandb
    device: str | None = None  # None: CUDA when available
    precision: str | None = None  # fp32 | fp16 | bf16; None: fp16 if config fp16_run and CUDA, else fp32
    num_workers: int = 0  # DataLoader worker processes
    eval_at_start: bool = True  # validate before the first step (the step-0 baseline)
    hubert_checkpoint: Path | None = None  # default: config aux_fairseq.checkpoint_path
    test_dir: Path | None = None  # default: config test_dir, if it exists
    log: Callable[[str], None] = print


class LLVCTrainer:
    """Builds the models, data, losses and optimizers of one run and trains them.

    ``train_step(original, target)`` is one GAN step on a batch ``(B, 1, T)``; ``fit()`` runs the
    loop with logging, validation and checkpoints; ``evaluate()`` scores val/dev; ``convert()``
    runs the current generator on a waveform.
    """

    def __init__(self, config: Mapping[str, Any], options: TrainOptions, ctx: DistributedContext | None = None):
        self.config = dict(config)
        self.options = options
        self.ctx = ctx or DistributedContext.setup(options.device)
        self._check_config()
        c = self.config
        self.run_dir = Path(options.run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.seed = int(c["seed"])
        self.sample_rate = int(c["data"]["sr"])
        device = self.ctx.device

        torch.manual_seed(self.seed)  # identical initial weights on every rank (DDP also broadcasts)
        self.generator: Net = build_model(c, "config").to(device)
        self.discriminator: Discriminator = build_discriminator(c).to(device)
        self.mel_loss = MultiResolutionMelLoss.from_config(c).to(device)
        self.hubert_loss = self._build_hubert_loss()
        optim = c["optim"]
        adamw = dict(lr=optim["lr"], betas=tuple(optim["betas"]), eps=optim["eps"], weight_decay=optim["weight_decay"])
        self.optim_g = torch.optim.AdamW(self.generator.parameters(), **adamw)
        self.optim_d = torch.optim.AdamW(self.discriminator.parameters(), **adamw)
        self.autocast_dtype, self.scaler = self._precision()

        self._build_data()
        self.step = 0
        self._stop_requested = False
        self._restore()
        if self.ctx.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.g_train = DistributedDataParallel(self.generator, device_ids=ids)
            self.d_train = DistributedDataParallel(self.discriminator, device_ids=ids)
        else:
            self.g_train, self.d_train = self.generator, self.discriminator
        self.tracker = None
        if self.ctx.is_main:
            from vxlib.tracking import make_tracker

            self.tracker = make_tracker(options.tracking, self.run_dir / "logs",
                                        config={**c, "run_options": self._options_record()})

    # -- setup ------------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        if self.ctx.is_main:
            self.options.log(f"[llvc.train] {message}")

    def _check_config(self) -> None:
        missing = [k for k in REQUIRED_CONFIG_KEYS if k not in self.config]
        if missing:
            raise ValueError(f"training config lacks {', '.join(missing)} (see experiments/llvc/config.json)")
        wav_len, seg = int(self.config["data"]["wav_len"]), int(self.config["segment_size"])
        if seg <= 0 or wav_len <= 0:
            raise ValueError(f"data.wav_len ({wav_len}) and segment_size ({seg}) must be positive")
        if seg > wav_len:
            raise ValueError(f"segment_size ({seg}) exceeds data.wav_len ({wav_len})")

    def _options_record(self) -> dict[str, Any]:
        o = self.options
        return {"data_dir": str(self.data_dir), "max_steps": o.max_steps, "resume": o.resume,
                "init_from": None if o.init_from is None else str(o.init_from), "device": str(self.ctx.device),
                "world_size": self.ctx.world_size, "precision": str(self.autocast_dtype or "fp32"),
                "hubert_loss": self.hubert_status}

    def _precision(self) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
        choice = self.options.precision
        on_cuda = self.ctx.device.type == "cuda"
        if choice is None:
            choice = "fp16" if (self.config.get("fp16_run") and on_cuda) else "fp32"
        if choice == "fp32":
            return None, None
        if choice not in ("fp16", "bf16"):
            raise ValueError(f"precision must be fp32, fp16 or bf16, got {choice!r}")
        if not on_cuda:
            raise ValueError(f"precision {choice} (autocast) is for CUDA; this run is on {self.ctx.device}")
        if choice == "bf16":
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")

    def _build_hubert_loss(self) -> HubertFeatureLoss | None:
        aux = self.config["aux_fairseq"]
        weight = float(aux.get("c", 0))
        path = Path(self.options.hubert_checkpoint or aux.get("checkpoint_path") or "")
        if weight <= 0:
            self.hubert_status = "off (aux_fairseq.c is 0)"
        elif not path.is_file():
            self.hubert_status = (f"OFF: {path} not found, so aux_fairseq.c = {weight:g} is ignored and this run does "
                                  f"not follow the paper's loss (put hubert_base_ls960.pt there to enable it)")
        else:
            from vxlib.hubert import FairseqHubert

            hubert = FairseqHubert.from_checkpoint(path, self.ctx.device)
            self.hubert_status = f"on: {path}, weight {weight:g}"
            self.log(f"HuBERT feature loss {self.hubert_status}")
            return HubertFeatureLoss(hubert)
        self.log(f"HuBERT feature loss {self.hubert_status}")
        return None

    def _build_data(self) -> None:
        c = self.config
        self.data_dir = Path(self.options.data_dir or c["data"]["dir"])
        min_len = max(c["aux_mel"]["params"]["n_fft"]) // 2 + 1  # centred STFT reflect padding needs it
        self.train_set = PairDataset(self.data_dir, "train", self.sample_rate, int(c["data"]["wav_len"]),
                                     seed=self.seed, min_len=min_len)
        self.eval_sets: dict[str, PairDataset] = {}
        for split in ("val", "dev"):
            try:
                self.eval_sets[split] = PairDataset(self.data_dir, split, self.sample_rate, None, min_len=min_len)
            except DatasetError as err:
                self.log(f"no {split} validation: {err}")
        self.train_sampler = EpochBatchSampler(len(self.train_set), int(c["batch_size"]), self.ctx.world_size,
                                               self.ctx.rank, shuffle=True, seed=self.seed, drop_last=True)
        self.steps_per_epoch = len(self.train_sampler)
        self.log(f"data {self.data_dir}: {len(self.train_set)} train pairs ({self.steps_per_epoch} steps/epoch on "
                 f"{self.ctx.world_size} process(es)), " + ", ".join(f"{k} {len(v)}" for k, v in self.eval_sets.items()))

    def _restore(self) -> None:
        o = self.options
        latest = latest_checkpoint_step(self.checkpoint_dir)
        if latest is not None and not o.resume:
            raise FileExistsError(f"{self.checkpoint_dir} already holds checkpoints up to step {latest}: resume them "
                                  f"(--resume / resume=True) or train in another folder; starting over would mix runs")
        if o.resume and latest is None:
            self.log(f"--resume: no G_/D_ checkpoint pair in {self.checkpoint_dir}; starting at step 0")
        if latest is not None:
            g = _load_training_state(checkpoint_path(self.checkpoint_dir, "G", latest), self.generator, self.optim_g)
            d = _load_training_state(checkpoint_path(self.checkpoint_dir, "D", latest), self.discriminator, self.optim_d)
            if (g["step"], g["epoch"]) != (d["step"], d["epoch"]):
                raise ValueError(f"{self.checkpoint_dir}: G_{latest} (step {g['step']}, epoch {g['epoch']}) and D_{latest} "
                                 f"(step {d['step']}, epoch {d['epoch']}) disagree")
            self.step = int(g["step"])
            if int(g["epoch"]) != self.step // self.steps_per_epoch:
                self.log(f"warning: checkpoint epoch {g['epoch']} != step {self.step} // {self.steps_per_epoch} "
                         f"steps per epoch: the train split changed size, so the data order differs from the first run")
            self.log(f"resumed from {self.checkpoint_dir} at step {self.step} (epoch {g['epoch']}, lr {g['learning_rate']:.3g})"
                     + (f"; --init-from {o.init_from} ignored" if o.init_from else ""))
        elif o.init_from:
            blob = _load_training_state(Path(o.init_from), self.generator, None)
            self.log(f"generator initialised from {o.init_from} (its step {blob.get('step', '?')}); discriminator and "
                     f"optimizers start fresh, step counter at 0")

    # -- one step ----------------------------------------------------------------------------------

    def learning_rate(self, epoch: int) -> float:
        """``lr * lr_decay ** epoch`` (the reference's per-epoch ExponentialLR, stateless)."""
        return float(self.config["optim"]["lr"]) * float(self.config["lr_sched"]["lr_decay"]) ** epoch

    def _set_learning_rate(self, epoch: int) -> float:
        lr = self.learning_rate(epoch)
        for opt in (self.optim_g, self.optim_d):
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def _autocast(self):
        return torch.autocast(self.ctx.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def _clip(self, params) -> torch.Tensor:
        params = [p for p in params if p.grad is not None]
        threshold, value = self.config.get("grad_clip_threshold"), self.config.get("grad_clip_value")
        norm = torch.nn.utils.clip_grad_norm_(params, float(threshold) if threshold is not None else math.inf)
        if value is not None:
            torch.nn.utils.clip_grad_value_(params, float(value))
        return norm

    def _backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, params) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            norm = self._clip(params)
            optimizer.step()
            return norm
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        norm = self._clip(params)
        self.scaler.step(optimizer)
        return norm

    def train_step(self, original: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """One discriminator step and one generator step on ``(B, 1, T)`` input/target audio;
        returns the loss terms (unweighted, plus ``loss/g/total``) and gradient norms."""
        c = self.config
        device = self.ctx.device
        torch.manual_seed(step_seed(self.seed, self.ctx.rank, self.step))  # dropout
        slicer = torch.Generator().manual_seed(step_seed(self.seed + 1, self.ctx.rank, self.step))
        original, target = original.to(device, non_blocking=True), target.to(device, non_blocking=True)
        self.g_train.train()
        self.d_train.train()

        with self._autocast():
            output = self.g_train(original)  # (B, 1, T)

        # Discriminator: real = target, fake = output (detached), on random segment_size slices.
        real_seg, fake_seg = random_segments(target, output.detach(), int(c["segment_size"]), slicer)
        with self._autocast():
            d_out = self.d_train(real_seg, fake_seg)
        loss_d, real_terms, fake_terms = discriminator_loss(d_out.real_logits, d_out.fake_logits)
        grad_norm_d = self._backward_and_step(loss_d, self.optim_d, self.discriminator.parameters())

        # Generator: adversarial + feature matching on full clips, mel (+ HuBERT) losses.
        with self._autocast():
            d_out = self.d_train(target, output)
        adversarial, _ = generator_adversarial_loss(d_out.fake_logits)
        fm = feature_matching_loss(d_out.real_fmaps, d_out.fake_fmaps) * self.discriminator.feature_loss_scale
        mel = self.mel_loss(output, target)
        total = float(c["disc_loss_c"]) * adversarial + float(c["feature_loss_c"]) * fm + float(c["aux_mel"]["c"]) * mel
        stats = {"loss/g/adv": adversarial, "loss/g/fm": fm, "loss/g/mel": mel}
        if self.hubert_loss is not None:
            with self._autocast():
                hub = self.hubert_loss(output, target)
            total = total + float(c["aux_fairseq"]["c"]) * hub
            stats["loss/g/hubert"] = hub
        grad_norm_g = self._backward_and_step(total, self.optim_g, self.generator.parameters())
        if self.scaler is not None:
            self.scaler.update()
        self.step += 1

        stats.update({"loss/g/total": total, "loss/d/total": loss_d, "loss/d/real": sum(real_terms),
                      "loss/d/fake": sum(fake_terms), "grad_norm/g": grad_norm_g, "grad_norm/d": grad_norm_d})
        return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in stats.items()}

    # -- validation --------------------------------------------------------------------------------

    @torch.no_grad()
    def convert(self, audio: np.ndarray) -> np.ndarray:
        """The current generator (eval mode) on ``(T,)`` audio at the config's rate."""
        was_training = self.generator.training
        self.generator.eval()
        x = torch.as_tensor(np.asarray(audio, np.float32), device=self.ctx.device)[None, None]
        y = self.generator(x)[0, 0].float().cpu().numpy()
        self.generator.train(was_training)
        return y

    @torch.no_grad()
    def evaluate(self) -> tuple[dict[str, float], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Mean mel loss (unweighted) and MCD (dB, frame-aligned: pairs are time-aligned) over every
        utterance of ``val`` and ``dev``, each scored at its own length; HuBERT loss when on.

        Utterances are sharded over ranks and the sums all-reduced. Batches are zero-padded to the
        longest item: the generator is causal apart from its 1-frame lookahead and the decoder's
        13-frame blocks, so only the last block (<= 13 ms at L=16) of a shorter item can see the
        padding. Returns ``(metrics, examples)`` with the first ``(input, target, output)`` of each split.
        """
        from vxlib.eval.spectral import mcd_from_mel_cepstra, mel_cepstrum

        self.generator.eval()
        metrics, examples = {}, {}
        batch_size = int(self.config["eval_batch_size"])
        for split, dataset in self.eval_sets.items():
            indices = list(range(self.ctx.rank, len(dataset), self.ctx.world_size))
            sums = torch.zeros(4, dtype=torch.float64)  # mel, mcd, hubert, count
            for b in range(0, len(indices), batch_size):
                original, target, lengths = collate_pairs([dataset[i] for i in indices[b:b + batch_size]])
                with self._autocast():
                    output = self.generator(original.to(self.ctx.device)).float()
                target = target.to(self.ctx.device)
                for i, n in enumerate(lengths.tolist()):
                    out_i, tgt_i = output[i:i + 1, :, :n], target[i:i + 1, :, :n]
                    sums[0] += float(self.mel_loss(out_i, tgt_i))
                    out_np, tgt_np = out_i[0, 0].cpu().numpy(), tgt_i[0, 0].cpu().numpy()
                    sums[1] += mcd_from_mel_cepstra(mel_cepstrum(out_np, self.sample_rate, name=f"{split} output"),
                                                    mel_cepstrum(tgt_np, self.sample_rate, name=f"{split} target"),
                                                    align=False)
                    if self.hubert_loss is not None:
                        sums[2] += float(self.hubert_loss(out_i, tgt_i))
                    sums[3] += 1
                    if split not in examples:
                        examples[split] = (original[i, 0, :n].numpy(), tgt_np, out_np)
            if self.ctx.distributed:
                sums = sums.to(self.ctx.device)
                dist.all_reduce(sums)
                sums = sums.cpu()
            count = max(float(sums[3]), 1.0)
            metrics[f"{split}/mel"] = float(sums[0]) / count
            metrics[f"{split}/mcd_db"] = float(sums[1]) / count
            if self.hubert_loss is not None:
                metrics[f"{split}/hubert"] = float(sums[2]) / count
        self.generator.train()
        return metrics, examples

    def _test_wavs(self) -> list[Path]:
        d = self.options.test_dir or Path(self.config.get("test_dir") or "")
        if not str(d) or not Path(d).is_dir():
            return []
        return sorted(Path(d).glob("*.wav"))

    def _log_validation(self, metrics: Mapping[str, float], examples: Mapping[str, tuple]) -> None:
        if self.tracker is None:
            return
        from matplotlib.figure import Figure  # no pyplot: leaves a notebook's backend alone

        from vxlib import audio as vxaudio
        from vxlib.display import plot_spectrogram

        self.tracker.log(dict(metrics), step=self.step)
        for split, (inp, tgt, out) in examples.items():
            for name, wav in (("input", inp), ("target", tgt), ("output", out)):
                self.tracker.log_audio(f"{split}_audio/{name}", wav, self.sample_rate, step=self.step)
            fig = Figure(figsize=(14, 3), layout="tight")
            for ax, (name, wav) in zip(fig.subplots(1, 3), (("input", inp), ("target", tgt), ("output", out))):
                plot_spectrogram(ax, wav, self.sample_rate, f"{split} {name}", n_fft=512)
            self.tracker.log_figure(f"{split}_spectrograms", fig, step=self.step)
        for path in self._test_wavs():
            wav, _ = vxaudio.load(path, sr=self.sample_rate)  # the reference resampled test files too
            self.tracker.log_audio(f"test_audio/{path.stem}", self.convert(wav), self.sample_rate, step=self.step)

    # -- checkpoints -------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """``D_<step>.pth`` then ``G_<step>.pth`` (official format), atomically; returns the G path."""
        epoch = self.step // self.steps_per_epoch
        lr = self.learning_rate(epoch)
        for kind, module, opt in (("D", self.discriminator, self.optim_d), ("G", self.generator, self.optim_g)):
            path = save_checkpoint_atomic(checkpoint_path(self.checkpoint_dir, kind, self.step), {
                "model": module.state_dict(), "optimizer": opt.state_dict(), "learning_rate": lr,
                "epoch": epoch, "step": self.step})
        return path

    # -- the loop ----------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask :meth:`fit` to checkpoint and return after the step in progress (signal-safe: it only
        sets a flag). A step is never cut in half, so the checkpoint resumes exactly."""
        self._stop_requested = True

    def fit(self, max_steps: int | None = None) -> dict[str, float]:
        """Train until ``max_steps`` (default: the options' value; None = until interrupted).

        Logs running means every ``log_interval`` steps, validates and checkpoints every
        ``checkpoint_interval`` steps and at the last step. Returns the last validation metrics.
        """
        c = self.config
        max_steps = self.options.max_steps if max_steps is None else max_steps
        max_steps = sys.maxsize if max_steps is None else int(max_steps)
        log_every, ckpt_every = int(c["log_interval"]), int(c["checkpoint_interval"])
        loader = DataLoader(self.train_set, batch_sampler=self.train_sampler, collate_fn=collate_pairs,
                            num_workers=self.options.num_workers, pin_memory=self.ctx.device.type == "cuda")
        last_metrics: dict[str, float] = {}
        if self.options.eval_at_start and self.step == 0 and self.eval_sets:
            last_metrics, examples = self.evaluate()
            self._log_validation(last_metrics, examples)
            self.log(f"step 0: " + _fmt(last_metrics))
        running: dict[str, list[float]] = defaultdict(list)
        t_log, steps_since_log = time.perf_counter(), 0
        while self.step < max_steps:
            epoch, start_batch = divmod(self.step, self.steps_per_epoch)
            lr = self._set_learning_rate(epoch)
            self.train_sampler.set_epoch(epoch, start_batch)
            for original, target, _ in loader:
                stats = self.train_step(original, target)
                for k, v in stats.items():
                    running[k].append(v)
                steps_since_log += 1
                last = self.step >= max_steps
                if self.step % log_every == 0 or last:
                    elapsed = time.perf_counter() - t_log
                    scalars = {k: float(np.mean(v)) for k, v in running.items()}
                    scalars.update({"learning_rate": lr, "epoch": epoch, "steps_per_s": steps_since_log / elapsed})
                    if self.tracker is not None:
                        self.tracker.log(scalars, step=self.step)
                    self.log(f"step {self.step}: " + _fmt({k: scalars[k] for k in ("loss/g/total", "loss/g/mel",
                                                                                   "loss/d/total", "steps_per_s")}))
                    running.clear()
                    t_log, steps_since_log = time.perf_counter(), 0
                if self._stop_requested:
                    if self.ctx.is_main:
                        self.log(f"stop requested: saved {self.save_checkpoint()}; continue with --resume")
                    return last_metrics
                if self.step % ckpt_every == 0 or last:
                    if self.eval_sets:
                        last_metrics, examples = self.evaluate()
                        self._log_validation(last_metrics, examples)
                        self.log(f"step {self.step}: " + _fmt(last_metrics))
                    if self.ctx.is_main:
                        self.log(f"saved {self.save_checkpoint()}")
                    t_log = time.perf_counter()  # validation time is not training time
                if last:
                    break
        return last_metrics

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.finish()


def _fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in values.items())


# ----------------------------------------------------------------------------------------------
# Command line.


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m vxlib.llvc.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--experiment-dir", required=True, help="folder with config.json; checkpoints and logs go here")
    ap.add_argument("--data-dir", default=None, help="paired dataset (default: the config's data.dir)")
    ap.add_argument("--steps", type=int, default=None, help="total steps of the run (default: until interrupted)")
    ap.add_argument("--resume", action="store_true", help="continue from the latest checkpoint pair")
    ap.add_argument("--init-from", default=None, help="fine-tune: start the generator from this G_<step>.pth")
    ap.add_argument("--tracking", default="none", choices=["none", "wandb"])
    ap.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    ap.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument("--hubert-checkpoint", default=None, help="override aux_fairseq.checkpoint_path")
    ap.add_argument("--no-eval-at-start", action="store_true", help="skip the step-0 validation")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    run_dir = Path(a.experiment_dir)
    config = load_config(run_dir / "config.json")
    ctx = DistributedContext.setup(a.device)
    options = TrainOptions(run_dir=run_dir, data_dir=Path(a.data_dir) if a.data_dir else None, max_steps=a.steps,
                           resume=a.resume, init_from=Path(a.init_from) if a.init_from else None, tracking=a.tracking,
                           device=a.device, precision=a.precision, num_workers=a.num_workers,
                           eval_at_start=not a.no_eval_at_start,
                           hubert_checkpoint=Path(a.hubert_checkpoint) if a.hubert_checkpoint else None)
    trainer = LLVCTrainer(config, options, ctx)
    # SIGTERM (torchrun, schedulers) and a first Ctrl-C finish the current step, checkpoint, and exit.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def stop(signum, frame):
        trainer.request_stop()
        signal.signal(signum, previous[signum])  # a second signal acts as usual

    for sig in previous:
        signal.signal(sig, stop)
    try:
        metrics = trainer.fit()
        if ctx.is_main and metrics:
            print(json.dumps({"step": trainer.step, **metrics}))
    finally:
        trainer.close()
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
