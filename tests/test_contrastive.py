"""fVLM's disease-aware image-text contrastive loss (cardiobench.tasks.ctrate.contrastive)."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.testing import assert_close

from cardiobench.tasks.ctrate.contrastive import (NORMAL_TEMPLATE, OrganContrastiveLoss, Temperature, contrastive_loss,
                                                  organ_text_keys, pair_targets, text_key, text_keys)

from .conftest import free_port

HEART_NORMAL = NORMAL_TEMPLATE.format(organ="heart")


def _embeddings(n: int, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


# --- pairing -------------------------------------------------------------------------------------

def test_two_normal_texts_are_a_positive_pair():
    targets = pair_targets(organ_text_keys([HEART_NORMAL, HEART_NORMAL], "heart"))
    assert targets[0, 1] > 0 and targets[1, 0] > 0 and (targets.diagonal() > 0).all()
    assert_close(targets.sum(1), torch.ones(2))
    assert_close(targets, torch.full((2, 2), 0.5))


def test_distinct_texts_give_the_identity():
    keys = organ_text_keys(["Cardiomegaly.", "Pericardial effusion.", HEART_NORMAL], "heart")
    assert_close(pair_targets(keys), torch.eye(3))


def test_pairing_normal_identical_and_distinct_texts():
    texts = [HEART_NORMAL, "Cardiomegaly.", HEART_NORMAL + " Heart size is normal.", "Cardiomegaly.",
             "Pericardial effusion.", NORMAL_TEMPLATE.format(organ="lung")]
    # fVLM's rule: a text starting with the organ's template is normal; another organ's template is just text
    pos = torch.tensor([[1, 0, 1, 0, 0, 0],
                        [0, 1, 0, 1, 0, 0],
                        [1, 0, 1, 0, 0, 0],
                        [0, 1, 0, 1, 0, 0],
                        [0, 0, 0, 0, 1, 0],
                        [0, 0, 0, 0, 0, 1]], dtype=torch.float)
    targets = pair_targets(organ_text_keys(texts, "heart"))
    assert_close(targets, pos / pos.sum(1, keepdim=True))
    assert_close(targets.sum(1), torch.ones(6))


def test_text_keys_are_stable_int64():
    # a pinned value: keys must agree across processes and runs (Python's hash() is salted per process)
    assert text_key(HEART_NORMAL) == 1292833452076175247
    keys = text_keys(["a", "b", "a"])
    assert keys.dtype == torch.int64 and keys[0] == keys[2] != keys[1]


# --- the loss ------------------------------------------------------------------------------------

def test_loss_matches_a_hand_computation():
    img, txt = _embeddings(3, 4)
    keys = [7, 7, 3]
    t = 0.2
    u = [v / v.norm() for v in img.double()]
    w = [v / v.norm() for v in txt.double()]
    pos = [[keys[i] == keys[j] for j in range(3)] for i in range(3)]

    def direction(a, b):
        total = 0.0
        for i in range(3):
            logits = [float(a[i] @ b[j]) / t for j in range(3)]
            log_z = math.log(sum(math.exp(x) for x in logits))
            n_pos = sum(pos[i])
            total -= sum((logits[j] - log_z) / n_pos for j in range(3) if pos[i][j])
        return total / 3

    expected = (direction(u, w) + direction(w, u)) / 2
    assert contrastive_loss(img, txt, torch.tensor(keys), t).item() == pytest.approx(expected, rel=1e-5)


def test_loss_is_symmetric_in_image_and_text():
    img, txt = _embeddings(6)
    keys = organ_text_keys([HEART_NORMAL, "A.", HEART_NORMAL, "B.", "A.", "C."], "heart")
    assert_close(contrastive_loss(img, txt, keys, 0.07), contrastive_loss(txt, img, keys, 0.07))
    loss = OrganContrastiveLoss()
    texts = {"heart": keys, "lung": torch.tensor([1, 2, 3, 1, 2, 3])}
    a, _ = loss({"heart": img, "lung": txt * 2}, {"heart": txt, "lung": img}, texts)
    b, _ = loss({"heart": txt, "lung": img}, {"heart": img, "lung": txt * 2}, texts)
    assert_close(a, b)


def test_embeddings_are_normalised_inside():
    img, txt = _embeddings(5)
    keys = torch.arange(5)
    scale = torch.rand(5, 1) * 10 + 0.1
    assert_close(contrastive_loss(img * scale, txt, keys, 0.1), contrastive_loss(img, txt, keys, 0.1))


def test_temperature_init_and_clamp():
    temp = Temperature()
    assert temp().item() == pytest.approx(0.07)
    with torch.no_grad():
        temp.value.fill_(5.0)
    assert temp().item() == pytest.approx(0.5)
    with torch.no_grad():
        temp.value.fill_(-1.0)
    assert temp().item() == pytest.approx(0.001)
    with pytest.raises(ValueError):
        Temperature(init=1.0)


def test_temperature_stays_in_range_after_optimizer_steps_and_leaves_the_bound():
    temp = Temperature()
    img, txt = _embeddings(4)
    keys = torch.arange(4)
    opt = torch.optim.SGD(temp.parameters(), lr=1e4)
    contrastive_loss(img, txt, keys, temp()).backward()
    opt.step()  # a huge step throws the parameter far out of range
    assert not 0.001 <= temp.value.item() <= 0.5
    bound = 0.5 if temp.value.item() > 0.5 else 0.001
    used = temp()
    assert used.item() == pytest.approx(bound)
    assert_close(contrastive_loss(img, txt, keys, used), contrastive_loss(img, txt, keys, bound))
    # at the bound the gradient still flows (a torch.clamp in the graph would pass none there)
    opt.zero_grad()
    contrastive_loss(img, txt, keys, temp()).backward()
    assert temp.value.grad != 0


def test_sgd_lowers_the_loss_on_aligned_embeddings():
    torch.manual_seed(0)
    base = torch.randn(8, 16)
    img = nn.Parameter(base + 0.5 * torch.randn(8, 16))
    txt = nn.Parameter(base + 0.5 * torch.randn(8, 16))
    loss_fn = OrganContrastiveLoss()
    texts = {"heart": [HEART_NORMAL, HEART_NORMAL, "A.", "B.", "C.", "D.", "A.", "E."],
             "lung": ["F.", "G.", "H.", "I.", "J.", "K.", "L.", "M."]}
    # the temperature is a direct parameter with gradients of order 1/t: it takes a far smaller step
    # size (fVLM trains it with AdamW, whose steps are about lr whatever the gradient)
    opt = torch.optim.SGD([{"params": [img, txt]}, {"params": loss_fn.parameters(), "lr": 1e-4}], lr=0.5)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        total, per_organ = loss_fn({"heart": img, "lung": img}, {"heart": txt, "lung": txt}, texts)
        total.backward()
        assert set(per_organ) == {"heart", "lung"}
        assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0 and loss_fn.temperature.value.grad != 0
        losses.append(total.item())
        opt.step()
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_absent_single_and_all_positive_organs_contribute_nothing():
    img, txt = _embeddings(4)
    img.requires_grad_(True)
    heart = ["A.", "B.", HEART_NORMAL, "A."]
    texts = {"heart": heart, "lung": ["x"] * 4, "aorta": ["y"] * 4,
             "spleen": [NORMAL_TEMPLATE.format(organ="spleen")] * 4}
    masks = {"heart": torch.tensor([1, 1, 1, 1]).bool(), "lung": torch.tensor([0, 1, 0, 0]).bool(),
             "aorta": torch.zeros(4, dtype=torch.bool), "spleen": torch.tensor([1, 0, 1, 1]).bool()}
    loss_fn = OrganContrastiveLoss()
    total, per_organ = loss_fn({o: img for o in texts}, {o: txt for o in texts}, texts, masks)
    assert list(per_organ) == ["heart"] and isinstance(per_organ["heart"], float)
    expected = contrastive_loss(img, txt, organ_text_keys(heart, "heart"), loss_fn.temperature())
    assert_close(total, expected)
    assert per_organ["heart"] == pytest.approx(expected.item())
    # nothing contributes: a zero that still backpropagates (zero gradients, not missing ones)
    img.grad = None
    total, per_organ = loss_fn({"lung": img}, {"lung": txt}, {"lung": texts["lung"]}, {"lung": masks["lung"]})
    assert total.item() == 0 and per_organ == {}
    total.backward()
    assert img.grad is not None and (img.grad == 0).all()


def test_mask_selects_from_the_batch_or_takes_the_present_rows():
    img, txt = _embeddings(5)
    mask = torch.tensor([1, 0, 1, 1, 0]).bool()
    texts = ["A.", "-", "B.", "A.", "-"]
    loss_fn = OrganContrastiveLoss()
    full, _ = loss_fn({"heart": img}, {"heart": txt}, {"heart": texts}, {"heart": mask})
    rows, _ = loss_fn({"heart": img[mask]}, {"heart": txt[mask]}, {"heart": ["A.", "B.", "A."]}, {"heart": mask})
    keys = organ_text_keys(texts, "heart")
    mixed, _ = loss_fn({"heart": img[mask]}, {"heart": txt}, {"heart": keys}, {"heart": mask})
    assert_close(full, rows)
    assert_close(full, mixed)
    with pytest.raises(ValueError):
        loss_fn({"heart": img[:4]}, {"heart": txt[:4]}, {"heart": texts[:4]}, {"heart": mask})
    with pytest.raises(ValueError):
        loss_fn({"heart": img}, {"lung": txt}, {"heart": texts})


# --- distributed: gather with gradients ------------------------------------------------------------

ORGANS = ("heart", "lung", "aorta")
RANK_ROWS = (slice(0, 3), slice(3, 5))  # uneven local batches: 3 and 2 items


def _toy_batch():
    """5 items, 3 organs: heart split 3 + 1 over the ranks, lung 1 + 1 (a pair only once gathered),
    aorta in one item (skipped)."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 3, 6, generator=g), torch.randn(5, 3, 6, generator=g)
    texts = {"heart": [HEART_NORMAL, HEART_NORMAL + " Normal size.", "Cardiomegaly.", "-", "Cardiomegaly."],
             "lung": ["Nodule.", "-", "-", "Emphysema.", "-"],
             "aorta": ["-", "Ectasia.", "-", "-", "-"]}
    masks = {"heart": torch.tensor([1, 1, 1, 0, 1]).bool(), "lung": torch.tensor([1, 0, 0, 1, 0]).bool(),
             "aorta": torch.tensor([0, 1, 0, 0, 0]).bool()}
    return x, y, texts, masks


class _Toy(nn.Module):
    """Two linear 'encoders' and the loss (its temperature is a model parameter, as in training)."""

    def __init__(self):
        super().__init__()
        self.img, self.txt, self.loss = nn.Linear(6, 4), nn.Linear(6, 4), OrganContrastiveLoss()

    def forward(self, x, y, texts, masks):
        img = {o: self.img(x[:, k]) for k, o in enumerate(ORGANS)}
        txt = {o: self.txt(y[:, k]) for k, o in enumerate(ORGANS)}
        return self.loss(img, txt, texts, masks)


def _rows(batch, sl):
    x, y, texts, masks = batch
    return x[sl], y[sl], {o: t[sl] for o, t in texts.items()}, {o: m[sl] for o, m in masks.items()}


def _ddp_worker(rank: int, port: int, state: dict, ref: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    try:
        sl = RANK_ROWS[rank]
        # the organ loss through DDP: the same loss, per-organ log and parameter gradients as one process
        model = _Toy()
        model.load_state_dict(state)
        ddp = nn.parallel.DistributedDataParallel(model)
        total, per_organ = ddp(*_rows(_toy_batch(), sl))
        total.backward()
        assert_close(total.detach(), ref["total"])
        assert per_organ.keys() == ref["per_organ"].keys() == {"heart", "lung"}
        assert per_organ == pytest.approx(ref["per_organ"])
        for name, p in model.named_parameters():
            assert_close(p.grad, ref["grads"][name], msg=name)
        # the one-group function: every rank returns the global loss; the gather's backward sums the
        # two ranks' identical copies, so local embeddings get 2 x the single-process gradient
        img, txt = (t[sl].clone().requires_grad_(True) for t in ref["global_inputs"])
        loss = contrastive_loss(img, txt, ref["global_keys"][sl], 0.1)
        loss.backward()
        assert_close(loss.detach(), ref["global_loss"])
        assert_close(img.grad, 2 * ref["global_grads"][0][sl])
        assert_close(txt.grad, 2 * ref["global_grads"][1][sl])
        # ranks naming different organs fail on every rank instead of hanging in a collective
        organs = ORGANS[:rank + 1]  # even a different number of organs
        with pytest.raises(RuntimeError, match="different organ names"):
            model.loss({o: img for o in organs}, {o: txt for o in organs}, {o: ref["global_keys"][sl] for o in organs})
    finally:
        dist.destroy_process_group()


def test_distributed_gather_matches_one_process_on_the_whole_batch():
    torch.manual_seed(0)
    model = _Toy()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    total, per_organ = model(*_toy_batch())
    total.backward()
    img, txt = (t.clone().requires_grad_(True) for t in _embeddings(5, 4, seed=3))
    keys = text_keys(["A.", "B.", "A.", "C.", "B."])
    global_loss = contrastive_loss(img, txt, keys, 0.1)
    global_loss.backward()
    ref = {"total": total.detach(), "per_organ": per_organ,
           "grads": {n: p.grad.clone() for n, p in model.named_parameters()},
           "global_inputs": (img.detach(), txt.detach()), "global_keys": keys,
           "global_loss": global_loss.detach(), "global_grads": (img.grad, txt.grad)}
    assert set(per_organ) == {"heart", "lung"}
    mp.spawn(_ddp_worker, args=(free_port(), state, ref), nprocs=2, join=True)
