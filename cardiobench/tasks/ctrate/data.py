"""The data side of task ctrate_zeroshot: volumes, organ token masks and texts of CT-RATE, batched.

Each item is one volume ``[1, Z, X, Y]`` (the cache stores (x, y, z)), its organs' masks max-pooled
once to the ViT's patch grid (bool ``[O, *grid]``; the model accepts masks already on the grid), which
organs count for the loss (``present``: the group lies inside the crop by the task's rule, see
:func:`cardiobench.tasks.ctrate.preprocess.group_inside`) and one text per contrastive group: each
organ's text, ``whole_image`` (the sentences no organ carries) and/or ``report`` (findings +
impressions, CT-CLIP's global text). :func:`collate` encodes every distinct text of a batch once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...errors import DataError
from . import format as ct_rate
from . import organ_text, organs
from .contrastive import text_keys
from .preprocess import group_inside

log = logging.getLogger("cardiobench")
REPORT = "report"  # the group of the whole report (CT-CLIP's global text)


@dataclass(frozen=True)
class Groups:
    """The contrastive groups of a model: its organs (image side: organ queries) and the groups the
    global embedding learns (``whole_image`` and/or ``report``)."""

    organs: tuple[str, ...]
    global_groups: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.organs, *self.global_groups)


def model_groups(organ_set: str | None, mask_ids: str, whole_image: bool, global_text: str
                 ) -> tuple[Groups, list[str], dict]:
    """(groups, organs the mask version cannot segment, organ -> TotalSegmentator class ids); no organ
    set: a global model contrasting the whole report."""
    if organ_set in (None, "none", "None"):
        return Groups((), (REPORT,)), [], {}
    if global_text not in ("whole_image", REPORT):
        raise DataError(f"text.global_text must be whole_image or report, not {global_text!r}")
    table, unavailable = organs.group_table(str(organ_set), mask_ids)
    glob = () if not whole_image else ((organ_text.WHOLE_IMAGE,) if global_text == "whole_image" else (REPORT,))
    return Groups(tuple(table), glob), unavailable, table


def report_text(findings: str, impressions: str) -> str:
    """CT-CLIP's text of a volume: findings then impressions."""
    return " ".join(t.strip() for t in (findings, impressions) if t and t.strip())


def volume_texts(samples: pd.DataFrame, reports: pd.DataFrame, groups: Groups, source: str,
                 decomposed: organ_text.Decomposed | None = None) -> list[dict[str, str]]:
    """Per volume, one text per group (fVLM's organ texts by the rules or from its JSON files)."""
    by_name = reports.set_index("VolumeName")
    wanted = [g for g in groups.names if g != REPORT]
    out = []
    for name in samples.sample_id:
        r = by_name.loc[name] if name in by_name.index else None
        findings, impressions = ("", "") if r is None else (r.Findings_EN, r.Impressions_EN)
        texts: dict[str, str] = {}
        if wanted:
            if source == "decomposed":
                texts = decomposed.texts(name, wanted)
            else:
                texts = organ_text.decompose(findings, impressions, wanted)
        if REPORT in groups.names:
            texts[REPORT] = report_text(findings, impressions)
        out.append(texts)
    return out


def reports_of(root, samples: pd.DataFrame) -> pd.DataFrame:
    """The report rows of every split present in ``samples`` (DataError when a volume has none)."""
    frames = [ct_rate.read_reports(root, key) for key, split in ct_rate.SPLITS.items()
              if (samples.split.isin(["TRAIN", "VAL"]) if split == "TRAIN" else samples.split == split).any()]
    reports = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["VolumeName"])
    missing = sorted(set(samples.sample_id) - set(reports.VolumeName))
    if missing:
        raise DataError(f"{root}: {len(missing)} volume(s) have no report row (first: {missing[0]}); "
                        f"contrastive training needs each volume's report")
    return reports


def token_masks(mask: np.ndarray, table: dict[str, list[int]], patch: Sequence[int]) -> np.ndarray:
    """bool [O, *grid]: which ViT patches each organ touches (the cached (x, y, z) label map read as
    [Z, X, Y], max-pooled with kernel = stride = the patch)."""
    zxy = torch.from_numpy(np.ascontiguousarray(mask.transpose(2, 0, 1)))
    grid = [s // p for s, p in zip(zxy.shape, patch)]
    out = np.zeros((len(table), *grid), dtype=bool)
    for k, ids in enumerate(table.values()):
        m = torch.isin(zxy, torch.tensor(ids, dtype=zxy.dtype)).to(torch.float16)[None, None]
        out[k] = (F.max_pool3d(m, kernel_size=tuple(patch), stride=tuple(patch))[0, 0] > 0).numpy()
    return out


class CTRateDataset(Dataset):
    """Volumes with their organ token masks, organ presence and group texts (see the module docstring)."""

    def __init__(self, volumes: list[np.ndarray], tokens: list[np.ndarray] | None, present: np.ndarray,
                 texts: list[dict[str, str]], groups: Groups, profiles: np.ndarray | None = None):
        self.volumes, self.tokens, self.present, self.texts, self.groups = volumes, tokens, present, texts, groups
        self.profiles = profiles  # [N, O, C] organ intensity profiles, for the organ-amounts branch

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, i: int) -> dict:
        x = torch.from_numpy(np.ascontiguousarray(self.volumes[i].transpose(2, 0, 1)).astype(np.float32))[None]
        item = {"x": x, "present": torch.from_numpy(self.present[i]), "texts": self.texts[i]}
        if self.tokens is not None:
            item["token_mask"] = torch.from_numpy(self.tokens[i])
        if self.profiles is not None:
            item["organ_profile"] = torch.from_numpy(self.profiles[i])
        return item


class Collate:
    """Stacks items and tokenizes every distinct text of the batch once.

    Gives ``x``, ``present`` [B, O], ``token_mask`` [B, O, *grid], ``organ_profile`` (when the
    dataset has them) [B, O, C], ``input_ids`` / ``attention_mask``
    [U, T] of the U distinct texts, ``text_index`` [B, G] (each group's row in them) and ``keys``
    [B, G] (:func:`cardiobench.tasks.ctrate.contrastive.text_keys`, every organ's normal texts one key).
    """

    def __init__(self, tokenizer, groups: Groups, max_length: int):
        self.tokenizer, self.groups, self.max_length = tokenizer, groups, max_length

    def __call__(self, items: list[dict]) -> dict:
        names = self.groups.names
        texts = [[it["texts"][g] for g in names] for it in items]
        unique = sorted({t for row in texts for t in row})
        where = {t: i for i, t in enumerate(unique)}
        # the encoder reads a normal organ's findings without the template (fVLM's released code); the keys
        # below still see the template, so normal organs pair with each other
        encoded = {t: organ_text.encoder_text(g, t) if g in self.groups.organs else t
                   for row in texts for g, t in zip(names, row)}
        enc = self.tokenizer.tokenize([encoded[t] for t in unique], self.max_length)
        keys = torch.stack([text_keys([row[k] for row in texts],
                                      organ_text.normal_text(g) if g in self.groups.organs else None)
                            for k, g in enumerate(names)], dim=1)
        batch = {"x": torch.stack([it["x"] for it in items]), "present": torch.stack([it["present"] for it in items]),
                 "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                 "text_index": torch.tensor([[where[t] for t in row] for row in texts], dtype=torch.int64),
                 "keys": keys}
        for key in ("token_mask", "organ_profile"):
            if key in items[0]:
                batch[key] = torch.stack([it[key] for it in items])
        return batch


def presence(class_inside: list[np.ndarray] | None, n: int, groups: Groups, table: dict[str, list[int]],
             rule: str) -> np.ndarray:
    """bool [N, G]: which groups count for each volume's loss (organs inside by ``rule``; global
    groups always)."""
    out = np.ones((n, len(groups.names)), dtype=bool)
    for k, organ in enumerate(groups.organs):
        out[:, k] = [group_inside(ci, table[organ], rule) for ci in class_inside]
    return out


def organ_counts(samples: pd.DataFrame, present: np.ndarray, tokens: list[np.ndarray] | None,
                 groups: Groups, unavailable: Sequence[str]) -> pd.DataFrame:
    """Per organ and split: volumes where it is visible in the crop and where it counts for the loss."""
    rows = []
    for k, organ in enumerate(groups.organs):
        for split in ("TRAIN", "VAL", "TEST"):
            sel = (samples.split == split).to_numpy()
            seen = sum(bool(tokens[i][k].any()) for i in np.flatnonzero(sel)) if tokens is not None else 0
            rows.append({"organ": organ, "split": split, "volumes": int(sel.sum()), "in_crop": int(seen),
                         "counted": int(present[sel, k].sum())})
    rows += [{"organ": o, "split": "all", "volumes": len(samples), "in_crop": 0, "counted": 0,
              "note": "unavailable with TotalSegmentator v2 (the licensed face task)"} for o in unavailable]
    return pd.DataFrame(rows)
