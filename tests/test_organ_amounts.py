"""The organ-amounts branch of the fVLM smoke recipe: the profile counts voxels, the module standardises them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiobench.errors import CardiobenchError
from cardiobench.models import build
from cardiobench.models.organ_amounts import OrganAmounts, organ_profile, thresholds

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
