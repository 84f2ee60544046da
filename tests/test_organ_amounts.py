"""The organ-amounts branch of the fVLM smoke recipe: the profile counts voxels, the module standardises them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from cardiobench.errors import CardiobenchError
from cardiobench.models import build
from cardiobench.tasks.ctrate.organ_amounts import (BODY_LEVEL, OrganAmounts, check_views, organ_profile,
                                                    outside_region, profile_channels, thresholds)

from .test_fvlm_model import IMG, ORGANS, TINY, _masks


def test_profile_is_the_fraction_of_organ_voxels_above_each_level():
    labels = np.zeros((4, 5, 6), dtype=np.uint8)
    labels[0] = 3            # organ "a": ids 3 and 4, 30 + 30 voxels
    labels[1] = 4
    labels[2, :2] = 7        # organ "b": id 7, 12 voxels
    image = np.zeros(labels.shape, dtype=np.float32)
    image[0, :, :3] = 0.9    # half of id 3 bright
    image[2, 0] = 0.6        # 6 of b's 12 at 0.6
    table = {"a": [3, 4], "b": [7], "c": [9]}
    profile = organ_profile(image, labels, table, np.array([0.5, 0.7]))
    assert profile.shape == (3, 2) and profile.dtype == np.float32
    np.testing.assert_allclose(profile[0], [15 / 60, 15 / 60])   # 15 of 60 voxels at 0.9
    np.testing.assert_allclose(profile[1], [0.5, 0.0])           # 6 of 12 above 0.5, none above 0.7
    np.testing.assert_array_equal(profile[2], [0, 0])            # absent organ
    with pytest.raises(CardiobenchError, match="differ"):
        organ_profile(image[:2], labels, table, np.array([0.5]))


def test_thresholds_span_the_window():
    np.testing.assert_allclose(thresholds(4), [0.05, 0.35, 0.65, 0.95])
    assert thresholds(1).tolist() == [0.5]
    with pytest.raises(CardiobenchError):
        thresholds(0)


def test_amounts_standardise_per_organ_and_level_and_use_running_stats_for_one():
    torch.manual_seed(0)
    branch = OrganAmounts(n_organs=2, out_dim=4, channels=4)
    # organ 1's amounts are 100 x organ 0's: after log + batch standardisation both have spread 1
    base = torch.rand(8, 1, 4) * 0.01 + 0.001
    profile = torch.cat([base, base * 100], dim=1)
    with torch.no_grad():  # look at the standardised amounts themselves
        branch.proj.weight.copy_(torch.eye(4))
        branch.proj.bias.zero_()
    out = branch.train()(profile)
    assert out.shape == (8, 2, 4)
    assert torch.allclose(out.mean(0), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(2, 4), atol=1e-2)
    one = branch(profile[:1])  # a batch of one trains without error, standardised by the running stats
    assert torch.isfinite(one).all()
    with pytest.raises(CardiobenchError, match="organ profile"):
        branch(torch.rand(2, 3, 4))


def test_fvlm_with_amounts_needs_and_uses_the_profile():
    torch.manual_seed(0)
    net = build("fvlm", organs=ORGANS, amounts=4, **TINY).eval()
    x, masks = torch.rand(2, 1, *IMG), _masks()
    with pytest.raises(CardiobenchError, match="organ profile"):
        net.encode_image(x, masks)
    profile = torch.rand(2, len(ORGANS), 4)
    organ, present, _ = net.encode_image(x, masks, profile)
    changed, _, _ = net.encode_image(x, masks, profile.flip(0))
    assert not torch.allclose(organ[present], changed[present])       # the profile reaches the embedding
    assert torch.all(organ[~present] == 0) and torch.all(changed[~present] == 0)  # absent organs stay zero
    assert build("ctclip_global", amounts=4, **TINY).amounts is None     # no organs, no branch


def test_views_count_filtered_values_and_the_organs_surroundings():
    labels = np.zeros((9, 9, 9), dtype=np.uint8)
    labels[2:7, 2:7, 2:7] = 5                      # organ "a": a 5^3 cube
    labels[2:7, 7, 2:7] = 6                        # organ "b" touches it on one face
    image = np.full(labels.shape, 0.3, dtype=np.float32)
    image[4, 4, 4] = 0.9                           # one bright voxel inside a: a small bright thing
    image[1, 2:7, 2:7] = 0.8                       # fluid-like layer against a, unlabelled
    table = {"a": [5], "b": [6]}
    levels = np.array([0.5])
    got = organ_profile(image, labels, table, levels, ["raw", "tophat", "ring"])
    assert got.shape == (2, 3)
    assert got[0, 0] == pytest.approx(1 / 125)     # raw: the one bright voxel of 125
    # top-hat: the bright voxel rises 0.6 above its opening, above 0.5 * RESIDUAL_SCALE = 0.2
    assert got[0, 1] == pytest.approx(1 / 125)
    ring = ndi.binary_dilation(labels == 5, iterations=2) & (labels == 0)  # unlabelled, within 2 face steps
    assert got[0, 2] == pytest.approx((image[ring] > 0.5).mean())
    assert got[0, 2] > 0                           # the layer against the organ is counted
    # a float16 image (the decode-once cache) gives the same profile
    np.testing.assert_allclose(organ_profile(image.astype(np.float16), labels, table, levels,
                                             ["raw", "tophat", "ring"]), got, atol=1e-6)


def test_views_are_checked_and_size_the_branch():
    assert check_views(["raw", "ring"]) == ("raw", "ring")
    for bad in (["raw", "raw"], ["edges"], []):
        with pytest.raises(CardiobenchError, match="views"):
            check_views(bad)
    net = build("fvlm", organs=ORGANS, amounts=4, amount_views=["raw", "mean3", "ring"], **TINY)
    assert net.amounts.channels == 12
    assert profile_channels(["raw", "volume"], 4) == 5                # the volume is one channel


def test_volume_channel_and_outside_row():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[1:4, 1:4, 1:4] = 5                      # organ "a": 27 voxels
    labels[6:9, 6:9, 6:9] = 30                     # a bone (id 30), 27 voxels
    image = np.full(labels.shape, BODY_LEVEL - 0.1, dtype=np.float32)  # air-like: not body
    image[0:5, 5:10, 0:5] = 0.8                    # unlabelled soft tissue
    image[1, 8, 1] = 1.0                           # a device, far from the bone
    image[ndi.binary_dilation(labels == 30, iterations=1)] = 1.0  # the bone and its blurred edge
    table = {"a": [5]}
    got = organ_profile(image, labels, table, np.array([0.5, 0.9]), ["raw", "volume"], outside=[30])
    assert got.shape == (2, 3)
    assert got[0, 2] == pytest.approx(27 / 1000)   # organ a's share of the volume
    region = outside_region(image, labels, [30])
    assert not region[labels > 0].any() and not region[image <= BODY_LEVEL].any()
    near_bone = ndi.binary_dilation(labels == 30, iterations=2)
    assert not (region & near_bone).any()          # the bone's margin is left out
    np.testing.assert_allclose(got[1, :2], [(image[region] > t).mean() for t in (0.5, 0.9)])
    assert got[1, 1] == pytest.approx(1 / region.sum())  # only the device is bright outside the bone margin
    assert got[1, 2] == pytest.approx(region.mean())
    # without outside, one row per organ, and an empty organ profiles as zeros
    assert organ_profile(image, labels, {"a": [5], "z": [99]}, np.array([0.5]), ["raw", "volume"]).tolist()[1] == [0, 0]


def test_outside_row_reaches_the_global_embedding_only():
    torch.manual_seed(0)
    net = build("fvlm", organs=ORGANS, amounts=4, amount_outside=True, **TINY).eval()
    assert net.amounts.n_organs == len(ORGANS) + 1
    x, masks = torch.rand(2, 1, *IMG), _masks()
    profile = torch.rand(2, len(ORGANS) + 1, 4)
    organ, present, glob = net.encode_image(x, masks, profile)
    other = profile.clone()
    other[:, -1] = other[:, -1].flip(0)            # change only the outside row
    organ2, _, glob2 = net.encode_image(x, masks, other)
    assert torch.allclose(organ, organ2) and not torch.allclose(glob, glob2)
