"""Organ groups from TotalSegmentator ``total`` label maps, for fVLM's per-anatomy contrastive learning.

fVLM (Shui et al., ICLR 2025, arXiv 2501.14548) pairs each anatomy's image tokens with that anatomy's
report text. Anatomies come from TotalSegmentator's ``total`` task, whose classes are merged into organ
groups: the seed project's 24 (``groups="24"``) or the 4 of the released code (``groups="4"``: lung,
heart = heart + left atrial appendage, esophagus, aorta: ``merged_organ_id`` in ``data/resize.py`` of the
authors' release, last author commit d768ec1, read in its fork github.com/gktpmuhammed/fvlm).

``version`` names the id table of the label map: ``v2`` (TotalSegmentator >= 2.0, 117 classes; what
fVLM's ``generate_mask.py`` writes) or ``v1`` (TotalSegmentator 1.x, 104 classes). A v2 map written
with ``--v1_order`` has v1 ids but empty heart chambers and face (v2 has no such classes), so its
heart and face are absent, never guessed. ``face`` exists only in v1 (in v2 it is the separately
licensed ``face`` task): with v2 it is listed as unavailable and has no mask.

A crop counts an organ only when the organ lies fully inside it (:func:`inside_crop`), the paper's
rule that keeps organs cut by a random crop out of the organ-level loss.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ...errors import DataError

# ----------------------------------------------------------------------------- class tables

# Class id -> name of the ``total`` task, as facts from github.com/wasserth/TotalSegmentator,
# totalsegmentator/map_to_binary.py, ``class_map["total"]`` at tag v2.18.0 (commit 184fa47), the same
# in every release tag from v2.2.0 on. Releases 2.0.0 to 2.1.0 misnamed ids 92-107 (ribs) in that table
# (commit 853cd2f, changelog "major bugfix: rib labels were in wrong order"); the ``rib`` group takes all
# 24 rib ids, so it is unaffected.
TOTAL_V2: dict[int, str] = {
    1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "stomach",
    7: "pancreas", 8: "adrenal_gland_right", 9: "adrenal_gland_left", 10: "lung_upper_lobe_left",
    11: "lung_lower_lobe_left", 12: "lung_upper_lobe_right", 13: "lung_middle_lobe_right",
    14: "lung_lower_lobe_right", 15: "esophagus", 16: "trachea", 17: "thyroid_gland", 18: "small_bowel",
    19: "duodenum", 20: "colon", 21: "urinary_bladder", 22: "prostate", 23: "kidney_cyst_left",
    24: "kidney_cyst_right", 25: "sacrum", 26: "vertebrae_S1", 27: "vertebrae_L5", 28: "vertebrae_L4",
    29: "vertebrae_L3", 30: "vertebrae_L2", 31: "vertebrae_L1", 32: "vertebrae_T12", 33: "vertebrae_T11",
    34: "vertebrae_T10", 35: "vertebrae_T9", 36: "vertebrae_T8", 37: "vertebrae_T7", 38: "vertebrae_T6",
    39: "vertebrae_T5", 40: "vertebrae_T4", 41: "vertebrae_T3", 42: "vertebrae_T2", 43: "vertebrae_T1",
    44: "vertebrae_C7", 45: "vertebrae_C6", 46: "vertebrae_C5", 47: "vertebrae_C4", 48: "vertebrae_C3",
    49: "vertebrae_C2", 50: "vertebrae_C1", 51: "heart", 52: "aorta", 53: "pulmonary_vein",
    54: "brachiocephalic_trunk", 55: "subclavian_artery_right", 56: "subclavian_artery_left",
    57: "common_carotid_artery_right", 58: "common_carotid_artery_left", 59: "brachiocephalic_vein_left",
    60: "brachiocephalic_vein_right", 61: "atrial_appendage_left", 62: "superior_vena_cava",
    63: "inferior_vena_cava", 64: "portal_vein_and_splenic_vein", 65: "iliac_artery_left",
    66: "iliac_artery_right", 67: "iliac_vena_left", 68: "iliac_vena_right", 69: "humerus_left",
    70: "humerus_right", 71: "scapula_left", 72: "scapula_right", 73: "clavicula_left", 74: "clavicula_right",
    75: "femur_left", 76: "femur_right", 77: "hip_left", 78: "hip_right", 79: "spinal_cord",
    80: "gluteus_maximus_left", 81: "gluteus_maximus_right", 82: "gluteus_medius_left",
    83: "gluteus_medius_right", 84: "gluteus_minimus_left", 85: "gluteus_minimus_right", 86: "autochthon_left",
    87: "autochthon_right", 88: "iliopsoas_left", 89: "iliopsoas_right", 90: "brain", 91: "skull",
    92: "rib_left_1", 93: "rib_left_2", 94: "rib_left_3", 95: "rib_left_4", 96: "rib_left_5", 97: "rib_left_6",
    98: "rib_left_7", 99: "rib_left_8", 100: "rib_left_9", 101: "rib_left_10", 102: "rib_left_11",
    103: "rib_left_12", 104: "rib_right_1", 105: "rib_right_2", 106: "rib_right_3", 107: "rib_right_4",
    108: "rib_right_5", 109: "rib_right_6", 110: "rib_right_7", 111: "rib_right_8", 112: "rib_right_9",
    113: "rib_right_10", 114: "rib_right_11", 115: "rib_right_12", 116: "sternum", 117: "costal_cartilages",
}

# Class id -> name of TotalSegmentator 1.x: same repository and file, ``class_map["total"]`` at tag v1.5.7
# (commit 951f07b), the same in every tag from v1.4.0 on, and kept from v2.0.1 on as
# ``class_map["total_v1"]`` (the same at v2.18.0).
TOTAL_V1: dict[int, str] = {
    1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "stomach", 7: "aorta",
    8: "inferior_vena_cava", 9: "portal_vein_and_splenic_vein", 10: "pancreas", 11: "adrenal_gland_right",
    12: "adrenal_gland_left", 13: "lung_upper_lobe_left", 14: "lung_lower_lobe_left",
    15: "lung_upper_lobe_right", 16: "lung_middle_lobe_right", 17: "lung_lower_lobe_right", 18: "vertebrae_L5",
    19: "vertebrae_L4", 20: "vertebrae_L3", 21: "vertebrae_L2", 22: "vertebrae_L1", 23: "vertebrae_T12",
    24: "vertebrae_T11", 25: "vertebrae_T10", 26: "vertebrae_T9", 27: "vertebrae_T8", 28: "vertebrae_T7",
    29: "vertebrae_T6", 30: "vertebrae_T5", 31: "vertebrae_T4", 32: "vertebrae_T3", 33: "vertebrae_T2",
    34: "vertebrae_T1", 35: "vertebrae_C7", 36: "vertebrae_C6", 37: "vertebrae_C5", 38: "vertebrae_C4",
    39: "vertebrae_C3", 40: "vertebrae_C2", 41: "vertebrae_C1", 42: "esophagus", 43: "trachea",
    44: "heart_myocardium", 45: "heart_atrium_left", 46: "heart_ventricle_left", 47: "heart_atrium_right",
    48: "heart_ventricle_right", 49: "pulmonary_artery", 50: "brain", 51: "iliac_artery_left",
    52: "iliac_artery_right", 53: "iliac_vena_left", 54: "iliac_vena_right", 55: "small_bowel", 56: "duodenum",
    57: "colon", 58: "rib_left_1", 59: "rib_left_2", 60: "rib_left_3", 61: "rib_left_4", 62: "rib_left_5",
    63: "rib_left_6", 64: "rib_left_7", 65: "rib_left_8", 66: "rib_left_9", 67: "rib_left_10",
    68: "rib_left_11", 69: "rib_left_12", 70: "rib_right_1", 71: "rib_right_2", 72: "rib_right_3",
    73: "rib_right_4", 74: "rib_right_5", 75: "rib_right_6", 76: "rib_right_7", 77: "rib_right_8",
    78: "rib_right_9", 79: "rib_right_10", 80: "rib_right_11", 81: "rib_right_12", 82: "humerus_left",
    83: "humerus_right", 84: "scapula_left", 85: "scapula_right", 86: "clavicula_left", 87: "clavicula_right",
    88: "femur_left", 89: "femur_right", 90: "hip_left", 91: "hip_right", 92: "sacrum", 93: "face",
    94: "gluteus_maximus_left", 95: "gluteus_maximus_right", 96: "gluteus_medius_left",
    97: "gluteus_medius_right", 98: "gluteus_minimus_left", 99: "gluteus_minimus_right",
    100: "autochthon_left", 101: "autochthon_right", 102: "iliopsoas_left", 103: "iliopsoas_right",
    104: "urinary_bladder",
}

CLASSES: dict[str, dict[int, str]] = {"v2": TOTAL_V2, "v1": TOTAL_V1}

# ----------------------------------------------------------------------------- organ groups

ORGANS_24 = ("face", "brain", "esophagus", "trachea", "lung", "heart", "kidney", "stomach", "liver",
             "gallbladder", "pancreas", "spleen", "colon", "aorta", "rib", "humerus", "scapula", "clavicula",
             "femur", "hip", "sacrum", "gluteus", "iliopsoas", "autochthon")
ORGANS_4 = ("lung", "heart", "esophagus", "aorta")  # the released code's order
GROUP_SETS = {"24": ORGANS_24, "4": ORGANS_4}


def _sides(*names: str) -> list[str]:
    return [f"{n}_{side}" for n in names for side in ("left", "right")]


_LUNG = ["lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
         "lung_lower_lobe_right"]
_SHARED = {
    "brain": ["brain"], "esophagus": ["esophagus"], "trachea": ["trachea"], "lung": _LUNG,
    "stomach": ["stomach"], "liver": ["liver"], "gallbladder": ["gallbladder"], "pancreas": ["pancreas"],
    "spleen": ["spleen"], "colon": ["colon"], "aorta": ["aorta"],
    # bony ribs only: v1 has no costal cartilage class, so v2's ``costal_cartilages`` stays out of both
    "rib": [f"rib_{side}_{i}" for side in ("left", "right") for i in range(1, 13)],
    "humerus": _sides("humerus"), "scapula": _sides("scapula"), "clavicula": _sides("clavicula"),
    "femur": _sides("femur"), "hip": _sides("hip"),
    "gluteus": _sides("gluteus_maximus", "gluteus_medius", "gluteus_minimus"),
    "iliopsoas": _sides("iliopsoas"), "autochthon": _sides("autochthon"),
}
# Class names of each organ group. Where the versions differ:
# - heart: v2 has one ``heart`` class, plus the left atrial appendage as in fVLM's release; v1 split the
#   heart into myocardium and four chambers (its pulmonary_artery stays out: v2 has no such class).
# - kidney: v2 labels kidney cysts as their own classes, which cut holes in the kidney exactly where a
#   report's renal cyst is, so they belong to the kidney; v1 has no cyst classes.
# - sacrum: v2 splits the first sacral vertebra (``vertebrae_S1``) off the sacrum; it is part of the
#   sacrum anatomically and in v1.
# - face: v1 only (unavailable with v2).
GROUPS: dict[str, dict[str, list[str]]] = {
    "v2": {**_SHARED, "heart": ["heart", "atrial_appendage_left"], "kidney": _sides("kidney", "kidney_cyst"),
           "sacrum": ["sacrum", "vertebrae_S1"]},
    "v1": {**_SHARED, "face": ["face"], "kidney": _sides("kidney"), "sacrum": ["sacrum"],
           "heart": ["heart_myocardium", "heart_atrium_left", "heart_ventricle_left", "heart_atrium_right",
                     "heart_ventricle_right"]},
}


BONES = ("vertebrae_", "rib_", "sternum", "costal_cartilages", "clavicula_", "scapula_", "humerus_", "hip_",
         "femur_", "sacrum", "skull")  # class names (prefixes) of bone and cartilage


def bone_ids(version: str = "v2") -> list[int]:
    """The class ids of bones (and costal cartilage) in a label map of TotalSegmentator ``version``."""
    if version not in CLASSES:
        raise DataError(f"organ mask ids must be one of {', '.join(CLASSES)}, not {version!r}")
    return sorted(i for i, name in CLASSES[version].items() if name.startswith(BONES))


def _check(groups: str, version: str) -> None:
    if version not in CLASSES:
        raise ValueError(f"TotalSegmentator version {version!r} is not one of {', '.join(CLASSES)}")
    if groups not in GROUP_SETS:
        raise ValueError(f"organ group set {groups!r} is not one of {', '.join(GROUP_SETS)}")


def group_table(groups: str = "24", version: str = "v2") -> tuple[dict[str, list[int]], list[str]]:
    """Organ -> sorted TotalSegmentator class ids of the group set, in the set's order, and the organs of
    the set this version cannot segment (``face`` with v2)."""
    _check(groups, version)
    ids = {name: i for i, name in CLASSES[version].items()}
    table, unavailable = {}, []
    for organ in GROUP_SETS[groups]:
        names = GROUPS[version].get(organ)
        if names is None:
            unavailable.append(organ)
        else:
            table[organ] = sorted(ids[n] for n in names)
    return table, unavailable


def _lookup(groups: str, version: str) -> tuple[list[str], np.ndarray]:
    """The available organs and a table class id -> 1-based organ index (0: in no group)."""
    table, _ = group_table(groups, version)
    lut = np.zeros(len(CLASSES[version]) + 1, dtype=np.uint8)
    for k, ids in enumerate(table.values(), start=1):
        lut[ids] = k
    return list(table), lut


def _as_labels(label_map: np.ndarray, version: str) -> np.ndarray:
    """An integer label map whose ids are all in the version's table (DataError otherwise: a float map
    with fractions was interpolated, an id beyond the table is most often the other version)."""
    label_map = np.asarray(label_map)
    if not np.issubdtype(label_map.dtype, np.integer):
        if not np.array_equal(label_map, np.round(label_map)):
            raise DataError("label map has non-integer values (resampled with interpolation instead of "
                            "nearest neighbour?)")
        label_map = label_map.astype(np.int64)
    lo, hi, n = int(label_map.min(initial=0)), int(label_map.max(initial=0)), len(CLASSES[version])
    if lo < 0 or hi > n:
        raise DataError(f"label map has ids {lo}..{hi}, outside TotalSegmentator {version}'s 0..{n} "
                        f"(wrong version? v2 has {len(TOTAL_V2)} classes, v1 {len(TOTAL_V1)})")
    return label_map


def merged_labels(label_map: np.ndarray, groups: str = "24", version: str = "v2") -> tuple[np.ndarray, list[str]]:
    """The label map with each voxel set to its 1-based organ index in the returned organ list (0: no
    organ), as fVLM's preprocessing stores it; the list holds the set's available organs."""
    organs, lut = _lookup(groups, version)
    return lut[_as_labels(label_map, version)], organs


def organ_masks(label_map: np.ndarray, groups: str = "24", version: str = "v2") -> dict[str, np.ndarray]:
    """Organ -> boolean mask of its classes, for every available organ of the set (all False when the
    organ is absent; unavailable organs have no entry). One full-size mask per organ: for whole CT
    volumes :func:`merged_labels` (one uint8 array) is the lighter form."""
    merged, organs = merged_labels(label_map, groups, version)
    return {organ: merged == k for k, organ in enumerate(organs, start=1)}


# ----------------------------------------------------------------------------- crops


def _box(crop_slices: Sequence[slice], shape: Sequence[int]) -> list[tuple[int, int]]:
    """[start, stop) per axis of a crop, clipped to the volume (a crop may reach into padding)."""
    if len(crop_slices) != len(shape):
        raise ValueError(f"crop has {len(crop_slices)} slices for a {len(shape)}-D mask")
    box = []
    for s, n in zip(crop_slices, shape):
        if s.step not in (None, 1):
            raise ValueError(f"crop slice {s} has a step; crops are contiguous boxes")
        start = 0 if s.start is None else s.start
        stop = n if s.stop is None else s.stop
        if start < 0 or stop < 0:
            raise ValueError(f"crop slice {s}: give padded crops in volume coordinates, not from the end")
        box.append((min(start, n), min(stop, n)))
    return box


def inside_crop(mask_full: np.ndarray, crop_slices: Sequence[slice]) -> bool:
    """Whether an organ counts for a crop: present, every voxel inside the crop, and none on the crop's
    border (an organ touching the border may continue beyond it).

    ``mask_full`` is the organ's mask over the whole volume, so an organ cut by the crop fails even where
    its inner part does not touch the border (e.g. one kidney inside, the other outside). The crop is
    clipped to the volume, so a volume edge is a border too: an organ cut by the scan's field of view is
    no more complete than one cut by the crop. fVLM's released code sees only the crop and tests its six
    faces; it agrees with this rule except for such disconnected or field-of-view-cut organs.
    """
    mask_full = np.asarray(mask_full, dtype=bool)
    box = _box(crop_slices, mask_full.shape)
    for axis, (start, stop) in enumerate(box):
        hit = np.flatnonzero(mask_full.any(axis=tuple(a for a in range(mask_full.ndim) if a != axis)))
        if hit.size == 0:
            return False  # absent
        if hit[0] <= start or hit[-1] >= stop - 1:
            return False  # outside the crop or on its border
    return True


def organ_counts(label_maps: Iterable[np.ndarray], groups: str = "24", version: str = "v2",
                 crops: Iterable[Sequence[slice] | None] | None = None) -> dict[str, int]:
    """Per organ of the set (unavailable ones left out), in how many volumes it is present, or, with
    ``crops`` (one per label map; None: the whole volume), in how many it lies fully inside the crop."""
    organs, lut = _lookup(groups, version)
    counts = dict.fromkeys(organs, 0)
    maps = list(label_maps)
    crop_list = [None] * len(maps) if crops is None else list(crops)
    if len(crop_list) != len(maps):
        raise ValueError(f"{len(crop_list)} crops for {len(maps)} label maps")
    for label_map, crop in zip(maps, crop_list):
        merged = lut[_as_labels(label_map, version)]
        present = set(np.unique(merged).tolist()) - {0}
        for k in present:
            organ = organs[k - 1]
            if crops is None or inside_crop(merged == k, crop or (slice(None),) * merged.ndim):
                counts[organ] += 1
    return counts
