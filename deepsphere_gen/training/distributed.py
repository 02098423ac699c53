"""Where a process runs: :class:`DistContext` (rank, world size, device), the torchrun process
group (:func:`distributed_context`, :func:`shutdown_distributed`) and the one collective the loop
needs (:func:`all_sum`)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .._devices import check_device


@dataclass(frozen=True)
class DistContext:
    """Where this process runs: rank, world size, local rank and torch device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def distributed_context(device: str | None = None) -> DistContext:
    """Start (once) the process group when launched by torchrun; return this process's context.

    Without torchrun's WORLD_SIZE/RANK environment (or with WORLD_SIZE=1) nothing is
    started: rank 0 of 1.  Backend: nccl when the device is CUDA, else gloo.  ``device``: None picks
    cuda:LOCAL_RANK when CUDA is present, else cpu; "cuda" means cuda:LOCAL_RANK; a device this machine
    lacks is refused by :func:`~deepsphere_gen._devices.check_device` (ValueError listing the devices here).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        dev = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(check_device(device))
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(check_device(f"cuda:{local}"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local, dev)


def shutdown_distributed() -> None:
    """Destroy the process group if one was started (call once at the end of a torchrun job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values, ctx: DistContext) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    if ctx.distributed:
        dist.all_reduce(t)
    return t.tolist()
