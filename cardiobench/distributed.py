"""The process group of a ``torchrun`` launch: DistributedDataParallel for every task.

``torchrun --nproc_per_node=N -m cardiobench run --task T ...`` starts N copies of the run; torchrun
sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` and ``init`` joins them
(NCCL on GPUs, gloo on the CPU), as torchvision's reference scripts do. Rank 0 owns the run folder;
the other ranks train beside it and write only into a private scratch folder (what a task writes while
loading data, e.g. skipped samples or a trained vocabulary, lands there), read rank 0's checkpoints
and leave metrics and the page to rank 0. Prediction is sharded: each rank runs the forward passes of
its share of the scored items (``map_shards``, no padded duplicates) and every rank gets them all back
in item order, so rank 0 writes predictions.csv from the whole split.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

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


_SOLO = [0]  # depth of ``solo()`` blocks


def current() -> Group:
    """The group already joined (``Group()`` when none, or inside ``solo()``)."""
    if _SOLO[0] or not (dist.is_available() and dist.is_initialized()):
        return Group()
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def pick_device(profile: Any) -> str:
    """The profile's ``device``: ``auto`` is ``cuda`` when a GPU is available, else ``cpu``."""
    if profile.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return profile.device


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


@contextmanager
def solo() -> Iterator[None]:
    """Inside it this process acts as if alone (``current()`` is ``Group()``): for work that every rank
    does in full, such as validating on the whole of VAL, where gathering the other ranks' copies of the
    same batch (the contrastive losses do, under DDP) would count every item ``world_size`` times."""
    _SOLO[0] += 1
    try:
        yield
    finally:
        _SOLO[0] -= 1


R = TypeVar("R")


def map_shards(fn: Callable[[np.ndarray], R], n: int) -> R:
    """``fn(indices)`` over items ``0..n-1``, the items shared out among the ranks; every rank gets the
    whole result, rows in item order.

    ``fn`` returns one row per index it was given: an array, a tensor, a list, or a tuple of those.
    Rank r takes items r, r + W, r + 2W, ... (W = world size): each item is computed once, with none of
    ``DistributedSampler``'s padding to remove. A collective: every rank must call it. Without a
    process group it is ``fn(np.arange(n))``.
    """
    group = current()
    if not group.active or n == 0:
        return fn(np.arange(n))
    mine = np.arange(group.rank, n, group.world_size)
    parts: list = [None] * group.world_size
    dist.all_gather_object(parts, (mine, fn(mine) if len(mine) else None))
    parts = [(i, rows) for i, rows in parts if len(i)]
    order = np.argsort(np.concatenate([i for i, _ in parts]), kind="stable")
    return _in_order([rows for _, rows in parts], order)


def _in_order(parts: list, order: np.ndarray) -> Any:
    """The ranks' row blocks joined, then put in item order (``order``: argsort of their indices)."""
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_in_order([p[k] for p in parts], order) for k in range(len(first)))
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)[torch.from_numpy(order)]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)[order]
    if isinstance(first, list):
        rows = [row for p in parts for row in p]
        return [rows[k] for k in order]
    raise TypeError(f"map_shards: fn must return arrays, tensors, lists or tuples of them, not {type(first).__name__}")
