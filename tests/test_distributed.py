"""`distributed.map_shards` (sharded prediction under torchrun, issue 16) and `distributed.solo` on two gloo
processes: every item is computed once, by one rank, with no padded duplicates, and every rank gets the
whole result back in item order, equal to one process's; inside ``solo`` a contrastive loss gathers nothing."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.testing import assert_close

from cardiobench import distributed
from cardiobench.tasks.ctrate.contrastive import contrastive_loss, text_keys

from .conftest import free_port

SIZES = (0, 1, 2, 5, 6)  # fewer items than ranks, odd and even counts


def _rows(idx: np.ndarray) -> tuple[np.ndarray, torch.Tensor, list[dict]]:
    """Rows that name their item: an array, a tensor and a list of records, as the tasks' predict returns."""
    return (np.stack([idx * 10.0, idx + 0.5], axis=1).reshape(len(idx), 2), torch.as_tensor(idx, dtype=torch.int64) ** 2,
            [{"item": int(i), "rows": [int(i)] * int(i % 3)} for i in idx])


def _worker(rank: int, port: int, out: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    try:
        computed: list[int] = []

        def fn(idx: np.ndarray):
            computed.extend(int(i) for i in idx)
            return _rows(idx)

        for n in SIZES:
            array, tensor, records = distributed.map_shards(fn, n)
            want = _rows(np.arange(n))
            np.testing.assert_array_equal(array, want[0])
            assert_close(tensor, want[1])
            assert records == want[2]
        out[rank] = computed
        # a single array and a single list come back as such
        np.testing.assert_array_equal(distributed.map_shards(lambda i: i * 2, 7), np.arange(7) * 2)
        assert distributed.map_shards(lambda i: [str(k) for k in i], 3) == ["0", "1", "2"]
        # inside solo() the process acts alone: the full-batch loss on every rank is one process's loss
        g = torch.Generator().manual_seed(0)
        img, txt = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
        keys = text_keys(["A.", "B.", "C.", "A.", "D.", "E."])
        assert distributed.current().world_size == 2
        with distributed.solo():
            assert distributed.current().world_size == 1 and not distributed.current().active
            alone = contrastive_loss(img, txt, keys, 0.1)
        out[f"solo{rank}"] = float(alone)
        out[f"gathered{rank}"] = float(contrastive_loss(img, txt, keys, 0.1))  # both ranks' copies: 12 rows
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks() -> dict:
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(free_port(), out), nprocs=2, join=True)
    return dict(out)


def test_every_item_computed_once_by_one_rank(two_ranks):
    # rank r takes items r, r + 2, ...: no item twice, none missing, no padding
    want = [i for n in SIZES for i in range(n)]
    assert sorted(two_ranks[0] + two_ranks[1]) == sorted(want)
    assert all(i % 2 == 0 for i in two_ranks[0]) and all(i % 2 == 1 for i in two_ranks[1])


def test_solo_gathers_nothing(two_ranks):
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    keys = text_keys(["A.", "B.", "C.", "A.", "D.", "E."])
    alone = float(contrastive_loss(img, txt, keys, 0.1))
    doubled = float(contrastive_loss(torch.cat([img, img]), torch.cat([txt, txt]), torch.cat([keys, keys]), 0.1))
    assert two_ranks["solo0"] == pytest.approx(alone) and two_ranks["solo1"] == pytest.approx(alone)
    # outside solo the ranks' identical batches are gathered, which is what validation must not do
    assert two_ranks["gathered0"] == pytest.approx(doubled) and doubled != pytest.approx(alone)


def test_one_process_is_the_function_itself():
    idx_seen = []
    result = distributed.map_shards(lambda i: (idx_seen.append(i.copy()), i)[1], 4)
    np.testing.assert_array_equal(result, np.arange(4))
    assert len(idx_seen) == 1
