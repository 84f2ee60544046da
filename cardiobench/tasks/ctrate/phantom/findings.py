"""The 18 CT-RATE findings: names, label-map ids, measurement thresholds, what one scan plants
(:class:`Design`, :class:`Lesion`) and how likely each finding is for a patient's traits."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ....data.twins.ct_phantom import _Capsule, _Ellipsoid, _t

LABELS = ["Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
          "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
          "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion",
          "Mosaic attenuation pattern", "Peribronchial thickening", "Consolidation", "Bronchiectasis",
          "Interlobular septal thickening"]

# TotalSegmentator v2 ids used by the label map
ID = dict(spleen=1, liver=5, stomach=6, lung_upper_lobe_left=10, lung_lower_lobe_left=11,
          lung_upper_lobe_right=12, lung_middle_lobe_right=13, lung_lower_lobe_right=14, esophagus=15,
          trachea=16, heart=51, aorta=52, pulmonary_vein=53, superior_vena_cava=62, inferior_vena_cava=63,
          autochthon_left=86, autochthon_right=87, sternum=116, costal_cartilages=117)
LUNG_IDS = (10, 11, 12, 13, 14)
RIB_LEFT, RIB_RIGHT = 91, 103  # rib_left_n = 91 + n, rib_right_n = 103 + n
T10 = 34  # vertebrae_T10; one level up is id + 1 (T9 = 35 ... C1 = 50), down id - 1 (T11 = 33 ... S1 = 26)

# thresholds of the measurement rules
CTR_CUT = 0.5
LAA_HU, LAA_CUT = -950.0, 0.05
METAL_HU, METAL_MM3 = 1500.0, 50.0
FLUID_HU = (-20.0, 30.0)
PERI_SHELL_MM, PERI_ML = 15.0, 10.0
PLEURAL_NEAR_LUNG_MM, PLEURAL_ML = 10.0, 20.0
HERNIA_ML = 3.0
CALC_HU = 130.0
NODE_MM = 10.0
RULES = {  # label -> (quantity, cut-off): label = quantity >= cut-off
    "Medical material": ("metal_mm3", METAL_MM3), "Arterial wall calcification": ("aortic_foci", 1),
    "Cardiomegaly": ("ctr", CTR_CUT), "Pericardial effusion": ("pericardial_ml", PERI_ML),
    "Coronary artery wall calcification": ("coronary_foci", 1), "Hiatal hernia": ("hernia_ml", HERNIA_ML),
    "Lymphadenopathy": ("node_mm", NODE_MM), "Emphysema": ("laa950", LAA_CUT),
    "Atelectasis": ("atelectasis_ml", 3.0), "Lung nodule": ("nodule_mm", 4.0), "Lung opacity": ("ggo_ml", 5.0),
    "Pulmonary fibrotic sequela": ("fibrosis_ml", 1.0), "Pleural effusion": ("pleural_ml", PLEURAL_ML),
    "Mosaic attenuation pattern": ("mosaic_ml", 20.0), "Peribronchial thickening": ("peribronchial_ml", 2.0),
    "Consolidation": ("consolidation_ml", 5.0), "Bronchiectasis": ("bronchiectasis_ml", 1.0),
    "Interlobular septal thickening": ("septal_ml", 1.0),
}

Prim = tuple  # ("cap", a, b, r0, r1) | ("ell", centre, semi): world-free patient-frame shapes


# ------------------------------------------------------------------------------ design


@dataclass(frozen=True)
class Lesion:
    """Shapes painted with one HU value each (``lung_only``: only over aerated lung) and the region
    the finding's measurement looks at (``None``: the painted shapes)."""

    kind: str
    paint: tuple[tuple[Prim, float], ...]
    region: tuple[Prim, ...] | None = None
    lung_only: bool = True
    ref_hu: float = 0.0  # mosaic: the lung level the low patches are compared with


@dataclass(frozen=True)
class Design:
    """Everything planted in one scan (patient frame, mm, HU)."""

    contrast: bool
    heart_scale: float
    pericardial_mm: float
    effusion: tuple[float, float, float]  # depth right, depth left, taper height
    hernia: tuple[Prim, ...]
    hernia_level: float  # z of the air-fluid level in the hernia
    aortic: tuple  # blobs (x, y, z, sigma, amp)
    coronary: tuple
    metal: tuple[tuple[Prim, float], ...]
    metal_kind: str
    nodes: tuple[tuple[float, float, float, float], ...]  # x, y, z, r
    node_stations: tuple[str, ...]
    lesions: tuple[Lesion, ...] = ()
    lobes: dict = field(default_factory=dict)  # finding -> lobe / side words for the report
    planted: tuple[str, ...] = ()  # the findings drawn above their threshold (the labels are measured)


def _prim(p: Prim):
    if p[0] == "cap":
        return _Capsule(_t(p[1]), _t(p[2]), float(p[3]), float(p[4]))
    eye = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    return _Ellipsoid(_t(p[1]), eye, _t(p[2]))


def _sphere(c, r) -> Prim:
    return ("cap", _t(c), _t(c), float(r), float(r))


BASE_RATE = {  # probability of planting a finding: base + gains on the patient's latent traits
    "Medical material": (0.18, {}), "Arterial wall calcification": (0.15, {"age": 0.45}),
    "Cardiomegaly": (0.12, {"hf": 0.45}), "Pericardial effusion": (0.1, {"hf": 0.3}),
    "Coronary artery wall calcification": (0.1, {"age": 0.45}), "Hiatal hernia": (0.15, {"age": 0.1}),
    "Lymphadenopathy": (0.15, {"inf": 0.3}), "Emphysema": (0.1, {"smoker": 0.45}),
    "Atelectasis": (0.15, {"hf": 0.2, "inf": 0.15}), "Lung nodule": (0.3, {"smoker": 0.2}),
    "Lung opacity": (0.2, {"inf": 0.4}), "Pulmonary fibrotic sequela": (0.2, {"age": 0.2}),
    "Pleural effusion": (0.1, {"hf": 0.4}), "Mosaic attenuation pattern": (0.18, {}),
    "Peribronchial thickening": (0.15, {"inf": 0.25}), "Consolidation": (0.08, {"inf": 0.35}),
    "Bronchiectasis": (0.25, {"smoker": 0.1}), "Interlobular septal thickening": (0.1, {"hf": 0.35}),
}
CHRONIC = ("Medical material", "Arterial wall calcification", "Cardiomegaly", "Coronary artery wall calcification",
           "Hiatal hernia", "Emphysema", "Pulmonary fibrotic sequela", "Bronchiectasis")


def traits(rng: np.random.Generator) -> dict[str, float]:
    return {"age": float(rng.random()), "hf": float(rng.random() < 0.3), "inf": float(rng.random() < 0.35),
            "smoker": float(rng.random() < 0.35)}


def wanted(tr: dict[str, float], rng: np.random.Generator) -> dict[str, bool]:
    return {lab: bool(rng.random() < base + sum(g * tr[k] for k, g in gains.items()))
            for lab, (base, gains) in BASE_RATE.items()}
