"""Image-text contrastive losses for CT-RATE: fVLM's per-organ loss and the CT-CLIP-style global one.

fVLM (Shui et al., ICLR 2025, arXiv 2501.14548) contrasts each organ's image embedding with the
report sentences about that organ. Its *disease-aware pairing* stops the loss from pushing apart
items whose texts say the same thing: within one organ, items i and j are a positive pair when
i == j, when both texts are the organ's normal template, or when the texts are identical strings.
The target of row i is its positives, row-normalised, and the loss is cross-entropy against these
soft targets, image->text and text->image averaged. The global baseline is the same loss over one
group, the whole report (``contrastive_loss``).

Conventions:

* Texts enter as int64 keys (``text_keys``): a stable 64-bit hash (blake2b, not Python's salted
  ``hash``), with every normal text mapped to the key of its template, so "positive pair" is
  "equal keys" and keys can be all-gathered like any tensor.
* A text is normal when it *starts with* the template, as in fVLM's code (``startswith``): a normal
  sentence with a trailing remark is still a normal organ. The exact template is the common case.
* Embeddings are L2-normalised inside the loss, so a projection head's raw output can go in as is
  (and already-unit vectors are unchanged). Logits are computed in float32: at the lowest
  temperature, 0.001, they reach +-1000, which half precision cannot resolve.
* Temperature (``Temperature``): a direct parameter, initialised at 0.07 and clamped (projected)
  to [0.001, 0.5] where it is read, as BLIP/fVLM store and clamp it (``self.temp``), so a learning
  rate tuned for their recipe means the same here.
* A group contributes nothing when it has fewer than 2 items in the (gathered) batch -- a 1x1
  softmax is identically 1: no negatives, loss 0 -- or when every pair is positive (all items
  normal, say): the targets are then uniform and would only push all its similarities to one value.
  fVLM skips such groups too.
* Distributed: with an initialised process group the embeddings and keys are all-gathered
  (gradients flow back through the gather) and *every rank computes the loss over the whole
  gathered batch*, all rows against all columns, so every rank returns the same value, equal to
  the single-process loss on the concatenated batch. The gather's backward sums the W identical
  copies, so each rank's embeddings receive W x the single-process gradient, and DDP's gradient
  averaging divides the W back out: parameters get exactly the single-process gradient (the
  temperature, not gathered, gets it on every rank with or without DDP). (The
  local-rows variant of open_clip needs equal per-rank counts to be exact; per-organ counts are
  not equal.) Without a process group every gather is the identity.
"""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ... import distributed

NORMAL_TEMPLATE = "{organ} shows no significant abnormalities."
TEMPERATURE_INIT = 0.07
TEMPERATURE_RANGE = (0.001, 0.5)

Texts = torch.Tensor | Sequence[str]


# --- text keys and targets -----------------------------------------------------------------------

def text_key(text: str) -> int:
    """A stable signed 64-bit key of ``text``: the same in every process and every run."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def text_keys(texts: Sequence[str], normal: str | None = None, device: torch.device | str | None = None
              ) -> torch.Tensor:
    """int64 keys of ``texts``; texts starting with ``normal`` (a formatted template) all get its key."""
    return torch.tensor([text_key(normal if normal is not None and t.startswith(normal) else t) for t in texts],
                        dtype=torch.int64, device=device)


def organ_text_keys(texts: Sequence[str], organ: str, template: str = NORMAL_TEMPLATE,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """``text_keys`` of one organ's texts with that organ's normal template."""
    return text_keys(texts, template.format(organ=organ), device)


def pair_targets(keys: torch.Tensor) -> torch.Tensor:
    """Soft targets [N, N]: positives (i == j or equal keys), each row normalised to sum to 1."""
    pos = (keys[:, None] == keys[None, :]) | torch.eye(len(keys), dtype=torch.bool, device=keys.device)
    pos = pos.float()
    return pos / pos.sum(1, keepdim=True)


def _contributes(keys: torch.Tensor) -> bool:
    """At least two items and at least one negative pair (see the module docstring)."""
    return len(keys) >= 2 and bool((keys != keys[0]).any())


# --- temperature ---------------------------------------------------------------------------------

class Temperature(nn.Module):
    """Learnable softmax temperature. The parameter ``value`` is the temperature itself (not its log),
    as BLIP/fVLM store it; each read projects it back into ``[low, high]``, so the bound holds after
    any optimiser step.

    The projection is in place, as BLIP/fVLM's ``temp.clamp_``, not a ``torch.clamp`` in the graph:
    that passes no gradient at or beyond a bound, so a temperature that once reached one would stay
    there. It writes through ``.data``, which autograd does not version, so a graph that already
    read the value is unaffected (the value only moves after an optimiser step). A 0-d parameter:
    keep it out of weight decay, as BLIP/fVLM do for every 0/1-d parameter.
    """

    def __init__(self, init: float = TEMPERATURE_INIT, low: float = TEMPERATURE_RANGE[0],
                 high: float = TEMPERATURE_RANGE[1]):
        super().__init__()
        if not low <= init <= high:
            raise ValueError(f"temperature init {init} is outside [{low}, {high}]")
        self.low, self.high = low, high
        self.value = nn.Parameter(torch.tensor(float(init)))

    def forward(self) -> torch.Tensor:
        self.value.data.clamp_(self.low, self.high)
        return self.value

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


# --- gathering across processes ------------------------------------------------------------------

def world_size() -> int:
    """Processes in the default group; 1 without an initialised process group or inside
    ``distributed.solo()`` (every rank validating on the whole of VAL gathers nothing)."""
    return distributed.current().world_size


def _all_gather_counts(local: torch.Tensor) -> torch.Tensor:
    """Stack of every rank's int64 vector ``local`` [W, K] (no gradient)."""
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    return torch.stack(parts)


def _gather_rows(x: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Rows of ``x`` from every rank, in rank order (rank r holds ``sizes[r]`` rows).

    Collectives need one shape on all ranks, so rows are padded to the largest count and the
    padding cut off after the gather; floating tensors keep their graph through the gather.
    """
    pad = max(sizes) - len(x)
    padded = torch.cat([x, x.new_zeros(pad, *x.shape[1:])]) if pad else x
    if x.is_floating_point():
        import torch.distributed.nn.functional as dist_nn  # here: only reached with a process group
        with warnings.catch_warnings():
            # Deprecated in recent torch for the private _functional_collectives.all_gather_single,
            # whose import costs seconds; both have the same backward (gradients summed over ranks).
            warnings.filterwarnings("ignore", message=".*all_gather is deprecated", category=FutureWarning)
            parts = dist_nn.all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def gather_batch(*tensors: torch.Tensor, sizes: Sequence[int] | None = None) -> tuple[torch.Tensor, ...]:
    """Each tensor's rows from all processes (with gradients); the identity without a process group.

    A collective: every rank must call it. ``sizes`` are the per-rank row counts when the caller
    already knows them (saves a collective).
    """
    if world_size() == 1:
        return tensors
    if sizes is None:
        sizes = _all_gather_counts(torch.tensor([len(tensors[0])], device=tensors[0].device))[:, 0].tolist()
    return tuple(_gather_rows(t, sizes) for t in tensors)


# --- the loss ------------------------------------------------------------------------------------

def _soft_clip_loss(img: torch.Tensor, txt: torch.Tensor, keys: torch.Tensor,
                    temperature: torch.Tensor | float) -> torch.Tensor:
    """Symmetric soft-target InfoNCE of one group that is already gathered."""
    img = F.normalize(img.float(), dim=-1)
    txt = F.normalize(txt.float(), dim=-1)
    logits = img @ txt.T / temperature
    targets = pair_targets(keys)  # symmetric, so it also serves text -> image
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _zero(*tensors: torch.Tensor) -> torch.Tensor:
    """0, attached to the graph of ``tensors``: a skipped group still hands every parameter behind it
    a (zero) gradient, so DDP without ``find_unused_parameters`` does not stall on it."""
    return sum((t.sum() * 0 for t in tensors), torch.zeros((), device=tensors[0].device))


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, keys: torch.Tensor,
                     temperature: torch.Tensor | float) -> torch.Tensor:
    """Disease-aware image-text InfoNCE of one group (one organ, or the whole report).

    img, txt [N, D] embeddings (normalised here); keys [N] int64 text keys (``text_keys``);
    gathered across processes when a process group is initialised. A zero (in the graph) when the
    gathered group has < 2 items or no negative pair.
    """
    if not len(img) == len(txt) == len(keys):
        raise ValueError(f"img, txt and keys need one row per item, got {len(img)}, {len(txt)}, {len(keys)}")
    all_img, all_txt, all_keys = gather_batch(img, txt, keys.to(img.device))
    if not _contributes(all_keys):
        return _zero(img, txt)
    return _soft_clip_loss(all_img, all_txt, all_keys, temperature)


class OrganContrastiveLoss(nn.Module):
    """fVLM's loss: ``contrastive_loss`` per organ, summed over the organs that contribute, with one
    learnable temperature shared by the organs.

    ``forward(img, txt, texts, mask)`` takes dicts keyed by organ name:
      img, txt   [B, D] embeddings of the batch (the mask picks the items with the organ), or
                 [n, D] of only those n items, in batch order;
      texts      int64 keys (``organ_text_keys``, cheaper in a collate) or the strings, per row of img;
      mask       bool [B] per organ (optional; absent means every item has the organ).
    It returns the total (a tensor that always backpropagates) and ``{organ: float}`` for the organs
    that contributed. Under DDP every rank must pass the same organ names (an organ missing from a
    rank's batch is an all-False mask), since every organ's gather is a collective; a mismatch raises.
    """

    def __init__(self, template: str = NORMAL_TEMPLATE, temperature: Temperature | None = None):
        super().__init__()
        self.template = template
        self.temperature = temperature if temperature is not None else Temperature()

    def forward(self, img: Mapping[str, torch.Tensor], txt: Mapping[str, torch.Tensor],
                texts: Mapping[str, Texts], mask: Mapping[str, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        organs = sorted(img)  # one order on every rank: the collectives below pair up by order
        if set(txt) != set(organs) or set(texts) != set(organs):
            raise ValueError(f"img, txt and texts name different organs: {sorted(img)}, {sorted(txt)}, "
                             f"{sorted(texts)}")
        groups = {o: self._present(o, img[o], txt[o], texts[o], None if mask is None else mask.get(o))
                  for o in organs}
        sizes = self._global_sizes(organs, groups)
        temperature = self.temperature()
        total = temperature * 0.0  # keeps the total a graph tensor when no organ contributes
        losses: dict[str, torch.Tensor] = {}
        for k, organ in enumerate(organs):
            i, t, keys = groups[organ]
            if sum(sizes[k]) >= 2:  # decided on the global count, so every rank skips the same organs
                all_i, all_t, all_keys = gather_batch(i, t, keys, sizes=sizes[k])
                if _contributes(all_keys):
                    losses[organ] = _soft_clip_loss(all_i, all_t, all_keys, temperature)
                    continue
            total = total + _zero(img[organ], txt[organ])
        if not losses:
            return total, {}
        stacked = torch.stack(list(losses.values()))
        # one device sync for the log, not one per organ
        return total + stacked.sum(), dict(zip(losses, stacked.detach().tolist()))

    def _present(self, organ: str, img: torch.Tensor, txt: torch.Tensor, texts: Texts,
                 mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(img, txt, keys) of the items that have ``organ``."""
        keys = texts.to(img.device) if isinstance(texts, torch.Tensor) else \
            organ_text_keys(texts, organ, self.template, img.device)
        n = len(img)
        if mask is not None:
            mask = mask.to(img.device, torch.bool)
            n = int(mask.sum())
            # each of the three may come for the whole batch (select) or for the present items only
            img, txt, keys = (x[mask] if len(x) == len(mask) != n else x for x in (img, txt, keys))
        if not len(img) == len(txt) == len(keys) == n:
            raise ValueError(f"organ {organ!r}: {len(img)} image rows, {len(txt)} text rows, {len(keys)} texts")
        return img, txt, keys

    @staticmethod
    def _global_sizes(organs: list[str], groups: dict) -> list[list[int]]:
        """Per organ, the item count of every rank ([[n] ...] in one process).

        Ranks first compare a key of their organ names (a fixed-size collective), so that ranks
        disagreeing on them fail on every rank instead of hanging in a mismatched collective.
        """
        if world_size() == 1:
            return [[len(groups[o][2])] for o in organs]
        device = groups[organs[0]][0].device if organs else None
        names = _all_gather_counts(torch.tensor([text_key("\n".join(organs))], device=device))
        if not bool((names == names[0]).all()):
            raise RuntimeError(f"ranks passed different organ names to the contrastive loss (this rank: {organs})")
        if not organs:
            return []
        counts = _all_gather_counts(torch.tensor([len(groups[o][2]) for o in organs], device=device))
        return counts.T.tolist()
