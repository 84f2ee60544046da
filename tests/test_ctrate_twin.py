"""The CT-RATE twin: release layout read back by the ct_rate reader with zero problems, determinism
whatever the workers, labels recomputed from the saved pixels and masks, reports written from the
findings, reconstructions of one scan sharing labels and patient."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from cardiobench.tasks.ctrate import format as ct_rate
from cardiobench.tasks.ctrate import organ_text, organs
from cardiobench.tasks.ctrate import phantom as cph
from cardiobench.tasks.ctrate import twin as ctrate_twin

N = 12


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ctrate") / "twin"
    t = time.perf_counter()
    ctrate_twin.synthesize(out, n=N, seed=1, workers=2, progress=False)
    dt = time.perf_counter() - t
    print(f"\nCT-RATE twin: {N} volumes in {dt:.1f} s ({dt / N:.2f} s per volume, 2 workers)")
    return out


def _all_labels(root: Path) -> pd.DataFrame:
    return pd.concat([ct_rate.read_labels(root, s) for s in ("train", "valid")
                      if (root / ct_rate.LABEL_FILES[s]).is_file()], ignore_index=True)


def test_layout_and_zero_verify_problems(twin):
    samples, problems = ct_rate.index(twin)
    assert problems == []
    assert len(samples) == N
    assert set(samples.split) == {"TRAIN", "TEST"}
    assert samples["mask"].notna().all()
    assert ct_rate.verify(twin, progress=False) == []
    for r in samples.head(4).itertuples():
        img = nib.load(r.path)
        assert img.get_data_dtype() == np.int16
        zooms = np.linalg.norm(img.affine[:3, :3], axis=0)
        np.testing.assert_allclose(zooms, (r.spacing_x, r.spacing_y, r.spacing_z), rtol=1e-4)
        assert (r.rescale_slope, r.rescale_intercept) == (1.0, -1024.0)
        mask = nib.load(twin / r.mask)
        assert mask.get_data_dtype() == np.uint8 and mask.shape == img.shape
        np.testing.assert_allclose(mask.affine, img.affine)
    assert (twin / ctrate_twin.SENTENCES).is_file() and (twin / ctrate_twin.MEASUREMENTS).is_file()


def test_label_map_holds_totalsegmentator_v2_organs(twin):
    samples, _ = ct_rate.index(twin)
    lab = ct_rate.read_mask(twin, samples.sample_id.iloc[0])
    ids = set(np.unique(lab).tolist()) - {0}
    assert ids <= set(organs.TOTAL_V2)
    assert set(cph.LUNG_IDS) | {cph.ID[k] for k in ("heart", "aorta", "trachea", "esophagus", "sternum")} <= ids
    present = organs.organ_counts([lab], groups="24")
    for organ in ("lung", "heart", "aorta", "esophagus", "trachea", "rib", "autochthon", "liver"):
        assert present[organ] == 1, organ


def test_deterministic_whatever_workers(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ctrate_twin.synthesize(a, n=4, seed=5, workers=1, progress=False)
    ctrate_twin.synthesize(b, n=4, seed=5, workers=2, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_labels_recomputed_from_the_saved_pixels(twin):
    """Each rule on the saved volume (HU from the CSV rescale) and mask gives the CSV label."""
    samples, _ = ct_rate.index(twin)
    first = samples[samples.sample_id.str.endswith("_1.nii.gz")]
    for r in first.to_dict("records"):
        hu = ct_rate.read_volume(r["path"], r).data
        lab = ct_rate.read_mask(twin, r["sample_id"], hu.shape)
        sp = (r["spacing_x"], r["spacing_y"], r["spacing_z"])
        thr = cph.calcium_threshold(hu, lab)
        peri, pleural = cph.effusions_ml(hu, lab, sp)
        got = {"cardiomegaly": cph.ctr(lab, sp) >= cph.CTR_CUT,
               "emphysema": cph.laa_fraction(hu, lab) >= cph.LAA_CUT,
               "pleural_effusion": pleural >= cph.PLEURAL_ML,
               "pericardial_effusion": peri >= cph.PERI_ML,
               "arterial_wall_calcification": cph.calcified_foci(hu, lab == cph.ID["aorta"], thr) >= 1,
               "coronary_artery_wall_calcification": cph.calcified_foci(hu, lab == cph.ID["heart"], thr) >= 1,
               "hiatal_hernia": cph.hernia_ml(lab, sp) >= cph.HERNIA_ML,
               "medical_material": cph.metal_mm3(hu, sp) >= cph.METAL_MM3}
        for key, value in got.items():
            assert int(value) == int(r[key]), (r["sample_id"], key)


def test_rules_on_a_planted_scan():
    """The labels are the rules applied to the measured quantities, and findings planted well above (or
    absent, or only as sub-threshold mimics such as 2-3 mm nodules) measure as planted."""
    seq = np.random.SeedSequence(11)
    vols, labels, design = cph.scan(seq, 0, 1)
    q = vols[0].quantities
    for label, (key, cut) in cph.RULES.items():
        assert labels[label] == int(q[key] >= cut)
    # planted above threshold -> measured positive for the robust findings
    for label in ("Emphysema", "Lung nodule", "Hiatal hernia", "Mosaic attenuation pattern"):
        if label in design.planted:
            assert labels[label] == 1, label
        else:
            assert labels[label] == 0, label


def test_reports_mention_positives_and_negate_absent_findings(twin):
    words = {"Medical material": r"pacemaker|port|chemoport|sternotomy|metallic",
             "Arterial wall calcification": r"aort", "Cardiomegaly": r"cardiomegaly|enlarged|increased",
             "Pericardial effusion": r"pericardial", "Coronary artery wall calcification": r"coronary",
             "Hiatal hernia": r"hiatal hernia", "Lymphadenopathy": r"lymph", "Emphysema": r"emphysem",
             "Atelectasis": r"atelectasis", "Lung nodule": r"nodul", "Lung opacity": r"opacit|ground glass",
             "Pulmonary fibrotic sequela": r"fibrotic", "Pleural effusion": r"pleural effusion",
             "Mosaic attenuation pattern": r"mosaic", "Peribronchial thickening": r"peribronchial|bronchial wall",
             "Consolidation": r"consolidat", "Bronchiectasis": r"bronchiect",
             "Interlobular septal thickening": r"septal thickening"}
    labels = _all_labels(twin).set_index("VolumeName")
    reports = pd.concat([ct_rate.read_reports(twin, s) for s in ("train", "valid")]).set_index("VolumeName")
    truth = json.loads((twin / ctrate_twin.SENTENCES).read_text())
    negations = not_forms = 0
    for name, row in labels.iterrows():
        text = (reports.at[name, "Findings_EN"] + " " + reports.at[name, "Impressions_EN"]).lower()
        for label, pattern in words.items():
            if row[label] == 1:
                assert re.search(pattern, text), (name, label)
        sentences = [s for s in organ_text.split_sentences(reports.at[name, "Findings_EN"])] + \
            organ_text.split_sentences(reports.at[name, "Impressions_EN"])
        assert sentences == [t["sentence"] for t in truth[name]]
        negations += sum(s.startswith("No ") or " not " in s for s in sentences)
        not_forms += sum(" not " in s for s in sentences)
        assert reports.at[name, "Technique_EN"]
    assert negations >= len(labels)  # absent findings are stated as such
    assert not_forms > 0  # both of CT-RATE's negations, "No X." and "X was not observed." (the "Not X." prompts)
    assert not re.search(r"\bthe \.", " ".join(reports.Findings_EN))  # every lesion sentence names its place
    pairs = [(organ_text.sentence_organs(t["sentence"]), set(t["organs"])) for ts in truth.values() for t in ts]
    p, r = organ_text.decomposer_scores([a for a, _ in pairs], [b for _, b in pairs])
    print(f"\ndecomposer on the twin's reports: precision {p:.3f}, recall {r:.3f} ({len(pairs)} sentences)")
    assert p > 0.8 and r > 0.8


def test_reconstructions_share_labels_reports_and_patient(twin):
    samples, _ = ct_rate.index(twin)
    labels = _all_labels(twin).set_index("VolumeName")
    reports = pd.concat([ct_rate.read_reports(twin, s) for s in ("train", "valid")]).set_index("VolumeName")
    meta = pd.concat([ct_rate.read_metadata(twin, s) for s in ("train", "valid")]).set_index("VolumeName")
    multi = 0
    for scan, group in samples.groupby("scan_id"):
        names = list(group.sample_id)
        assert group.patient_id.nunique() == 1
        assert (labels.loc[names, ct_rate.LABELS].nunique() == 1).all(), scan
        assert reports.loc[names, "Findings_EN"].nunique() == 1
        if len(names) > 1:
            multi += 1
            assert meta.loc[names, "ConvolutionKernel"].nunique() == len(names)  # different kernels
    assert multi >= 1
    # the cohort plan: some patients have two scans, one patient in five is in the test split
    jobs = ctrate_twin.plan(200, 0)
    per_patient = pd.Series([(j[0], j[1]) for j in jobs]).value_counts()
    assert (per_patient == 2).any() and sum(j[4] for j in jobs) == 200
    assert 0.1 < np.mean([j[0] == "valid" for j in jobs]) < 0.35
