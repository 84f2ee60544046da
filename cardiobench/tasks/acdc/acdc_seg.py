"""Task acdc_seg: LV, RV and myocardium segmentation of short-axis cine MRI at ED and ES (ACDC).

Protocol: 2D slice-wise training on a patient-grouped, group-stratified TRAIN/VAL split of
``training/`` (written to the run's ``split.csv``), the epoch with the best validation Dice kept;
every ``testing/`` volume predicted slice by slice, the class probabilities resampled to the
ground truth's grid, and scored in 3D with the header spacing (:mod:`.scoring`). The
predicted masks are saved in challenge naming (``masks/patientNNN_ED.nii.gz``) with the ground
truth's affine. Then each TEST volume is re-scored under every artifact x severity of
``eval.artifacts`` (:mod:`cardiobench.tasks.acdc.artifacts`, seeded per case: every model sees the same
corrupted input), and ``clinical.csv`` holds the clinical indices of the clean predictions.
"""
from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm.auto import tqdm

from ...data.source import DataSource
from ...distributed import map_shards
from ...io import atomic_path
from ...runs import Run
from ..base import Task, TaskData, register_task
from ..prepare import cached_loader, prepare
from . import format as acdc
from .scoring import ROW_COLUMNS, STRUCTURES, clinical_indices, score_rows
from .slices import SliceDataset

log = logging.getLogger("cardiobench")


@torch.no_grad()
def segment(model: torch.nn.Module, image: np.ndarray, device: str, batch: int = 32) -> torch.Tensor:
    """Class probabilities (Z, C, S, S) of a (Z, S, S) volume, ``batch`` slices at a time."""
    model.eval()
    out = []
    for z in range(0, len(image), batch):
        x = torch.from_numpy(np.array(image[z:z + batch], dtype=np.float32))[:, None].to(device)
        out.append(torch.softmax(model(x).float(), dim=1).cpu())
    return torch.cat(out)


def to_native(probs: torch.Tensor, shape: tuple[int, int, int]) -> np.ndarray:
    """Label map (X, Y, Z) on the ground truth's grid: probabilities resampled bilinearly, then argmax."""
    x, y, _ = shape
    up = F.interpolate(probs, size=(x, y), mode="bilinear", align_corners=False)
    return up.argmax(1).numpy().astype(np.uint8).transpose(1, 2, 0)


def case_seed(sample_id: str, artifact: str, severity: str) -> int:
    """The corruption seed of one case: the same for every model and run."""
    return zlib.crc32(f"{sample_id}|{artifact}|{severity}".encode())


def volume_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over LV, RV, MYO of the 3D Dice (both empty: 1)."""
    d = []
    for v in STRUCTURES.values():
        p, t = pred == v, truth == v
        s = p.sum() + t.sum()
        d.append(1.0 if s == 0 else 2.0 * (p & t).sum() / s)
    return float(np.mean(d))


def save_mask(path: Path, labels: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(labels.astype(np.uint8), affine)
    img.header.set_data_dtype(np.uint8)
    with atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(img, str(tmp))


@register_task("acdc_seg")
class ACDCSeg(Task):
    def datasets(self, cfg: DictConfig, run: Run, source: DataSource) -> TaskData:
        samples, problems = acdc.index(source.root)
        samples = samples.assign(split=acdc.split_training(samples, seed=int(cfg.seed),
                                                           val_fraction=float(cfg.split.val_fraction)))
        size = int(cfg.image.size)
        prepared = prepare(run, source, samples, problems, cached_loader(cfg, size),
                           sources=acdc.split_sources(source.root),
                           split_columns=["sample_id", "patient_id", "group", "split"])
        arrays, by = prepared.arrays, prepared.split
        spacing = [self._slice_spacing(a) for a in arrays]
        train = SliceDataset([arrays[i] for i in by["TRAIN"]], [spacing[i] for i in by["TRAIN"]], augment=True,
                             artifact_p=float(cfg.augment.artifact_p), seed=int(cfg.seed),
                             flips=bool(cfg.augment.flips))
        val = SliceDataset([arrays[i] for i in by["VAL"]])
        log.info("%d/%d/%d TRAIN/VAL/TEST volumes (%d/%d training/validation slices at %dx%d)", len(by["TRAIN"]),
                 len(by["VAL"]), len(by["TEST"]), len(train), len(val), size, size)
        return TaskData(train, val, prepared)

    @staticmethod
    def _slice_spacing(a: dict) -> tuple[float, float, float]:
        """(z, row, column) mm of a resized slice stack: what the artifacts' physical sizes refer to."""
        meta = a["meta"]
        sx, sy, sz = meta["spacing"][:3]
        shape = meta["shape"]
        s = a["image"].shape[-1]
        return float(sz), float(sx) * shape[0] / s, float(sy) * shape[1] / s

    def loss(self, cfg: DictConfig):
        if cfg.train.loss != "dice_ce":
            return super().loss(cfg)
        from monai.losses import DiceCELoss

        return DiceCELoss(to_onehot_y=True, softmax=True, label_smoothing=float(cfg.train.label_smoothing))

    def training_step(self, model: torch.nn.Module, batch: dict, loss_fn) -> torch.Tensor:
        x = batch["x"]
        if x.is_cuda and next(model.parameters()).is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return loss_fn(model(x).float(), batch["y"][:, None])

    def validation_metrics(self, model: torch.nn.Module, data: TaskData, device: str) -> dict[str, float]:
        """``val_dice``: mean 3D Dice (LV, RV, MYO) of the VAL volumes at the model's resolution."""
        arrays = [data.prepared.arrays[i] for i in data.prepared.split.val]
        d = [volume_dice(segment(model, a["image"], device).argmax(1).numpy(), np.asarray(a["label"])) for a in arrays]
        return {"val_dice": float(np.mean(d))}

    @staticmethod
    def _volume(cfg: DictConfig, model: torch.nn.Module, s: dict, image: np.ndarray, root, device: str
                ) -> tuple[tuple[np.ndarray, np.ndarray], list[dict], list[dict]]:
        """One TEST volume: (its label map and affine, its clean score rows, its rows under each artifact)."""
        from .artifacts import corrupt

        size, tol = int(cfg.image.size), float(cfg.eval.nsd_tolerance_mm)
        case = acdc.read_case(s["path"], s["gt_path"], root=root)
        pred = to_native(segment(model, image, device), case.label.shape)
        clean = score_rows(pred, case.label, case.spacing, s, nsd_tolerance_mm=tol)
        native = np.ascontiguousarray(case.image.transpose(2, 0, 1), dtype=np.float32)  # (Z, X, Y)
        zyx = (case.spacing[2], case.spacing[0], case.spacing[1])
        corrupted = []
        for art in cfg.eval.artifacts:
            for sev in cfg.eval.severities:
                bad = corrupt(native, art, sev, seed=case_seed(s["sample_id"], art, sev), spacing=zyx)
                p = to_native(segment(model, acdc.prepare_image(bad.transpose(1, 2, 0), size), device), case.label.shape)
                corrupted += score_rows(p, case.label, case.spacing, s, artifact=art, severity=sev, nsd_tolerance_mm=tol)
        return (pred, case.affine), clean, corrupted

    def predict(self, cfg: DictConfig, run: Run, model: torch.nn.Module, data: TaskData, device: str) -> pd.DataFrame:
        samples, arrays = data.prepared.samples, data.prepared.arrays
        test, root = data.prepared.split[cfg.task.split], data.prepared.root

        def shard(positions: np.ndarray) -> tuple[list, list, list]:
            out = [self._volume(cfg, model, samples.iloc[test[k]].to_dict(), arrays[test[k]]["image"],
                                root, device)
                   for k in tqdm(positions, desc="predict TEST volumes", unit="volume", disable=not cfg.progress)]
            return tuple(list(column) for column in zip(*out)) if out else ([], [], [])

        # the volumes shared out among the ranks under torchrun; every rank gets all back, in order
        masks, clean, corrupted = map_shards(shard, len(test))
        for i, (labels, affine) in zip(test, masks):
            save_mask(run.artifact("masks") / f"{samples.iloc[i]['sample_id']}.nii.gz", labels, affine)
        rows = pd.DataFrame([r for v in clean for r in v] + [r for v in corrupted for r in v], columns=ROW_COLUMNS)
        run.write_table("clinical.csv", clinical_indices(rows))
        return rows
