"""Several processes, one model: torchrun's environment, DistributedDataParallel helpers.

``torchrun --nproc_per_node=N -m lpbench train ...`` starts N processes and sets RANK,
LOCAL_RANK and WORLD_SIZE; :func:`setup` joins them in a process group (NCCL on GPUs,
gloo on CPUs; several nodes through torchrun's rendezvous). Without those variables the
run is a single process and nothing here changes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lpbench.runtime import resolve_device


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | torch.device | None = None) -> Context:
    """Join torchrun's process group if launched by it; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(0, 1, resolve_device(device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), resolved)


def all_reduce_sum(values: dict[str, float], ctx: Context) -> dict[str, float]:
    """Sum each value over the processes (the same keys everywhere)."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return dict(zip(keys, tensor.tolist(), strict=True))


def barrier(ctx: Context) -> None:
    """Wait for every process (no-op when alone)."""
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context) -> None:
    """Leave the process group."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
