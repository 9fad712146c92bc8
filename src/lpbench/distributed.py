"""One torchrun context for training and evaluation: rank, world size, device, process group.

``torchrun --nproc_per_node=N -m lpbench train|evaluate ...`` starts N processes and sets
RANK, LOCAL_RANK and WORLD_SIZE; :func:`setup` reads them, picks this process's device
(``cuda:LOCAL_RANK`` on GPUs) and joins the process group (NCCL on GPUs, gloo on CPUs;
several nodes through torchrun's rendezvous). Without those variables the run is a single
process and nothing here changes it. Training splits each batch over the processes and
averages gradients (DistributedDataParallel); evaluation gives each process the points at
positions ``rank, rank + world_size, ...`` and gathers the outcomes on rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from lpbench.runtime import resolve_device


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes checkpoints, logs and results."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there are several processes."""
        return self.world_size > 1

    def positions(self, count: int) -> list[int]:
        """The positions (0..count-1) of an evaluation subset this process attacks."""
        return list(range(self.rank, count, self.world_size))


def from_env(device: str | torch.device | None = None) -> Context:
    """The context torchrun describes in the environment (a single process when none).

    ``device`` is resolved as :func:`lpbench.runtime.resolve_device` does; under torchrun a
    CUDA device becomes ``cuda:LOCAL_RANK`` (one GPU per process).
    """
    resolved = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(device=resolved)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local)
    return Context(int(os.environ["RANK"]), world, local, resolved)


def is_main_process() -> bool:
    """Whether this process is rank 0 of torchrun's processes (or runs alone)."""
    return int(os.environ.get("RANK", "0")) == 0


def setup(device: str | torch.device | None = None) -> Context:
    """:func:`from_env`, make its CUDA device the current one and join the process group."""
    ctx = from_env(device)
    if ctx.device.type == "cuda" and ctx.device.index is not None:  # refuses a bare "cuda"
        torch.cuda.set_device(ctx.device)
    if ctx.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if ctx.device.type == "cuda" else "gloo")
    return ctx


def teardown(ctx: Context) -> None:
    """Leave the process group."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    """Wait for every process (no-op when alone)."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(values: dict[str, float], ctx: Context) -> dict[str, float]:
    """Sum each value over the processes (the same keys everywhere)."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return dict(zip(keys, tensor.tolist(), strict=True))


def all_gather(ctx: Context, payload: Any) -> list[Any]:
    """Every rank's ``payload``, in rank order, on every rank."""
    if not ctx.distributed:
        return [payload]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, payload)
    return gathered


def broadcast_from_main(ctx: Context, payload: Any) -> Any:
    """Rank 0's ``payload`` on every rank."""
    if not ctx.distributed:
        return payload
    box = [payload if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
