"""Two gloo processes on CPU: DDP keeps the replicas identical and shards the data."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vxlib.llvc.train import LLVCTrainer, TrainOptions, latest_checkpoint_step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, config: dict, pairs_dir: Path, run_dir: Path, out_dir: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        trainer = LLVCTrainer(config, TrainOptions(run_dir=run_dir, data_dir=pairs_dir, device="cpu",
                                                   eval_at_start=False, log=lambda m: None))
        metrics = trainer.fit(3)
        torch.save({"G": trainer.generator.state_dict(), "D": trainer.discriminator.state_dict(),
                    "step": trainer.step, "metrics": metrics, "indices": trainer.train_sampler.rank_indices(0)},
                   out_dir / f"rank{rank}.pt")
        trainer.close()
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_hold_identical_parameters(config, pairs_dir, tmp_path):
    config["checkpoint_interval"] = 3
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train").symlink_to(pairs_dir / "train")  # validation is left out to keep this short
    mp.spawn(_worker, args=(2, _free_port(), config, tmp_path / "data", tmp_path / "run", tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["step"] == r1["step"] == 3
    assert not set(r0["indices"]) & set(r1["indices"])  # each rank trained on its own shard
    for part in ("G", "D"):
        assert r0[part].keys() == r1[part].keys()
        for k in r0[part]:
            assert torch.equal(r0[part][k], r1[part][k]), f"{part}.{k} differs between ranks"
    assert latest_checkpoint_step(tmp_path / "run" / "checkpoints") == 3  # written once, by rank 0
