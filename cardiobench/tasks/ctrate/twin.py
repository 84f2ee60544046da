"""The synthetic twin of CT-RATE (format ``ct_rate``), written in exactly the release layout.

Patients have one scan (sometimes two, from the same anatomy with chronic findings kept and acute
ones redrawn) and each scan one to three reconstructions (``_1`` standard kernel, ``_2`` sharp/lung
kernel, ``_3`` soft kernel, on different matrices and sometimes slice spacings), so patient clustering
is real. Every volume is a :mod:`.phantom` render; its 18 labels are measured on the
scan's first reconstruction (:data:`.phantom.RULES`) and shared by its reconstructions, and its
report is written from the same measurements. Volumes are int16 stored values (HU + 1024; the CSV and
the header say slope 1, intercept -1024), masks uint8 TotalSegmentator v2 ids with the same affine.

Twin-only files beside the release layout: ``twin_sentence_organs.json`` ({VolumeName: [{section,
sentence, organs}]}: the true organs of each findings/impressions sentence, to score
:func:`organ_text.assign`) and ``twin_measurements.csv`` (per volume: reconstruction, kernel, PSF,
noise and, for the labelled first reconstruction, every measured quantity behind the labels).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ...data import nifti
from ...data.twins import map_jobs, twin_folder
from .layout import LABEL_FILES, LABELS, MASKS, METADATA, REPORTS

SENTENCES = "twin_sentence_organs.json"
MEASUREMENTS = "twin_measurements.csv"
INTERCEPT = -1024.0
KERNELS = {"standard": "STANDARD", "sharp": "LUNG", "soft": "SOFT"}


def plan(n: int, seed: int) -> list[tuple]:
    """(split, pid, scan letter, scan index, reconstructions, patient SeedSequence) per scan, for exactly
    ``n`` volumes: one patient in five is ``valid``; a quarter of the patients have two scans; a scan has
    1, 2 or 3 reconstructions (70/20/10 %: fewer than CT-RATE's ~1.95 per scan, so that a small twin holds more
    scans, hence more distinct reports for the text encoder; twin v3's 30/50/20 % gave 105 scans per 200 volumes)."""
    root = np.random.SeedSequence(seed)
    plan_seq, patients_seq = root.spawn(2)
    rng = np.random.default_rng(plan_seq)
    jobs, total, count = [], 0, {"train": 0, "valid": 0}
    p = 0
    while total < n:
        split = "valid" if p % 5 == 4 else "train"
        count[split] += 1
        seq = patients_seq.spawn(1)[0]
        n_scans = 2 if rng.random() < 0.25 else 1
        for s in range(n_scans):
            recs = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
            recs = min(recs, n - total)
            if recs <= 0:
                break
            jobs.append((split, count[split], "abcdefgh"[s], s, recs, seq))
            total += recs
        p += 1
    return jobs


MANUFACTURERS = ("SIEMENS", "Philips", "PNMS", "TOSHIBA")  # as CT-RATE's metadata spells its vendors


def demographics(seq: np.random.SeedSequence, scan_index: int) -> tuple[str, str, str]:
    """(PatientSex, PatientAge as DICOM writes it, e.g. "057Y", Manufacturer) of a twin scan: sex and age
    per patient (every scan of a patient agrees), the scanner's vendor per scan. Metadata only, drawn from
    streams of their own: the volumes, reports and labels do not depend on them."""
    person = np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 11)))
    sex = "M" if person.random() < 0.55 else "F"
    age = int(np.clip(np.round(person.normal(56, 15)), 18, 95))
    scanner = np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 12, scan_index)))
    return sex, f"{age:03d}Y", MANUFACTURERS[int(scanner.integers(0, len(MANUFACTURERS)))]


def _twin_scan(args) -> dict:
    from . import phantom as cph

    split, pid, letter, scan_index, n_recs, seq, folder = args
    vols, labels, design = cph.scan(seq, scan_index, n_recs)
    report_rng = np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 7, scan_index)))
    sections, truth = cph.report(labels, vols[0].quantities, design, report_rng, vols[0].spacing[2])
    out = {"meta": [], "reports": [], "labels": [], "sentences": {}, "measurements": []}
    sex, age, manufacturer = demographics(seq, scan_index)
    scan_dir = Path(folder) / split / f"{split}_{pid}" / f"{split}_{pid}_{letter}"
    scan_dir.mkdir(parents=True, exist_ok=True)
    for r, v in enumerate(vols, start=1):
        name = f"{split}_{pid}_{letter}_{r}.nii.gz"
        stored = (v.hu.astype(np.int32) - int(INTERCEPT)).astype(np.int16)
        nifti.write(scan_dir / name, stored, v.affine, v.spacing, slope_inter=(1.0, INTERCEPT))
        nifti.write(Path(folder) / MASKS / name, v.labels, v.affine, v.spacing)
        sx, sy, sz = v.spacing
        out["meta"].append({"VolumeName": name, "Manufacturer": manufacturer, "PatientSex": sex, "PatientAge": age,
                            "ConvolutionKernel": KERNELS[v.rec.kernel], "Rows": v.hu.shape[1],
                            "Columns": v.hu.shape[0], "NumberofSlices": v.hu.shape[2],
                            "SliceThickness": sz, "XYSpacing": f"[{sx:g}, {sy:g}]", "ZSpacing": sz,
                            "RescaleSlope": 1, "RescaleIntercept": int(INTERCEPT)})
        out["reports"].append({"VolumeName": name, **sections})
        out["labels"].append({"VolumeName": name, **{k: int(labels[k]) for k in LABELS}})
        out["sentences"][name] = truth
        out["measurements"].append({"VolumeName": name, "reconstruction": r, "kernel": v.rec.kernel,
                                    "psf_mm": round(v.rec.psf_mm, 3), "noise_hu": round(v.rec.noise_hu, 2),
                                    "contrast": int(design.contrast), "planted": ";".join(design.planted),
                                    **{k: round(float(x), 4) for k, x in v.quantities.items()}})
    return out


def synthesize(out: str | os.PathLike, n: int = 160, seed: int = 0, workers: int = 2, progress: bool = True) -> Path:
    """Write a CT-RATE twin of ``n`` volumes to ``out`` (atomically); deterministic for ``(n, seed)``
    whatever ``workers``."""
    with twin_folder(out, n) as tmp:
        (tmp / MASKS).mkdir()
        jobs = [(*j, str(tmp)) for j in plan(n, seed)]
        results = map_jobs(_twin_scan, jobs, workers, "synthesize CT-RATE twin", "scan", progress)
        for key in ("train", "valid"):
            mine = [res for res, job in zip(results, jobs) if job[0] == key]
            if not mine:  # a tiny twin may have no valid patient: that split is simply not there
                continue
            for path, part in ((METADATA[key], "meta"), (REPORTS[key], "reports"), (LABEL_FILES[key], "labels")):
                rows = [row for res in mine for row in res[part]]
                (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                columns = {"labels": ["VolumeName", *LABELS]}.get(part)
                pd.DataFrame(rows, columns=columns).to_csv(tmp / path, index=False)
        sentences = {k: v for res in results for k, v in res["sentences"].items()}
        (tmp / SENTENCES).write_text(json.dumps(sentences, indent=0, sort_keys=True), encoding="utf-8")
        pd.DataFrame([row for res in results for row in res["measurements"]]).to_csv(tmp / MEASUREMENTS, index=False)
    return Path(out)
