"""Splitting an evaluation over processes started by ``torchrun``, and joining the parts.

Under ``torchrun`` (environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) each
process attacks the points at positions ``rank, rank + world, ...`` of the evaluation
subset; rank 0 gathers the per-point outcomes over ``torch.distributed`` (gloo on CPU,
NCCL on GPUs) and writes the one results file. No shared file system is needed for the
merge; resuming needs each rank to see the journal it wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def positions(self, count: int) -> list[int]:
        """The positions (0..count-1) of the evaluation subset this process attacks."""
        return list(range(self.rank, count, self.world))


def shard_from_env() -> Shard:
    """The shard torchrun describes in the environment (a single process when none)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    return Shard(
        rank=int(os.environ["RANK"]),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_distributed(shard: Shard, device: torch.device) -> None:
    """Join the process group (NCCL for CUDA devices, gloo otherwise) when sharded."""
    if shard.world <= 1 or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)


def shard_device(shard: Shard, device: torch.device) -> torch.device:
    """One GPU per process: ``cuda:LOCAL_RANK`` when sharded on CUDA."""
    if shard.world > 1 and device.type == "cuda" and device.index is None:
        return torch.device("cuda", shard.local_rank)
    return device


def all_gather(shard: Shard, payload: Any) -> list[Any]:
    """Every rank's ``payload``, in rank order, on every rank."""
    if shard.world <= 1:
        return [payload]
    gathered: list[Any] = [None] * shard.world
    dist.all_gather_object(gathered, payload)
    return gathered


def broadcast_from_main(shard: Shard, payload: Any) -> Any:
    """Rank 0's ``payload`` on every rank."""
    if shard.world <= 1:
        return payload
    box = [payload if shard.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
