"""Task ctrate_zeroshot: image-text contrastive pre-training on CT-RATE, zero-shot AUROC of 18 labels.

Protocol: CT-RATE's ``train`` volumes (a seeded tenth of the patients held out as VAL) with their
reports train the model; the labels never enter training. fVLM (``organs.groups: "24"`` or ``"4"``)
contrasts each organ's image embedding (a query attending to the organ's ViT tokens) with the
report sentences about that organ, with disease-aware pairing (:mod:`cardiobench.tasks.ctrate.contrastive`), and
the global embedding with the sentences no organ carries; CT-CLIP's global baseline contrasts the
global embedding with the whole report. The epoch with the lowest VAL loss is kept. Every ``valid``
volume (TEST) is then scored for the 18 labels by prompts (:mod:`cardiobench.tasks.ctrate.zero_shot`).
The per-group loss of every epoch goes to history.csv (``train_loss_<organ>``, ``val_loss_<organ>``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Subset
from tqdm.auto import tqdm

from ...data.problems import Problem
from ...data.source import DataSource
from ...distributed import map_shards
from ...errors import CardiobenchError
from ...io import atomic_path
from ...runs import Run
from ..base import Task, TaskData, register_task
from ..prepare import cached_loader, prepare
from . import format as ct_rate
from . import organ_text, organs, zero_shot
from .contrastive import OrganContrastiveLoss
from .data import (Collate, CTRateDataset, Groups, model_groups, organ_counts, presence, reports_of, token_masks,
                   volume_texts)
from .organ_amounts import check_views, organ_profile, thresholds
from .text_encoder import text_tokenizer

log = logging.getLogger("cardiobench")
SLUGS = [ct_rate.slug(label) for label in ct_rate.LABELS]


class ContrastiveModel(nn.Module):
    """The image-text network with its loss (which holds the learnable temperature, so the optimiser
    and the checkpoints see it) and the contrastive groups it was built for."""

    def __init__(self, net: nn.Module, criterion: OrganContrastiveLoss, groups: Groups):
        super().__init__()
        self.net, self.criterion, self.groups = net, criterion, groups

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """One batch's loss over every group (organs: their query embedding where the organ counts;
        global groups: the global embedding) and each group's part. The loss is the forward pass, so
        that under DistributedDataParallel the wrapper's forward runs (its gradient hooks need it)."""
        organ_emb, visible, global_emb = self.net.encode_image(batch["x"], batch.get("token_mask"),
                                                               batch.get("organ_profile"))
        text = self.net.encode_text(batch["input_ids"], batch["attention_mask"])
        n_organs = len(self.groups.organs)
        img, txt, keys, mask = {}, {}, {}, {}
        for k, group in enumerate(self.groups.names):
            organ = k < n_organs
            img[group] = organ_emb[:, k] if organ else global_emb
            mask[group] = batch["present"][:, k] & visible[:, k] if organ else batch["present"][:, k]
            txt[group] = text[batch["text_index"][:, k]]
            keys[group] = batch["keys"][:, k]
        return self.criterion(img, txt, keys, mask)


def contrastive_step(model: ContrastiveModel | nn.parallel.DistributedDataParallel, batch: dict
                     ) -> tuple[torch.Tensor, dict[str, float]]:
    """One batch's contrastive loss and each group's part (``ContrastiveModel.forward``)."""
    return model(batch)


def _problem_rows(samples: pd.DataFrame, bad: np.ndarray, what: str) -> list[Problem]:
    return [Problem(r.image, what) for r in samples[bad].itertuples()]


@dataclass(frozen=True)
class ZeroShotExtras:
    """What the model and prediction need beyond the prepared volumes: the contrastive groups (organs
    and/or the whole image), the tokenizer trained on the TRAIN texts, the scored split's dataset, and
    the first scored volume for the organ overlays (None without organs)."""

    groups: Groups
    tokenizer: Any
    test: CTRateDataset
    overlay: dict[str, Any] | None


@register_task("ctrate_zeroshot")
class CTRateZeroShot(Task):
    def datasets(self, cfg: DictConfig, run: Run, source: DataSource) -> TaskData:
        groups, unavailable, table = model_groups(cfg.organs.groups, str(cfg.organs.mask_ids),
                                                  bool(cfg.organs.whole_image), str(cfg.text.global_text))
        if groups.organs and not cfg.image.masks:
            raise CardiobenchError("organ models need the organ masks: image.masks=true")
        if unavailable:
            log.warning("organ(s) %s unavailable with TotalSegmentator %s masks: left out", ", ".join(unavailable),
                        cfg.organs.mask_ids)
        samples, problems = ct_rate.index(source.root, mask_ids=str(cfg.organs.mask_ids))
        samples["split"] = ct_rate.split_train_val(samples, float(cfg.split.val_fraction), int(cfg.seed))
        unlabelled = (samples.split == cfg.task.split).to_numpy() & samples[SLUGS].isna().any(axis=1).to_numpy()
        problems += _problem_rows(samples, unlabelled, "no complete label row: not scored")
        samples = samples[~unlabelled].reset_index(drop=True)

        image = OmegaConf.to_container(cfg.image, resolve=True)
        prepared = prepare(run, source, samples, problems, cached_loader(cfg, image),
                           sources=ct_rate.split_sources(source.root),
                           split_columns=["sample_id", "patient_id", "scan_id", "split"])
        samples, arrays, by = prepared.samples, prepared.arrays, prepared.split

        decomposed = None
        if cfg.text.source == "decomposed":
            if not (cfg.text.desc_info and cfg.text.conc_info):
                raise CardiobenchError("text.source=decomposed needs text.desc_info and text.conc_info (fVLM's JSON files)")
            decomposed = organ_text.load_decomposed(cfg.text.desc_info, cfg.text.conc_info)
        elif cfg.text.source != "rules":
            raise CardiobenchError(f"text.source must be rules or decomposed, not {cfg.text.source!r}")
        texts = volume_texts(samples, reports_of(source.root, samples), groups, str(cfg.text.source), decomposed)
        patch = [int(p) for p in cfg.model.patch_size]
        tokens = [token_masks(a["mask"], table, patch) for a in arrays] if groups.organs else None
        profiles = None  # the organ-amounts branch's input (model.amounts levels), once per volume
        if groups.organs and cfg.model.get("amounts"):
            levels = thresholds(int(cfg.model.amounts))
            views = check_views(cfg.model.get("amount_views") or ("raw",))
            outside = organs.bone_ids(str(cfg.organs.mask_ids)) if cfg.model.get("amount_outside") else None
            profiles = np.stack([organ_profile(np.asarray(a["image"]), np.asarray(a["mask"]), table, levels, views,
                                               outside)
                                 for a in tqdm(arrays, desc="organ profiles", disable=not cfg.progress, leave=False)])
        present = presence([a["class_inside"] for a in arrays] if groups.organs else None, len(samples), groups,
                           table, str(cfg.organs.inside_rule))
        counts = organ_counts(samples, present, tokens, groups, unavailable)
        run.write_table("organ_counts.csv", counts)
        if groups.organs:
            train = counts[counts.split == "TRAIN"]
            log.info("organs counted in TRAIN volumes: %s", ", ".join(f"{r.organ} {r.counted}" for r in train.itertuples()))

        train_texts = sorted({t for i in by["TRAIN"] for t in texts[i].values()})
        tokenizer = text_tokenizer(run.artifact("tokenizer"), train_texts, cfg.text.pretrained,
                                   vocab_size=int(cfg.text.vocab_size))
        volumes = [a["image"] for a in arrays]

        def dataset(idx: np.ndarray) -> CTRateDataset:
            return CTRateDataset([volumes[i] for i in idx], None if tokens is None else [tokens[i] for i in idx],
                                 present[idx], [texts[i] for i in idx], groups,
                                 None if profiles is None else profiles[idx])

        log.info("%d/%d/%d TRAIN/VAL/TEST volumes (%d/%d/%d patients) of %s voxels; %d contrastive groups; "
                 "vocabulary %d", *(len(v) for v in by.values()),
                 *(samples.patient_id.iloc[v].nunique() for v in by.values()), "x".join(map(str, volumes[0].shape)),
                 len(groups.names), tokenizer.vocab_size)
        first = by[cfg.task.split][0]
        overlay = {"name": samples.sample_id.iat[first], "image": np.asarray(arrays[first]["image"], np.float32),
                   "mask": np.asarray(arrays[first]["mask"])} if groups.organs else None
        return TaskData(dataset(by.train), dataset(by.val), prepared,
                        ZeroShotExtras(groups=groups, tokenizer=tokenizer, test=dataset(by[cfg.task.split]),
                                       overlay=overlay),
                        collate=Collate(tokenizer, groups, int(cfg.text.max_length)))

    def build_model(self, cfg: DictConfig, data: TaskData) -> nn.Module:
        from ...models import build
        from .contrastive import Temperature

        groups: Groups = data.extras.groups
        kwargs = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "name"}
        x, y, z = (int(s) for s in cfg.image.shape)
        kwargs["img_size"] = [z, x, y]
        if not kwargs.get("text_weights"):
            kwargs["vocab_size"] = data.extras.tokenizer.vocab_size
        if groups.organs:
            kwargs["organs"] = list(groups.organs)
        elif cfg.model.name == "fvlm":
            raise CardiobenchError("model fvlm needs an organ set (organs.groups: '24' or '4'); "
                                   "the global baseline is model ctclip_global")
        net = build(cfg.model.name, **kwargs)
        return ContrastiveModel(net, OrganContrastiveLoss(organ_text.NORMAL, Temperature()), groups)

    def loss(self, cfg: DictConfig):
        if cfg.train.loss != "contrastive":
            raise CardiobenchError(f"task ctrate_zeroshot trains with train.loss=contrastive, not {cfg.train.loss!r}")
        return None  # the loss lives in the model (its temperature is learned)

    def training_step(self, model: nn.Module, batch: dict, loss_fn) -> tuple[torch.Tensor, dict[str, float]]:
        return contrastive_step(model, batch)

    @torch.no_grad()
    def _image_embeddings(self, model: ContrastiveModel, ds: CTRateDataset | Subset, collate: Collate, device: str,
                          batch: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Organ embeddings [N, O, D], visibility [N, O] and global embeddings [N, D] of ``ds``."""
        model.eval()
        organ, visible, glob = [], [], []
        for i in tqdm(range(0, len(ds), batch), desc="embed TEST", unit="batch", disable=not progress):
            items = [ds[j] for j in range(i, min(i + batch, len(ds)))]
            x = torch.stack([it["x"] for it in items]).to(device)
            masks = torch.stack([it["token_mask"] for it in items]).to(device) if "token_mask" in items[0] else None
            profile = torch.stack([it["organ_profile"] for it in items]) if "organ_profile" in items[0] else None
            o, v, g = model.net.encode_image(x, masks, profile)
            organ.append(o.float().cpu())
            visible.append(v.cpu())
            glob.append(g.float().cpu())
        return torch.cat(organ), torch.cat(visible), torch.cat(glob)

    @torch.no_grad()
    def _prompt_embeddings(self, model: ContrastiveModel, tokenizer, family: str, phrases: dict, max_length: int,
                           device: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Label -> unit text embeddings of its (positive, negative) prompts in a family."""
        pairs = {label: zero_shot.prompt_pair(label, family, phrases) for label in ct_rate.LABELS}
        texts = [t for pair in pairs.values() for t in pair]
        enc = tokenizer.tokenize(texts, max_length)
        emb = model.net.encode_text(enc["input_ids"].to(device), enc["attention_mask"].to(device)).float().cpu()
        return {label: (emb[2 * k], emb[2 * k + 1]) for k, label in enumerate(pairs)}

    def predict(self, cfg: DictConfig, run: Run, model: nn.Module, data: TaskData, device: str) -> pd.DataFrame:
        samples, by, groups = data.prepared.samples, data.prepared.split, data.extras.groups
        split = cfg.task.split
        test, batch = data.extras.test, max(1, int(cfg.train.batch_size))
        organ_emb, visible, global_emb = map_shards(  # the volumes shared out among the ranks under torchrun
            lambda idx: self._image_embeddings(model, Subset(test, idx), data.collate, device, batch, cfg.progress),
            len(test))
        temperature = float(model.criterion.temperature().detach())
        phrases = OmegaConf.to_container(cfg.zero_shot.phrases, resolve=True) or {}
        rows = samples.iloc[by[split]][["sample_id", "patient_id", "split", *SLUGS]].reset_index(drop=True)
        rows[SLUGS] = rows[SLUGS].astype(int)
        people = samples.iloc[by[split]][["manufacturer", "sex", "age"]].reset_index(drop=True)  # subgroups
        report: dict = {"temperature": temperature, "primary_prompts": str(cfg.zero_shot.prompts), "labels": {}}
        for family in zero_shot.PROMPTS:
            prompts = self._prompt_embeddings(model, data.extras.tokenizer, family, phrases,
                                              int(cfg.text.max_length), device)
            for label, slug in zip(ct_rate.LABELS, SLUGS):
                src = zero_shot.label_source(label, groups.organs)
                image, fallback = global_emb, np.zeros(len(rows), dtype=bool)
                if src != zero_shot.GLOBAL:
                    k = groups.organs.index(src)
                    seen = visible[:, k]
                    image = torch.where(seen[:, None], organ_emb[:, k], global_emb)
                    fallback = ~seen.numpy()
                prob = zero_shot.pair_probability(image, *prompts[label], temperature).numpy()
                rows[f"{slug}_prob_{family}"] = prob
                entry = report["labels"].setdefault(label, {"column": slug, "embedding": src, "prompts": {}})
                entry["prompts"][family] = list(zero_shot.prompt_pair(label, family, phrases))
                entry["global_fallback_rows"] = int(fallback.sum())
        primary = str(cfg.zero_shot.prompts)
        if primary not in zero_shot.PROMPTS:
            raise CardiobenchError(f"zero_shot.prompts must be one of {', '.join(zero_shot.PROMPTS)}, not {primary!r}")
        for slug in SLUGS:
            rows[f"{slug}_prob"] = rows[f"{slug}_prob_{primary}"]
        if any(e["embedding"] == zero_shot.GLOBAL for e in report["labels"].values()) and groups.organs:
            report["note"] = ("fVLM's evaluation leaves out labels no organ carries; here they are scored on the "
                              "whole-image (global) embedding")
        run.write_artifact("zero_shot.json", json.dumps(report, indent=1) + "\n")
        self._write_overlays(run, data, int(cfg.overlays), str(cfg.organs.groups), str(cfg.organs.mask_ids))
        rows[people.columns] = people  # last: the scanner's vendor, sex and age, for the page's subgroups
        order = ["sample_id", "patient_id", "split"]
        return rows[order + [c for c in rows.columns if c not in order]]

    def _write_overlays(self, run: Run, data: TaskData, count: int, organ_set: str, mask_ids: str) -> None:
        """A few axial slices of the first scored volume with its merged organ labels (organ_overlays.npz)."""
        overlay = data.extras.overlay
        if overlay is None or count <= 0:
            return
        merged, names = organs.merged_labels(overlay["mask"], organ_set, mask_ids)
        rows = np.flatnonzero(merged.any(axis=(0, 1)))
        if rows.size == 0:
            return
        zs = [int(z) for z in np.linspace(rows[0], rows[-1], count + 2)[1:-1].round()]
        # RAS (x, y, z) cache -> (y, x) rows and columns in radiological view: anterior up, patient's right left
        image = np.stack([overlay["image"][::-1, ::-1, z].T for z in zs]).astype(np.float32)
        labels = np.stack([merged[::-1, ::-1, z].T for z in zs]).astype(np.uint8)
        titles = np.array([f"{overlay['name']}, axial slice {z}" for z in zs])
        with atomic_path(run.artifact("organ_overlays.npz"), suffix=".npz") as tmp:
            np.savez_compressed(tmp, image=image, labels=labels, organs=np.array(names), titles=titles)
