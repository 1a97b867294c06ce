"""Training across processes with DistributedDataParallel (SPEC §4).

``torchrun --nproc_per_node N main.py train ...`` starts N copies of the same command;
torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` for each. :func:`setup` joins
them into one process group (NCCL on CUDA, gloo on the CPU, where the tests run it),
and the :class:`~engine.training.Trainer` then trains data-parallel:

- every rank draws the same user order and the same negatives from the same seeded
  generator, then trains on its own share of each batch, so a global batch stays
  ``batch_size`` sequences and the generator stays in step on every rank;
- DDP averages the gradients, so all ranks hold the same weights after every step;
- a stop request on any rank stops every rank after the same batch;
- every rank evaluates the whole validation set (same weights, same negatives, so the
  same numbers and the same early-stopping decision), and only rank 0 writes
  checkpoints and reports.

Outside torchrun nothing here does anything and one process trains alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started us."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> Place:
    """Join the process group torchrun describes; a single process when not launched.

    Idempotent: a group already joined is reused."""
    if not launched():
        return Place()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        log.info(
            "rank %d of %d joined the %s process group",
            dist.get_rank(),
            dist.get_world_size(),
            backend,
        )
    return place()


def place() -> Place:
    """This process's place in the joined group (rank 0 of 1 when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Place()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Place(dist.get_rank(), dist.get_world_size(), local)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (one small all-reduce)."""
    if not place().distributed:
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def share(rows: torch.Tensor, where: Place) -> torch.Tensor:
    """This rank's part of a batch's rows: every world-th row from its rank on."""
    return rows[where.rank :: where.world] if where.distributed else rows
