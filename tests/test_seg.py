"""echonet_seg pieces: masks from tracings, pooled Dice, DeepLabV3 builders, beat detection, losses."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import find_peaks
from sklearn.metrics import f1_score

from cardiobench import stats
from cardiobench.losses import LOSSES
from cardiobench.models import build
from cardiobench.tasks.echonet import beats
from cardiobench.tasks.echonet import format as echonet_dynamic
from cardiobench.tasks.echonet import twin as echo_phantom


def _phantom_tracing(seed: int, which: int = 0):
    ph = echo_phantom.sample(np.random.default_rng(seed))
    frame = ph.traced_frames()[which]
    axis, chords = echo_phantom.trace(ph, frame)
    return ph, frame, echonet_dynamic.Tracing(frame, axis, chords)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_from_tracing_matches_the_phantom_cavity(seed):
    # The mask drawn from the 20 traced chords must cover the cavity the pixels were rendered from.
    ph, frame, t = _phantom_tracing(seed)
    mask, off = echonet_dynamic.trace_mask(t, 112, 112, 112)
    length, width = ph.geometry(np.array([frame]))
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
    cavity = echo_phantom.lv_signed_distance(ph, xx, yy, length[0], width[0]) < 0
    dice = 2 * (mask.astype(bool) & cavity).sum() / (mask.sum() + cavity.sum())
    assert dice > 0.96 and off == 0
    # Resized masks keep the area in proportion (pixel centres mapped, not corners).
    small, _ = echonet_dynamic.trace_mask(t, 112, 112, 56)
    assert int(small.sum()) * 4 == pytest.approx(int(mask.sum()), rel=0.03)


def test_outline_off_the_image_is_counted_and_clipped():
    _, _, t = _phantom_tracing(0)
    shifted = echonet_dynamic.Tracing(t.frame, t.axis, t.chords + np.array([-t.chords[:, 0].min() - 5, 0] * 2))
    mask, off = echonet_dynamic.trace_mask(shifted, 112, 112, 112)
    assert 0 < off < len(shifted.polygon()) and 0 < mask.sum()
    gone = echonet_dynamic.Tracing(t.frame, t.axis, t.chords + 500)
    mask, off = echonet_dynamic.trace_mask(gone, 112, 112, 112)
    assert mask.sum() == 0 and off == len(gone.polygon())


def test_pooled_dice_is_pixel_f1_and_bootstraps_by_video():
    rng = np.random.default_rng(0)
    truth = rng.random((10, 16, 16)) < 0.3
    pred = truth ^ (rng.random((10, 16, 16)) < 0.1)
    inter = (pred & truth).sum(axis=(1, 2))
    total = pred.sum(axis=(1, 2)) + truth.sum(axis=(1, 2))
    r = stats.bootstrap_ci("dice", inter, total, n_resamples=999)
    assert r.estimate == pytest.approx(f1_score(truth.ravel(), pred.ravel()), abs=1e-12)
    assert r.low < r.estimate < r.high


def test_paired_pooled_dice_difference_against_a_naive_loop():
    # Two models' pixel counts on the same 40 videos; the oracle resamples videos in a plain loop.
    rng = np.random.default_rng(1)
    true = rng.integers(300, 800, 40).astype(float)
    pred_a, pred_b = true * rng.normal(1, 0.05, 40), true * rng.normal(1, 0.12, 40)
    inter_a = np.minimum(pred_a, true) * rng.uniform(0.93, 0.99, 40)
    inter_b = np.minimum(pred_b, true) * rng.uniform(0.90, 0.99, 40)
    rows_a, rows_b = (inter_a, pred_a + true), (inter_b, pred_b + true)
    ours = stats.paired_bootstrap_diff_rows("dice", rows_a, rows_b, n_resamples=9999, method="percentile")

    def dice(i, t):
        return 2 * i.sum() / t.sum()

    d = dice(*rows_a) - dice(*rows_b)
    boot = np.empty(20000)
    g = np.random.default_rng(7)
    for k in range(len(boot)):
        idx = g.integers(0, 40, 40)
        boot[k] = dice(inter_a[idx], rows_a[1][idx]) - dice(inter_b[idx], rows_b[1][idx])
    low, high = np.percentile(boot, [2.5, 97.5])
    p = 2 * min(np.mean(boot <= 0), np.mean(boot >= 0))  # where the percentile interval stops covering 0
    assert ours.diff == pytest.approx(d, abs=1e-12) and d > 0
    width = high - low
    assert abs(ours.low - low) < 0.05 * width and abs(ours.high - high) < 0.05 * width
    assert ours.p_value == pytest.approx(p, abs=0.01)


@pytest.mark.parametrize("name,kw", [("deeplabv3_resnet50", {}), ("deeplabv3_lite", {"layers": [1, 1]})])
def test_deeplab_builds_offline_with_one_logit_channel(name, kw, tmp_path):
    model = build(name, **kw).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1, 64, 64)
    # A checkpoint saved by the original code (DataParallel: "module." prefixes) loads.
    state = {f"module.{k}": v + 1 for k, v in model.net.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    again = build(name, weights=str(tmp_path / "w.pt"), **kw)
    k = next(iter(model.net.state_dict()))
    assert torch.equal(again.net.state_dict()[k], model.net.state_dict()[k] + 1)


def test_summed_bce_is_the_mean_times_the_pixel_count():
    logits, target = torch.randn(3, 8, 8), (torch.rand(3, 8, 8) > 0.5).float()
    assert LOSSES["bce_sum"](logits, target).item() == pytest.approx(LOSSES["bce"](logits, target).item() * 192, rel=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_end_systoles_found_on_a_noisy_area_curve(seed):
    ph = echo_phantom.sample(np.random.default_rng(seed))
    length, width = ph.geometry(np.arange(ph.n_frames))
    area = length * width  # proportional to the cavity's area
    minima = find_peaks(-area)[0]  # every local minimum of the clean curve is an end-systole
    noisy = area + np.random.default_rng(seed).normal(0, 0.05 * beats.robust_range(area), len(area))
    found = beats.end_systoles(noisy, echo_phantom.FPS)
    assert all(np.abs(minima - f).min() <= 3 for f in found)  # each detection within 60 ms of a true one
    # Only a beat cut off by the video's end (too little recovery after it for the prominence) is lost.
    assert len(minima) - 1 <= len(found) <= len(minima) and len(found) >= 1


def test_no_beat_on_a_flat_or_tiny_curve():
    assert len(beats.end_systoles(np.full(100, 500.0), 50)) == 0
    assert len(beats.end_systoles(np.array([1.0, 2.0]), 50)) == 0


def test_robust_range_uses_percentiles_not_the_original_power_slip():
    area = np.concatenate([np.linspace(100, 200, 198), [0.0, 1000.0]])  # two outliers
    lo, hi = np.percentile(area, [5, 95])
    assert beats.robust_range(area) == pytest.approx(hi - lo)
    slip = sorted(area)[round(len(area) ** 0.95)] - sorted(area)[round(len(area) ** 0.05)]
    assert abs(beats.robust_range(area) - slip) > 5


def test_beat_clips_are_centred_and_stay_inside():
    starts = beats.beat_clip_starts(np.array([10, 60, 100, 140, 180, 220, 260]), 300, frames=32, period=2)
    assert len(starts) == 5  # at most five beats
    assert starts[0] == 0 and starts[1] == 60 - 31 and starts.max() <= 300 - 63
    assert list(beats.beat_clip_starts(np.array([20]), 40, 32, 2)) == [0]  # short video: padded clip
