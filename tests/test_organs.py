"""Organ groups from TotalSegmentator label maps: the class tables against the source, the 24 and 4
group sets per version, masks of a synthetic label map, and the "fully inside the crop" rule."""
from __future__ import annotations

import numpy as np
import pytest

from cardiobench.errors import DataError
from cardiobench.tasks.ctrate import organs

# Spot checks against totalsegmentator/map_to_binary.py (v2: tag v2.18.0 "total"; v1: tag v1.5.7 "total").
V2_IDS = {1: "spleen", 2: "kidney_right", 5: "liver", 10: "lung_upper_lobe_left", 14: "lung_lower_lobe_right",
          15: "esophagus", 16: "trachea", 23: "kidney_cyst_left", 25: "sacrum", 26: "vertebrae_S1", 51: "heart",
          52: "aorta", 61: "atrial_appendage_left", 86: "autochthon_left", 90: "brain", 91: "skull",
          92: "rib_left_1", 104: "rib_right_1", 115: "rib_right_12", 117: "costal_cartilages"}
V1_IDS = {1: "spleen", 7: "aorta", 13: "lung_upper_lobe_left", 42: "esophagus", 43: "trachea",
          44: "heart_myocardium", 48: "heart_ventricle_right", 49: "pulmonary_artery", 50: "brain",
          57: "colon", 58: "rib_left_1", 81: "rib_right_12", 92: "sacrum", 93: "face", 103: "iliopsoas_right",
          104: "urinary_bladder"}


def test_table_sizes_and_ids():
    assert len(organs.TOTAL_V2) == 117 and len(organs.TOTAL_V1) == 104
    for table in organs.CLASSES.values():
        assert sorted(table) == list(range(1, len(table) + 1)) and len(set(table.values())) == len(table)
    assert {i: organs.TOTAL_V2[i] for i in V2_IDS} == V2_IDS
    assert {i: organs.TOTAL_V1[i] for i in V1_IDS} == V1_IDS


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_group_names_exist_and_do_not_overlap(version):
    names = set(organs.CLASSES[version].values())
    seen: dict[str, str] = {}
    for organ, members in organs.GROUPS[version].items():
        assert organ in organs.ORGANS_24 and members and set(members) <= names, organ
        for m in members:
            assert m not in seen, f"{m} in {seen.get(m)} and {organ}"
            seen[m] = organ
    table, unavailable = organs.group_table("24", version)
    assert list(table) == [o for o in organs.ORGANS_24 if o not in unavailable]


def test_face_only_in_v1_and_version_specific_groups():
    v2, missing_v2 = organs.group_table("24", "v2")
    v1, missing_v1 = organs.group_table("24", "v1")
    assert missing_v2 == ["face"] and "face" not in v2
    assert missing_v1 == [] and v1["face"] == [93]
    assert v2["heart"] == [51, 61] and v1["heart"] == [44, 45, 46, 47, 48]
    assert v2["lung"] == [10, 11, 12, 13, 14] and v1["lung"] == [13, 14, 15, 16, 17]
    assert v2["kidney"] == [2, 3, 23, 24] and v1["kidney"] == [2, 3]
    assert v2["sacrum"] == [25, 26] and v1["sacrum"] == [92]
    assert v2["rib"] == list(range(92, 116)) and v1["rib"] == list(range(58, 82))
    assert v2["gluteus"] == list(range(80, 86)) and v1["gluteus"] == list(range(94, 100))
    assert list(v2) == [o for o in organs.ORGANS_24 if o != "face"]


def test_released_four_groups():
    table, unavailable = organs.group_table("4", "v2")
    assert table == {"lung": [10, 11, 12, 13, 14], "heart": [51, 61], "esophagus": [15], "aorta": [52]}
    assert unavailable == []
    with pytest.raises(ValueError, match="group set"):
        organs.group_table("36", "v2")
    with pytest.raises(ValueError, match="version"):
        organs.group_table("24", "v3")


def _label_map() -> np.ndarray:
    lab = np.zeros((6, 7, 8), dtype=np.uint8)
    lab[1:3, 1:3, 1:3] = 10  # lung_upper_lobe_left
    lab[1:3, 4:6, 1:3] = 13  # lung_middle_lobe_right
    lab[3:5, 1:3, 4:6] = 51  # heart
    lab[3, 3, 4] = 61  # atrial_appendage_left
    lab[4, 4, 6] = 52  # aorta
    lab[0, 6, 7] = 117  # costal_cartilages: in no group
    return lab


def test_organ_masks_of_a_synthetic_label_map():
    lab = _label_map()
    masks = organs.organ_masks(lab, "24", "v2")
    assert list(masks) == [o for o in organs.ORGANS_24 if o != "face"]
    assert np.array_equal(masks["lung"], np.isin(lab, [10, 13]))
    assert np.array_equal(masks["heart"], np.isin(lab, [51, 61]))
    assert np.array_equal(masks["aorta"], lab == 52)
    assert all(m.dtype == bool and m.shape == lab.shape for m in masks.values())
    assert not masks["liver"].any() and not masks["rib"].any()
    assert not np.logical_or.reduce(list(masks.values()))[0, 6, 7]  # costal cartilage in no group
    four = organs.organ_masks(lab.astype(np.float32), "4", "v2")  # float maps from get_fdata work
    assert list(four) == ["lung", "heart", "esophagus", "aorta"] and not four["esophagus"].any()
    merged, names = organs.merged_labels(lab, "4", "v2")
    assert names == ["lung", "heart", "esophagus", "aorta"] and set(np.unique(merged)) == {0, 1, 2, 4}


def test_label_map_problems():
    with pytest.raises(DataError, match="wrong version"):
        organs.organ_masks(_label_map(), "24", "v1")  # id 117 does not exist in v1
    with pytest.raises(DataError, match="non-integer"):
        organs.organ_masks(_label_map() + 0.5, "24", "v2")


def _box_mask(shape=(10, 10, 10), lo=(3, 3, 3), hi=(6, 6, 6)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_inside_crop_edge_cases():
    organ = _box_mask()  # voxels 3..5 on every axis
    crop = lambda a, b: (slice(a, b),) * 3  # noqa: E731
    assert organs.inside_crop(organ, crop(2, 7))  # one free voxel on each side
    assert not organs.inside_crop(organ, crop(3, 7))  # touches the low faces
    assert not organs.inside_crop(organ, crop(2, 6))  # touches the high faces
    assert not organs.inside_crop(organ, crop(4, 9))  # cut by the crop
    assert not organs.inside_crop(organ, crop(7, 10))  # outside the crop
    assert not organs.inside_crop(np.zeros((10, 10, 10), bool), crop(0, 10))  # absent
    assert not organs.inside_crop(organ, (slice(2, 7), slice(2, 7), slice(4, 4)))  # empty crop
    # A crop cut one axis only
    assert not organs.inside_crop(organ, (slice(2, 7), slice(2, 7), slice(2, 5)))


def test_inside_crop_uses_the_whole_organ_and_the_volume_edge():
    pair = _box_mask() | _box_mask(lo=(3, 3, 8), hi=(6, 6, 10))  # e.g. two kidneys, one beyond the crop
    assert not organs.inside_crop(pair, (slice(2, 7), slice(2, 7), slice(2, 7)))
    assert organs.inside_crop(_box_mask(), (slice(None),) * 3)  # whole volume, organ inside
    edge = _box_mask(lo=(0, 3, 3), hi=(4, 6, 6))  # cut by the field of view
    assert not organs.inside_crop(edge, (slice(None),) * 3)
    assert not organs.inside_crop(edge, (slice(0, 12), slice(2, 7), slice(2, 7)))  # a crop into padding
    with pytest.raises(ValueError, match="step"):
        organs.inside_crop(edge, (slice(0, 10, 2),) * 3)
    with pytest.raises(ValueError, match="slices"):
        organs.inside_crop(edge, (slice(0, 10),) * 2)


def test_organ_counts():
    lab = _label_map()
    empty = np.zeros_like(lab)
    counts = organs.organ_counts([lab, lab, empty], "4", "v2")
    assert counts == {"lung": 2, "heart": 2, "esophagus": 0, "aorta": 2}
    # The lung touches no face of the full volume (indices 1..5 of 6, 7, 8 voxels) but a crop starting
    # at 1 on the first axis cuts it; the aorta (4, 4, 6) stays inside both crops.
    inner = (slice(0, 6), slice(0, 7), slice(0, 8))
    tight = (slice(1, 6), slice(0, 7), slice(0, 8))
    assert organs.organ_counts([lab, lab], "4", "v2", crops=[inner, tight]) == \
        {"lung": 1, "heart": 2, "esophagus": 0, "aorta": 2}
    assert organs.organ_counts([lab], "24", "v2")["kidney"] == 0
    assert "face" not in organs.organ_counts([lab], "24", "v2")
    with pytest.raises(ValueError, match="crops"):
        organs.organ_counts([lab], "4", "v2", crops=[inner, inner])
