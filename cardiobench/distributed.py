"""The process group of a ``torchrun`` launch: DistributedDataParallel for every task.

``torchrun --nproc_per_node=N -m cardiobench run --task T ...`` starts N copies of the run; torchrun
sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` and ``init`` joins them
(NCCL on GPUs, gloo on the CPU), as torchvision's reference scripts do. Rank 0 owns the run folder;
the other ranks train beside it and write only into a private scratch folder (what a task writes while
loading data, e.g. skipped samples or a trained vocabulary, lands there), read rank 0's checkpoints
and leave prediction, metrics and the page to rank 0.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    """This process's place in the launch (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE > 1) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str) -> Group:
    """Join the process group torchrun describes (idempotent); a single process gets ``Group()``."""
    if not launched():
        return Group()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return Group(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())


def current() -> Group:
    """The group already joined (``Group()`` when none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Group()
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def device_of(device: str, group: Group) -> str:
    """Each rank's own GPU (``cuda:LOCAL_RANK``) under torchrun; the device as given otherwise."""
    return f"cuda:{group.local_rank}" if group.active and device == "cuda" else device


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object); the value itself without a group."""
    if not current().active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if current().active:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
