"""The processes of one training run (``torchrun`` ranks): which one writes, and what they share.

A run started alone is one process (rank 0 of 1). Under ``torchrun --nproc_per_node=N`` each of the N processes
joins the process group (gloo on CPU, NCCL on CUDA); rank 0 writes the run directory and logs (see
:class:`~coordconv.repro.runtime.session.Session`), and the others take part in the collectives below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["ALONE", "Processes", "all_sum", "barrier", "broadcast", "processes"]


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""

    rank: int
    world: int
    device: torch.device
    started_group: bool

    @property
    def main(self) -> bool:
        """Whether this is rank 0, which writes the run's files."""
        return self.rank == 0


def processes() -> Processes:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    started = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    return Processes(rank, world, device, started)


def broadcast(obj: Any, procs: Processes) -> Any:
    """Rank 0's ``obj`` in every process."""
    if procs.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float], procs: Processes) -> list[float]:
    """``values`` summed over the processes."""
    if procs.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=procs.device if procs.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def barrier(procs: Processes) -> None:
    """Wait until every process gets here."""
    if procs.world > 1:
        dist.barrier()


#: a run in a single process on the CPU
ALONE = Processes(rank=0, world=1, device=torch.device("cpu"), started_group=False)
