"""torchrun support: the process group (NCCL on GPUs, gloo on CPU), ranks, and reductions.

Run any training command under ``torchrun --nproc_per_node N`` (multi-node with torchrun's own
``--nnodes/--node_rank/--rdzv_endpoint``); without torchrun everything here is a single-process no-op.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0: the process that logs, writes files and reports. Outside the process group (before it is
    joined, after it is left) torchrun's ``RANK`` says which process this is."""
    if dist.is_available() and dist.is_initialized():
        return rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def device_for_rank(requested: str | None = None) -> torch.device:
    """``requested`` if given; under torchrun on GPUs, cuda:LOCAL_RANK; else CUDA if present, else CPU."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join torchrun's process group for the duration (no-op when not launched by torchrun)."""
    if not launched_by_torchrun() or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity when single-process)."""
    if world_size() > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
