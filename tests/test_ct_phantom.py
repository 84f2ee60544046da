"""The non-gated chest-CT phantom: deterministic, plausible HU, labels measured from its own voxels."""
from __future__ import annotations

import time
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from cardiobench.data.twins import ct_phantom as C


@pytest.fixture(scope="module")
def case():
    """One cardiac-fov patient (sampled, rendered) and its render time."""
    rng = np.random.default_rng(2024)
    ph = C.sample(rng, "cardiac")
    t0 = time.perf_counter()
    hu, affine, labels = C.render(ph, rng)
    return ph, hu, affine, labels, time.perf_counter() - t0


def _seed_where(pred, fov="cardiac", start=0):
    """First seed whose sampled phantom satisfies ``pred`` (sampling only: fast)."""
    for seed in range(start, start + 500):
        if pred(C.sample(np.random.default_rng(seed), fov)):
            return seed
    raise AssertionError("no such phantom in 500 seeds")


def test_deterministic_for_a_seed():
    a = C.patient(np.random.SeedSequence(11))
    b = C.patient(np.random.SeedSequence(11))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert C.sample(np.random.default_rng(3)) == C.sample(np.random.default_rng(3))
    assert C.sample(np.random.default_rng(3)) != C.sample(np.random.default_rng(4))
    c = C.patient(5)
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


def test_output_contract(case):
    ph, hu, affine, labels, _ = case
    assert hu.dtype == np.float32 and hu.shape == ph.shape and np.isfinite(hu).all()
    assert affine.shape == (4, 4) and np.allclose(affine[3], [0, 0, 0, 1])
    assert np.allclose(np.abs(np.diag(affine)[:3]), ph.spacing)
    assert set(labels) == {"lvef", "edv_ml", "esv_ml", "agatston", "aortic_stenosis", "sex"}
    assert labels["sex"] in ("M", "F") and labels["aortic_stenosis"] in (0, 1)
    assert 0.7 <= ph.spacing[0] == ph.spacing[1] <= 0.9 and 2.0 <= ph.spacing[2] <= 3.0


def test_tissue_hounsfield_units(case):
    ph, hu, _, _, _ = case
    lung = hu[(hu > -960) & (hu < -600)]
    assert lung.size > 0.05 * hu.size
    assert -900 < np.median(lung) < -780
    ed, es = C.lv_masks(ph)
    blood = np.median(hu[es])  # the ES cavity is blood all cycle long
    assert blood > 200 and abs(blood - ph.blood_hu) < 25
    assert abs(C.blood_pool_hu(ph, hu) - ph.blood_hu) < 25
    # a tight cardiac reconstruction lies inside the body (air is checked on the chest fov): fat is there
    assert ((hu > -150) & (hu < -50)).mean() > 0.005
    assert hu.max() > 600  # cortical bone
    assert 250 <= ph.blood_hu <= 350 and 10 <= ph.noise_hu <= 20


def test_lvef_is_measured_and_the_cohort_is_a_referral_one(case):
    ph, _, _, labels, _ = case
    edv, esv = labels["edv_ml"], labels["esv_ml"]
    assert labels["lvef"] == pytest.approx(100 * (edv - esv) / edv)
    # voxel counts on the rendered grid agree with the analytic volumes of the same geometry
    ed, es = C.lv_masks(ph)
    vox = np.prod(ph.spacing) / 1000
    assert edv == pytest.approx(ed.sum() * vox) and esv == pytest.approx(es.sum() * vox)
    v = ph.volumes()
    assert edv == pytest.approx(v["edv_ml"], rel=0.02) and esv == pytest.approx(v["esv_ml"], rel=0.03)
    assert labels["lvef"] == pytest.approx(v["lvef"], abs=1.5)

    cohort = [C.sample(np.random.default_rng(s)) for s in np.random.SeedSequence(99).spawn(200)]
    ef = np.array([p.lvef for p in cohort])
    edvs = np.array([p.volumes()["edv_ml"] for p in cohort])
    assert 0.15 <= np.mean(ef < 50) <= 0.35
    assert 15 < ef.min() and ef.max() < 80
    assert edvs[ef < 40].mean() > 1.2 * edvs[ef > 55].mean()  # low EF comes with a dilated LV


def test_agatston_by_hand():
    """One 3 mm slice at 0.5 x 0.5 mm pixels (0.25 mm^2), lesions drawn by hand."""
    hu = np.zeros((40, 40, 1), np.float32)
    hu[2:12, 2:12, 0] = 450  # 100 px = 25 mm^2, peak 450 -> weight 4: 100
    hu[20:26, 2:8, 0] = 210  # 36 px = 9 mm^2 ...
    hu[22, 4, 0] = 250  # ... peak 250 -> weight 2: 18
    hu[30:34, 30:34, 0] = 350  # 16 px = 4 mm^2, peak 350 -> weight 3: 12
    hu[2:4, 30:32, 0] = 150  # 4 px = 1 mm^2, peak 150 -> weight 1: 1
    hu[10, 36:38, 0] = 900  # 2 px = 0.5 mm^2 < 1 mm^2: not a lesion
    hu[14, 20, 0] = hu[15, 21, 0] = hu[16, 22, 0] = hu[17, 23, 0] = 500  # diagonal: one 8-connected 1 mm^2 lesion: 4
    assert C.agatston(hu, (0.5, 0.5, 3.0), None) == pytest.approx(100 + 18 + 12 + 1 + 4)
    # thinner slices: the same lesions in 1.5 mm slices score half (Agatston's 3 mm convention)
    assert C.agatston(hu, (0.5, 0.5, 1.5), None) == pytest.approx(135 / 2)
    two = np.concatenate([hu, hu], axis=2)
    assert C.agatston(two, (0.5, 0.5, 1.5), None) == pytest.approx(135)
    # region of interest and threshold
    roi = np.ones_like(hu, bool)
    roi[:13, :13] = False
    assert C.agatston(hu, (0.5, 0.5, 3.0), roi) == pytest.approx(35)
    assert C.agatston(hu, (0.5, 0.5, 3.0), None, threshold=200) == pytest.approx(100 + 18 + 12 + 4)
    assert C.agatston(np.full((8, 8, 3), 100, np.float32), (1, 1, 3), None) == 0


def test_aortic_stenosis_rule_and_calcium_in_the_voxels(case):
    assert C.as_label(1999.9, "M") == 0 and C.as_label(2000, "M") == 1
    assert C.as_label(1299.9, "F") == 0 and C.as_label(1300, "F") == 1
    ph, hu, _, labels, _ = case
    thr = max(130.0, C.blood_pool_hu(ph, hu) + C.CALCIUM_ABOVE_BLOOD)
    assert labels["agatston"] == pytest.approx(C.agatston(hu, ph.spacing, C.valve_roi(ph), thr))
    assert labels["aortic_stenosis"] == C.as_label(labels["agatston"], labels["sex"])
    # a heavily calcified valve is severe AS; a valve without calcium scores 0 (blood pool, noise
    # and bone never pass the contrast-adapted threshold inside the valve ROI)
    for pred, severe in ((lambda p: p.calcium_design > 4000 * (1 if p.sex == "M" else 0.65), 1),
                         (lambda p: not p.calcium, 0)):
        rng = np.random.default_rng(_seed_where(pred))
        ph = C.sample(rng)
        hu, _, labels = C.render(ph, rng)
        assert labels["aortic_stenosis"] == severe == C.as_label(labels["agatston"], ph.sex)
        roi = C.valve_roi(ph)
        if severe:
            assert labels["agatston"] >= C.AS_THRESHOLD[ph.sex] and hu[roi].max() > 700
        else:
            assert labels["agatston"] == 0


def test_non_gated_blur_of_the_cavity(case):
    """Inside the ED cavity but outside the ES cavity, the time average mixes blood and myocardium."""
    ph, hu, _, _, _ = case
    ed, es = C.lv_masks(ph)
    shell = ed & ~es
    assert shell.sum() > 1000
    lo, hi = ph.myo_hu, ph.blood_hu
    assert lo + 0.1 * (hi - lo) < hu[shell].mean() < hi - 0.1 * (hi - lo)
    # more time near diastole: the smeared band is closer to blood than to myocardium
    assert hu[shell].mean() > 0.5 * (lo + hi)


def test_lps_and_ras_hold_the_same_anatomy():
    ph = C.sample(np.random.default_rng(7))
    out = {}
    for o in ("RAS", "LPS"):
        out[o] = C.render(replace(ph, orientation=o), np.random.default_rng(1))
    (hr, ar, lr), (hl, al, ll) = out["RAS"], out["LPS"]
    assert nib.aff2axcodes(ar) == ("R", "A", "S") and nib.aff2axcodes(al) == ("L", "P", "S")
    assert not np.array_equal(hr, hl) and lr == ll
    can = nib.as_closest_canonical(nib.Nifti1Image(hl, al))
    assert np.array_equal(np.asarray(can.dataobj), hr) and np.allclose(can.affine, ar)
    for o, (hu, aff, _) in out.items():
        ed, _ = C.lv_masks(replace(ph, orientation=o))
        centre = aff @ np.append(np.argwhere(ed).mean(axis=0), 1.0)
        # RAS+ world: +x is the patient's right, so the heart (patient's left) has x below the
        # body midline (x = origin), and the blood pool is bright there
        assert centre[0] < ph.origin[0] - 15, o
        ijk = np.round(np.linalg.solve(aff, centre)[:3]).astype(int)
        assert hu[tuple(ijk)] > 150, o


def test_sizes_imply_speed(case):
    ph, _, _, _, seconds = case
    print(f"cardiac-fov render: {seconds:.2f} s for {ph.shape}")
    for p in (C.sample(np.random.default_rng(s), "cardiac") for s in range(30)):
        assert p.shape[:2] == (192, 192) and 40 <= p.shape[2] <= 80 and 0.7 <= p.spacing[0] <= 0.9
        assert 134 <= 192 * p.spacing[0] <= 173 and 125 <= p.shape[2] * p.spacing[2] <= 165
    for p in (C.sample(np.random.default_rng(s), "chest") for s in range(30)):
        assert p.shape[:2] == (512, 512) and p.shape[2] * p.spacing[2] >= 200
        assert 0.6 <= p.spacing[0] <= 0.9 and 1.5 <= p.spacing[2] <= 3.0
    with pytest.raises(ValueError):
        C.sample(np.random.default_rng(0), "abdomen")


def test_chest_fov_renders():
    rng = np.random.default_rng(_seed_where(lambda p: p.spacing[2] == 3.0, "chest"))
    ph = C.sample(rng, "chest")
    t0 = time.perf_counter()
    hu, affine, labels = C.render(ph, rng)
    print(f"chest-fov render: {time.perf_counter() - t0:.2f} s for {ph.shape}")
    assert hu.shape == ph.shape and hu.dtype == np.float32
    assert np.median(hu[:8, :8]) < -990  # the whole body fits: air in the corners
    assert labels["lvef"] == pytest.approx(ph.lvef, abs=1.5)
