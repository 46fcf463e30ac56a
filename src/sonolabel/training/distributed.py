"""torchrun / DDP: who this process is, and summing results over processes.

Started by ``torchrun --nproc_per_node N -m sonolabel train unet ...``, each process reads its
rank from the environment; gloo on CPUs, NCCL on GPUs. A plain ``sonolabel`` run is world size 1
and none of this costs anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: str) -> World:
    """Join the process group torchrun set up (idempotent); world size 1 without torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return world


def all_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """Sum of ``t`` over all processes (``t`` itself in a single process)."""
    if world.distributed:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
