"""Process-group setup for DDP under torchrun (gloo on CPU, nccl on CUDA), and the few
collectives the loop needs (all no-ops in a single process)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs and writes checkpoints."""
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun job described by RANK/WORLD_SIZE/LOCAL_RANK, if there is one (a
    one-process job too: its process group is real, so `--nproc_per_node 1` checks the
    backend; collectives are skipped at world 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return DistInfo()  # a plain process (torchrun, even of one process, sets the run id)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        # Before NCCL init: otherwise every rank's default context, NCCL communicator and
        # pin-memory thread land on GPU 0.
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), world, local_rank)


def all_reduce(x: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """`x` reduced over ranks (in place); unchanged in a single process."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(x, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN}[op])
    return x


def shutdown() -> None:
    """Leave the process group (if any)."""
    if dist.is_initialized():
        dist.destroy_process_group()
