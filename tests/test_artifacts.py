"""MR artifacts (cardiobench.tasks.acdc.artifacts): seeded, monotone in severity, TorchIO underneath, no global RNG use."""
from __future__ import annotations

import random
from unittest import mock

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torchio as tio

from cardiobench.tasks.acdc import artifacts as A

SPACING = (10.0, 1.5, 1.5)  # (z, h, w) mm
TORCHIO_CLASS = {"motion": "Motion", "bias": "BiasField", "spike": "Spike", "gamma": "Gamma", "blur": "Blur",
                 "ghosting": "Ghosting"}


def phantom(z: int = 8, n: int = 128, seed: int = 0) -> np.ndarray:
    """A z-scored short-axis-like stack: bright blood pool, dark myocardial ring, textured tissue, air."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - n / 2
    r = np.hypot(yy, xx)
    slices = []
    for k in range(z):
        img = 0.25 + 0.05 * np.sin(xx / 3.0) * np.cos(yy / 5.0) + 0.03 * g.standard_normal((n, n))
        img[r < 26 + k] = 0.05  # myocardium
        img[r < 18 + k] = 1.0  # blood pool, larger towards the base
        img[r > 56] = 0.0  # air
        slices.append(img)
    v = np.stack(slices).astype(np.float32)
    return (v - v.mean()) / v.std()


@pytest.fixture(scope="module")
def vol() -> np.ndarray:
    return phantom()


@pytest.fixture(autouse=True)
def _keep_global_rngs():
    """These tests seed the global RNGs on purpose: give the other tests theirs back."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(states[0]), np.random.set_state(states[1]), torch.set_rng_state(states[2])


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


@pytest.mark.parametrize("artifact", A.ARTIFACTS)
def test_same_seed_same_bytes_whatever_ran_before(vol, artifact):
    first = A.corrupt(vol, artifact, "moderate", seed=5, spacing=SPACING)
    # other artifacts, other seeds and the global RNGs in between change nothing
    A.corrupt(vol, "motion", "severe", seed=1, spacing=SPACING)
    A.augment(vol[:1], np.random.default_rng(0), 1.0)
    np.random.seed(123), torch.manual_seed(123), random.seed(123)
    np.random.random(10), torch.rand(10), random.random()
    again = A.corrupt(vol, artifact, "moderate", seed=5, spacing=SPACING)
    assert again.tobytes() == first.tobytes()
    other = A.corrupt(vol, artifact, "moderate", seed=6, spacing=SPACING)
    assert other.tobytes() != first.tobytes()


def test_no_global_rng_side_effects(vol):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    threads, itk_threads = torch.get_num_threads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    rng = np.random.default_rng(0)
    for artifact in A.ARTIFACTS:
        A.corrupt(vol[:2], artifact, "severe", seed=0, spacing=SPACING)
        A.augment(vol[:1], rng, 1.0, SPACING)
    assert random.getstate() == py
    after = np.random.get_state()
    assert after[0] == npy[0] and np.array_equal(after[1], npy[1]) and after[2:] == npy[2:]
    assert torch.equal(torch.get_rng_state(), th)
    # the single-thread section is undone too
    assert torch.get_num_threads() == threads
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == itk_threads


@pytest.mark.parametrize("artifact", A.ARTIFACTS)
def test_severity_is_monotone(vol, artifact):
    clean = zscore(vol)
    for seed in (0, 1, 2):
        change = [float(np.abs(zscore(A.corrupt(vol, artifact, s, seed, SPACING)) - clean).mean())
                  for s in A.SEVERITIES]
        assert 0 < change[0] < change[1] < change[2], (artifact, seed, change)


@pytest.mark.parametrize("artifact", A.ARTIFACTS)
@pytest.mark.parametrize("shape", [(1, 96, 112), (3, 64, 80)])
def test_shape_dtype_finite(artifact, shape):
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)  # negative values: z-scored input
    for severity in A.SEVERITIES:
        out = A.corrupt(x, artifact, severity, seed=3, spacing=(8.0, 1.3, 1.7))
        assert out.shape == x.shape and out.dtype == np.float32 and np.isfinite(out).all()
    flat = np.full(shape, 2.5, np.float32)  # degenerate input: no range to scale by
    out = A.corrupt(flat, artifact, "severe", seed=3)
    assert out.shape == shape and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.parametrize("artifact", A.ARTIFACTS)
def test_intensity_scale_is_kept(vol, artifact):
    """A raw-unit image (a x + b) is corrupted like its z-scored version, in its own units."""
    x = vol[:2]
    scaled = A.corrupt(300 * x + 500, artifact, "severe", seed=4, spacing=SPACING)
    np.testing.assert_allclose(scaled, 300 * A.corrupt(x, artifact, "severe", seed=4, spacing=SPACING) + 500,
                               rtol=1e-4, atol=0.05)


def test_augment_p0_is_identity_p1_changes():
    x = phantom(z=1, n=64)
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert A.augment(x, rng, 0.0) is x
    one = x[0]
    assert A.augment(one, rng, 0.0) is one
    for _ in range(30):
        out = A.augment(x, rng, 1.0, SPACING)
        assert out.shape == x.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert not np.array_equal(out, x)
    out2d = A.augment(x[0], rng, 1.0, SPACING)
    assert out2d.shape == x[0].shape and not np.array_equal(out2d, x[0])
    # seeded by its generator only
    a = [A.augment(x, np.random.default_rng(9), 1.0, SPACING) for _ in range(2)]
    assert a[0].tobytes() == a[1].tobytes()


def test_augment_draws_every_artifact_and_severity():
    x = phantom(z=1, n=32)
    with mock.patch.object(A, "draw_parameters", wraps=A.draw_parameters) as spy:
        rng = np.random.default_rng(0)
        for _ in range(150):
            A.augment(x, rng, 0.5)
        seen = {c.args[:2] for c in spy.call_args_list}
    assert seen == {(a, s) for a in A.ARTIFACTS for s in A.SEVERITIES}
    assert 45 < spy.call_count < 105  # about p of the calls


@pytest.mark.parametrize("artifact", A.ARTIFACTS)
def test_each_artifact_uses_its_library_transform(vol, artifact):
    spies = {name: mock.patch.object(tio, name, wraps=getattr(tio, name)) for name in TORCHIO_CLASS.values()}
    started = {name: p.start() for name, p in spies.items()}
    try:
        A.corrupt(vol[:2], artifact, "moderate", seed=0, spacing=SPACING)
    finally:
        for p in spies.values():
            p.stop()
    calls = {name: spy.call_count for name, spy in started.items()}
    expected = {name: int(TORCHIO_CLASS.get(artifact) == name) for name in calls}
    assert calls == expected  # noise is Rician (numpy): no TorchIO transform


def _torchio_per_slice(x: np.ndarray, artifact: str, params: dict, spacing) -> np.ndarray:
    """The same parameters through TorchIO directly, one slice at a time, as (1, A, 1, PE)."""
    lo, r = A._robust_frame(x)
    u = (x - lo) / r
    sz, sh, sw = spacing
    transpose = params.get("pe_axis") == "h"
    out = []
    for s in u:
        s = s.T if transpose else s  # phase encoding along the last axis
        affine = np.diag([sw if transpose else sh, sz, sh if transpose else sw, 1.0])
        image = tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(s))[None, :, None, :], affine=affine)
        if artifact == "motion":
            mm = [[b, 0, a] if transpose else [a, 0, b] for a, b in params["translation_mm"]]
            t = tio.Motion(degrees=np.array([[0, d, 0] for d in params["degrees"]], float),
                           translation=np.array(mm, float), times=np.array(params["times"]),
                           image_interpolation="linear")
        elif artifact == "ghosting":
            t = tio.Ghosting(num_ghosts=params["num_ghosts"], axis=2, intensity=params["intensity"], restore=None)
        elif artifact == "spike":
            t = tio.Spike(spikes_positions=np.array(params["spikes_positions"]), intensity=params["intensity"])
        else:
            t = tio.BiasField(coefficients=params["coefficients"], order=params["order"])
        res = t(image).data[0, :, 0].numpy()
        out.append(res.T if transpose else res)
    return np.stack(out) * r + lo


@pytest.mark.parametrize("artifact", ["motion", "ghosting", "spike", "bias"])
def test_matches_torchio_called_directly(vol, artifact):
    x = vol[:2, :, 8:120]  # H != W: catches a swapped axis
    axes = set()
    for seed in range(6):
        params = A.draw_parameters(artifact, "severe", np.random.default_rng(seed))
        axes.add(params.get("pe_axis"))
        ours = A.corrupt(x, artifact, "severe", seed, SPACING)
        np.testing.assert_allclose(ours, _torchio_per_slice(x, artifact, params, SPACING), rtol=1e-5, atol=1e-4)
        assert np.abs(ours - x).mean() > 0.01
    assert axes == ({"h", "w"} if artifact in ("motion", "ghosting") else {None})  # both phase-encoding axes


def test_motion_corrupts_phase_encoding_segments(vol):
    """The k-space centre stays from the reference pose: the image is ghosted, not just moved."""
    x = vol[:1]
    params = A.draw_parameters("motion", "severe", np.random.default_rng(0))
    out = A.apply_artifact(x, "motion", params, SPACING)
    kx, ko = (np.abs(np.fft.fftshift(np.fft.fft2(a[0] - x.min()))) for a in (x, out))
    c = x.shape[-1] // 2
    centre = (slice(c - 4, c + 4), slice(c - 4, c + 4))
    assert np.allclose(ko[centre], kx[centre], rtol=0.02)
    assert np.abs(out - x).mean() > 0.03


def test_severity_table():
    table = A.severity_table()
    assert tuple(table) == A.ARTIFACTS
    for artifact, rows in table.items():
        assert tuple(rows) == A.SEVERITIES
        mild, moderate, severe = (rows[s] for s in A.SEVERITIES)
        assert mild.keys() == moderate.keys() == severe.keys()
        for key, value in mild.items():
            if isinstance(value, tuple) and not value == moderate[key] == severe[key]:
                # ranges grow and do not overlap: what keeps every seed monotone
                assert value[0] <= value[1] <= moderate[key][0] <= moderate[key][1] <= severe[key][0] <= severe[key][1]
    table["noise"]["mild"]["sigma"] = (9, 9)
    assert A.severity_table()["noise"]["mild"]["sigma"] != (9, 9)


def test_unknown_names_raise(vol):
    with pytest.raises(ValueError, match="unknown artifact"):
        A.corrupt(vol, "zipper", "mild", 0)
    with pytest.raises(ValueError, match="unknown severity"):
        A.corrupt(vol, "noise", "extreme", 0)
    with pytest.raises(ValueError, match="Z, H, W"):
        A.corrupt(vol[0], "noise", "mild", 0)
