"""Train the LLMVoX speech-token GPT: from a reference JSON dataset to a checkpoint.

    python -m vxlib.llmvox.train --config experiments/llmvox_tiny/config.json --set dataset=data/x.json
    python -m vxlib.llmvox.train --config ... --resume                 # continue out_dir/ckpt.pt
    python -m vxlib.llmvox.train --config ... --init-from ckpt.pt       # fine-tune (e.g. a new language)
    torchrun --nproc_per_node 2 -m vxlib.llmvox.train --config ...      # DDP (NCCL on GPU, gloo on CPU)

A nanoGPT-style loop (the reference ``train.py`` is one): AdamW with weight decay on 2-D tensors
only, linear warm-up then cosine decay to ``min_lr``, gradient accumulation (divided by the world
size, as the reference does), gradient clipping, bf16 autocast on GPUs that have it (fp16 with a
GradScaler otherwise, fp32 on CPU), TF32 matmuls, optional ``torch.compile``.

Defects of the reference fixed here (``../shared/spec/llmvox.md``):
- ``init_from`` defaulted to resuming: here a run starts from scratch unless ``--resume`` (same
  out_dir, restores optimiser and step) or ``--init-from PATH`` (weights only, fresh optimiser);
- ``--compile`` was ``type=bool`` (so ``--compile=False`` was True): here a real boolean flag, and
  config values must be JSON booleans;
- no validation (one training batch stood in for it): here a held-out split, scored on every
  batch (or ``eval_batches`` of them), token-weighted, reduced across ranks;
- WavTokenizer ran inside the training loop: audio is tokenised once into a cache first
  (:class:`vxlib.llmvox.data.TokenCache`); on DDP rank 0 fills it, the others read it;
- forward errors were swallowed: nothing is caught here.

Resuming is exact: the batch order is a pure function of (seed, rank, micro-step) and the RNG is
re-seeded every step, so ``k`` steps + resume + ``N - k`` steps equals ``N`` straight steps.

Checkpoints are the reference dict ``{model, optimizer, model_args, iter_num, config}`` (plus
``best_val_loss``), readable with ``weights_only=True`` and by :func:`vxlib.llmvox.model.load_checkpoint`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from vxlib.codec.base import AudioCodec
from vxlib.llmvox.data import (
    BatchSchedule,
    Example,
    TokenCache,
    build_examples,
    codec_codebook,
    collate,
    iterate_batches,
    load_codec,
    load_text_table,
    read_dataset,
    split_records,
)
from vxlib.llmvox.model import GPT, CheckpointError, GPTConfig, InputEmbedder, load_checkpoint, load_state_dict_strict, model_args

__all__ = ["TrainConfig", "PreparedData", "TrainResult", "prepare_data", "train", "get_lr", "configure_optimizer", "build_parser", "config_from_args", "main"]

CKPT_FILE = "ckpt.pt"


# ---------------------------------------------------------------------------------------------
# configuration (data: experiments/<name>/config.json)


@dataclass
class TrainConfig:
    """Every knob of a run. Defaults are the reference recipe (``configs/train_config.py``)."""

    # data
    dataset: str = ""  # reference JSON: [{speech_folder, speech_file, answer_text, id}]
    val_dataset: str = ""  # a separate held-out JSON; empty: hold out val_fraction of `dataset`
    val_fraction: float = 0.02
    cache_dir: str = ""  # token cache; empty: <out_dir>/token_cache
    codec: dict = field(default_factory=lambda: {"type": "wavtokenizer", "config": "", "ckpt": ""})
    text_embedding: str = "default"  # "default" (vxlib's embedded byte table) or a local ByT5 HF dir
    text_embedding_dim: int = 256  # width of the "default" table (a ByT5 dir brings its own)
    reference_quirks: bool = False  # reproduce the reference's data quirks (vxlib.llmvox.data docstring)
    speech_data_folder: str = ""  # only with reference_quirks: audio is <folder>/<id>.wav
    tokenize_workers: int = 2
    # model (n_embd = text_embedding_dim + codec feature_dim; vocab = codec codebook size)
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 768
    block_size: int = 8192
    bias: bool = False
    dropout: float = 0.0
    # optimiser and schedule
    learning_rate: float = 3e-4
    min_lr: float = 3e-6
    warmup_iters: int = 50_000
    lr_decay_iters: int = 2_600_000
    decay_lr: bool = True
    max_iters: int = 2_600_000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-5
    grad_clip: float = 1.0  # 0 disables clipping
    batch_size: int = 2  # per rank, per micro-step
    gradient_accumulation_steps: int = 4  # over all ranks (divided by the world size)
    # evaluation, checkpoints, tracking
    out_dir: str = "out"
    eval_interval: int = 1000
    eval_batches: int = 0  # 0: the whole validation split
    log_interval: int = 10
    checkpoint_interval: int = 1000
    tracking: str = "none"  # none | wandb
    wandb_project: str = "speech_stream"
    # system
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bfloat16 on GPUs with it, else float16; float32 on CPU) | float32 | bfloat16 | float16
    compile: bool = False
    seed: int = 1337

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a mapping, rejecting unknown keys and values of the wrong type (a string
        ``"False"`` for a boolean is an error, not True)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown keys {unknown}")
        for k, v in d.items():
            want = type(getattr(cls(), k))
            ok = isinstance(v, want) and not (want is int and isinstance(v, bool))
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                ok = True
            if not ok:
                raise ValueError(f"{source}: {k} must be {want.__name__}, got {v!r}")
        cfg = cls(**{k: (float(v) if known[k].type in ("float", float) else v) for k, v in d.items()})
        cfg.validate(source)
        return cfg

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: training config not found")
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        else:
            d = json.loads(text)
        d.pop("description", None)
        return cls.from_dict({**d, **overrides}, str(p))

    def validate(self, source: str = "config") -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"{source}: n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"{source}: dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if self.tracking not in ("none", "wandb"):
            raise ValueError(f"{source}: tracking must be none or wandb, got {self.tracking!r}")
        for k in ("max_iters", "batch_size", "gradient_accumulation_steps", "eval_interval", "log_interval",
                  "checkpoint_interval", "block_size"):
            if getattr(self, k) < 1:
                raise ValueError(f"{source}: {k} must be >= 1, got {getattr(self, k)}")

    def replace(self, **changes: Any) -> "TrainConfig":
        cfg = replace(self, **changes)
        cfg.validate("replace()")
        return cfg


# ---------------------------------------------------------------------------------------------
# schedule and optimiser


def get_lr(it: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_iters``, cosine decay to ``min_lr`` at ``lr_decay_iters``, then flat."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it >= cfg.lr_decay_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)


def configure_optimizer(model: torch.nn.Module, cfg: TrainConfig, device_type: str) -> torch.optim.AdamW:
    """AdamW with two groups: weight decay on tensors with >= 2 dims (matmul weights, the position
    table), none on 1-D ones (LayerNorm gains, biases), as nanoGPT. Fused kernels on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             fused=device_type == "cuda")


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class PreparedData:
    train: list[Example]
    val: list[Example]
    text_table: torch.Tensor  # (386, D_text)
    codebook: torch.Tensor  # (codebook_size, feature_dim)
    codec_fingerprint: str
    encoded: int  # utterances the codec encoded in this call (0: all from the cache)
    eoa_removed: int  # real EOA codes deleted from the training audio


def prepare_data(cfg: TrainConfig, codec: AudioCodec | None = None, log: Callable[[str], None] = print,
                 is_main: bool = True, barrier: Callable[[], None] = lambda: None) -> PreparedData:
    """Read the dataset, split it, tokenise the audio into the cache (main process first, then the
    others read it) and build examples. ``codec``: an already loaded codec, else ``cfg.codec``."""
    codec = codec if codec is not None else load_codec(cfg.codec)
    folder = cfg.speech_data_folder or None
    records = read_dataset(cfg.dataset, cfg.reference_quirks, folder)
    if cfg.val_dataset:
        train_recs, val_recs = records, read_dataset(cfg.val_dataset, cfg.reference_quirks, folder)
        clash = sorted({r.id for r in train_recs} & {r.id for r in val_recs})
        if clash:
            raise ValueError(f"{cfg.val_dataset}: {len(clash)} id(s) also in {cfg.dataset}: {clash[:10]}")
    else:
        train_recs, val_recs = split_records(records, cfg.val_fraction, cfg.seed)
    cache_dir = cfg.cache_dir or str(Path(cfg.out_dir) / "token_cache")
    encoded = 0
    if is_main:
        encoded = TokenCache.build(train_recs + val_recs, codec, cache_dir, cfg.tokenize_workers, log).encoded
    barrier()
    cache = TokenCache.build(train_recs + val_recs, codec, cache_dir, cfg.tokenize_workers, log)
    train_ex = build_examples(train_recs, cache, cfg.block_size, cfg.reference_quirks)
    val_ex = build_examples(val_recs, cache, cfg.block_size, cfg.reference_quirks)
    table = load_text_table(cfg.text_embedding, cfg.text_embedding_dim)
    codebook = codec_codebook(codec)
    if table.shape[1] + codebook.shape[1] != cfg.n_embd:
        raise ValueError(
            f"n_embd {cfg.n_embd} must equal the text table width {table.shape[1]} + the codec's feature_dim "
            f"{codebook.shape[1]} (= {table.shape[1] + codebook.shape[1]}): the GPT input is their concatenation"
        )
    return PreparedData(train_ex, val_ex, table, codebook, cache.fingerprint, encoded,
                        sum(e.eoa_removed for e in train_ex))


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class TrainResult:
    iter_num: int
    best_val_loss: float
    checkpoint: Path
    history: list[dict] = field(default_factory=list)  # {"iter", "train_loss"|"val_loss", ...} rows
    max_replica_diff: float | None = None  # DDP only: max |param - rank-0 param| over ranks at the end


def _device_and_dtype(cfg: TrainConfig, local_rank: int) -> tuple[torch.device, torch.dtype]:
    dev = cfg.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(f"cuda:{local_rank}" if dev == "cuda" and dist.is_initialized() else dev)
    if cfg.dtype == "auto":
        if device.type != "cuda":
            return device, torch.float32
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return device, getattr(torch, cfg.dtype)


def _init_distributed(device_pref: str) -> tuple[int, int, int]:
    """(rank, local_rank, world_size); joins the process group when launched by torchrun."""
    if not dist.is_torchelastic_launched():
        return 0, 0, 1
    if not dist.is_initialized():
        use_nccl = device_pref in ("auto", "cuda") and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    local_rank = dist.get_node_local_rank(fallback_rank=dist.get_rank())
    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        torch.cuda.set_device(local_rank)
    return dist.get_rank(), local_rank, dist.get_world_size()


@torch.no_grad()
def _evaluate(model, embedder, examples, cfg, ctx, device, rank, world) -> float:
    """Token-weighted mean cross-entropy over the validation batches (sharded across ranks)."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of CE, number of targets)
    for k, batch in enumerate(iterate_batches(examples, cfg.batch_size, cfg.reference_quirks)):
        if cfg.eval_batches and k >= cfg.eval_batches:
            break
        if k % world != rank:
            continue
        b = batch.to(device)
        with ctx:
            _, loss = model(embedder(b.text_ids, b.prev_codes), b.targets)
        n = b.n_targets
        total += torch.tensor([float(loss) * n, n], dtype=torch.float64, device=device)
    if world > 1:
        dist.all_reduce(total)
    model.train()
    return float(total[0] / total[1]) if total[1] > 0 else float("nan")


def _save(path: Path, raw_model: GPT, optimizer, iter_num: int, best_val_loss: float, cfg: TrainConfig,
          fingerprint: str) -> None:
    ckpt = {
        "model": raw_model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_args": model_args(raw_model.config),
        "iter_num": iter_num,
        "best_val_loss": best_val_loss,
        "config": {**asdict(cfg), "codec_fingerprint": fingerprint},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


def _replica_diff(model: torch.nn.Module) -> float:
    """Max |param - rank 0's param| over all ranks (0.0 when the replicas are identical)."""
    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def train(cfg: TrainConfig, resume: bool = False, init_from: str | None = None, codec: AudioCodec | None = None,
          log: Callable[[str], None] = print) -> TrainResult:
    """Run (or continue) training as configured; returns the final step, losses and checkpoint path."""
    if resume and init_from:
        raise ValueError("use either resume (continue out_dir) or init_from (fine-tune from weights), not both")
    rank, local_rank, world = _init_distributed(cfg.device)
    is_main = rank == 0
    say = log if is_main else (lambda _m: None)
    if cfg.gradient_accumulation_steps % world:
        raise ValueError(f"gradient_accumulation_steps {cfg.gradient_accumulation_steps} is not divisible by world size {world}")
    accum = cfg.gradient_accumulation_steps // world
    device, ptdtype = _device_and_dtype(cfg, local_rank)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    ctx = (torch.autocast(device_type=device.type, dtype=ptdtype) if ptdtype != torch.float32
           else contextlib.nullcontext())
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / CKPT_FILE

    data = prepare_data(cfg, codec, say, is_main, dist.barrier if world > 1 else (lambda: None))
    say(f"data: {len(data.train)} train / {len(data.val)} val utterances, "
        f"{sum(len(e) for e in data.train)} train tokens; {data.encoded} newly tokenised; "
        f"{data.eoa_removed} real EOA codes deleted")

    gpt_config = GPTConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                           vocab_size=data.codebook.shape[0], bias=cfg.bias, dropout=cfg.dropout)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    model = GPT(gpt_config)
    iter_num, best_val_loss, ckpt = 0, float("inf"), None
    if resume:
        if not ckpt_path.is_file():
            raise CheckpointError(f"{ckpt_path}: nothing to resume (no checkpoint in out_dir)")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["model_args"] != model_args(gpt_config):
            raise CheckpointError(f"{ckpt_path}: model_args {ckpt['model_args']} differ from the config's {model_args(gpt_config)}")
        if ckpt["config"].get("codec_fingerprint") != data.codec_fingerprint:
            raise CheckpointError(f"{ckpt_path}: trained with another codec (fingerprint "
                                  f"{ckpt['config'].get('codec_fingerprint')}, now {data.codec_fingerprint})")
        load_state_dict_strict(model, ckpt["model"], str(ckpt_path))
        iter_num, best_val_loss = int(ckpt["iter_num"]), float(ckpt.get("best_val_loss", float("inf")))
        say(f"resuming {ckpt_path} at iter {iter_num}")
    elif init_from:
        source = load_checkpoint(init_from)  # validates the file; strips _orig_mod.
        load_state_dict_strict(model, source.state_dict(), str(init_from))
        say(f"initialised from {init_from} ({source.num_params() / 1e6:.2f}M params); fresh optimiser, iter 0")
    model.to(device)
    embedder = InputEmbedder(data.text_table, data.codebook).to(device)
    optimizer = configure_optimizer(model, cfg, device.type)
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        ckpt = None  # free memory
    scaler = torch.amp.GradScaler(device.type, enabled=ptdtype == torch.float16)
    raw_model = model
    if cfg.compile:
        say("compiling the model (torch.compile)")
        model = torch.compile(model)
    eval_model = model  # evaluated without the DDP wrapper: ranks score different numbers of batches
    if world > 1:
        model = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None)
    schedule = BatchSchedule(len(data.train), cfg.batch_size, cfg.seed, rank, world,
                             with_replacement=cfg.reference_quirks)
    say(f"model: {raw_model.num_params() / 1e6:.2f}M params (without positions); device {device}, {ptdtype}; "
        f"world {world} x accum {accum} x batch {cfg.batch_size}")

    tracker = None
    if is_main:
        from vxlib.tracking import make_tracker

        tracker = make_tracker(cfg.tracking, out_dir / "tracking", config=asdict(cfg), project=cfg.wandb_project)
    history: list[dict] = []
    t_last, tokens_since = time.perf_counter(), 0
    model.train()
    try:
        while iter_num < cfg.max_iters:
            lr = get_lr(iter_num, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            torch.manual_seed(cfg.seed + 1_000_003 * (rank + 1) + iter_num)  # dropout: exact on resume
            loss_sum = torch.zeros((), device=device)
            for micro in range(accum):
                batch = collate([data.train[i] for i in schedule.batch(iter_num * accum + micro)],
                                cfg.reference_quirks).to(device)
                sync = world == 1 or micro == accum - 1
                with (contextlib.nullcontext() if sync else model.no_sync()):
                    with ctx:
                        _, loss = model(embedder(batch.text_ids, batch.prev_codes), batch.targets)
                    scaler.scale(loss / accum).backward()
                loss_sum += loss.detach()
                tokens_since += batch.n_targets * world
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1

            if iter_num % cfg.log_interval == 0 or iter_num == cfg.max_iters:
                train_loss = float(loss_sum) / accum
                dt = time.perf_counter() - t_last
                row = {"iter": iter_num, "train_loss": train_loss, "lr": lr, "tokens_per_s": tokens_since / dt}
                history.append(row)
                if tracker:
                    tracker.log({"train/loss": train_loss, "train/lr": lr, "train/tokens_per_s": row["tokens_per_s"]}, step=iter_num)
                say(f"iter {iter_num}: loss {train_loss:.4f}, lr {lr:.2e}, {row['tokens_per_s']:.0f} tokens/s")
                t_last, tokens_since = time.perf_counter(), 0
            last = iter_num == cfg.max_iters
            if iter_num % cfg.eval_interval == 0 or last:
                val_loss = _evaluate(eval_model, embedder, data.val, cfg, ctx, device, rank, world)
                best_val_loss = min(best_val_loss, val_loss)
                history.append({"iter": iter_num, "val_loss": val_loss})
                if tracker:
                    tracker.log({"val/loss": val_loss}, step=iter_num)
                say(f"iter {iter_num}: val loss {val_loss:.4f} ({len(data.val)} utterances)")
                t_last = time.perf_counter()  # keep evaluation out of the training tokens/s
            if is_main and (iter_num % cfg.checkpoint_interval == 0 or last):
                _save(ckpt_path, raw_model, optimizer, iter_num, best_val_loss, cfg, data.codec_fingerprint)
        diff = None
        if world > 1:
            diff = _replica_diff(raw_model)
            if tracker:
                tracker.log({"ddp/max_replica_diff": diff}, step=iter_num)
            say(f"DDP replicas: max |param - rank 0| = {diff:.3g}")
    finally:
        if tracker:
            tracker.finish()
    return TrainResult(iter_num, best_val_loss, ckpt_path, history, diff)


# ---------------------------------------------------------------------------------------------
# CLI


def _scalar(text: str) -> Any:
    """A --set value: JSON first (so 1e-3 is a number; YAML 1.1 reads it as a string), else YAML
    (bare words, ``{type: world, dir: d}``)."""
    import yaml

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m vxlib.llmvox.train", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="JSON/YAML file of TrainConfig fields (experiments/<name>/config.json)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field; VALUE is read as JSON or YAML (5, 3e-4, true, {type: world, dir: d})")
    ap.add_argument("--out-dir", help="override out_dir")
    ap.add_argument("--max-iters", type=int, help="override max_iters")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="torch.compile the model (--no-compile to disable); default: the config's value")
    start = ap.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from <out_dir>/ckpt.pt (weights, optimiser, step)")
    start.add_argument("--init-from", metavar="CKPT", help="start from these weights with a fresh optimiser (fine-tuning)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads per process")
    return ap


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: the file, then ``--set`` overrides, then the dedicated flags."""
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = _scalar(value)
    if args.out_dir is not None:
        overrides["out_dir"] = args.out_dir
    if args.max_iters is not None:
        overrides["max_iters"] = args.max_iters
    if args.compile is not None:
        overrides["compile"] = args.compile
    return TrainConfig.from_file(args.config, **overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from_args(args)
    try:
        result = train(cfg, resume=args.resume, init_from=args.init_from)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    print(f"done: iter {result.iter_num}, best val loss {result.best_val_loss:.4f}, checkpoint {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
