"""MR artifacts with named, seeded severities, for robustness tests and augmentation of cine MRI (ACDC).

Every artifact is a library transform: TorchIO's deterministic (non-``Random``) ``Motion``,
``BiasField``, ``Spike``, ``Gamma``, ``Blur`` and ``Ghosting``, plus Rician ``noise``, which TorchIO
lacks (its ``Noise`` is Gaussian): it is the model of MONAI's ``RandRicianNoise`` (and DIPY),
``|image + n1 + i n2|`` with ``n1, n2 ~ N(0, sigma)``, written out in numpy (one line) because
importing MONAI takes seconds and would need its transform's own ``RandomState`` seeded per call.

Severities ``mild | moderate | severe`` are ranges in one table, ``_TABLE`` (``severity_table()``
returns a copy for the docs). The random parts (which rotation, where the spike, the noise field)
are drawn from a ``numpy.random.Generator`` as uniforms in [0, 1) in the same order for every
severity and only then mapped into the severity's range, so one seed gives the same pattern at
every severity, only stronger: that keeps the severities monotone per seed, not just on average.

Layout. ``volume`` is ``(Z, H, W)``: a stack of short-axis slices, ``spacing`` is ``(z, h, w)`` in mm
in the same order as the array axes (ACDC: about (5-10, 1.4-1.7, 1.4-1.7)). Cine MRI is 2D
multi-slice: every slice is its own 2D acquisition with its own 2D k-space. TorchIO's k-space
transforms use a 3D FFT over the spatial axes of each channel, and ``Motion`` fills k-space in
segments along the *last* spatial axis, so a plain ``(1, W, H, D=Z)`` image would mix k-space
across slices 10 mm apart, and a ``(1, W, H, 1)`` slice would turn motion into a plain rigid shift.
The slices therefore go to TorchIO as the channels of one image ``(C=Z, H, 1, W)``: TorchIO's
``(C, W, H, D)`` with the through-plane axis as a singleton in the middle (spacing z; ITK resamples
a size-1 *first* axis ~4x slower) and affine ``diag(h, z, w)``. Every transform then works per
slice in-plane, ``Motion`` segments the phase-encoding lines, and a volume and its single slices
(``Z == 1``, as in ``augment``) are corrupted alike. The phase-encoding direction (motion,
ghosting) is drawn, ``h`` or ``w``; for ``h`` the slice is transposed in-plane first. The bias
field and the blur act in-plane only; rotations are about the through-plane axis.

Intensities. The inputs may be z-scored (negative). MR magnitude images are non-negative, with
background near 0, and the artifacts here depend on that (Rician noise is a magnitude, the bias
field is a gain, gamma a power, the spike amplitude a fraction of the k-space centre, i.e. of the
mean intensity). So each artifact works on ``u = (x - min(x)) / r``, where ``r`` is the robust
range, the 99.5th percentile of ``x - min(x)``; the result is mapped back by ``u * r + min(x)``.
A z-scored slice thus stays comparably scaled and a raw one keeps its units. Noise sigmas are
fractions of ``r``. Note: TorchIO 1.2.1's k-space transforms (motion, spike, ghosting) return the
real part of the inverse FFT, not its magnitude, so their output may dip slightly below min(x).
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import Any, Iterator, Sequence

import numpy as np
import SimpleITK as sitk
import torch
import torchio as tio

ARTIFACTS: tuple[str, ...] = ("noise", "motion", "bias", "spike", "gamma", "blur", "ghosting")
SEVERITIES: tuple[str, ...] = ("mild", "moderate", "severe")

# The single place for the severities. A pair (a, b) is a range the seeded draw falls in; a single
# value is fixed. Units: sigma as a fraction of the robust range; degrees; mm; spike and ghosting
# intensities relative to the k-space maximum (TorchIO's convention); log_gamma as |ln gamma|.
# Aim (ACDC, 1.4-1.7 mm in-plane): mild is barely visible, moderate plainly visible but the
# anatomy readable, severe clearly degrades it. The ranges do not overlap, so with the shared
# draws (see draw_parameters) every seed is monotone in severity.
_TABLE: dict[str, dict[str, dict[str, Any]]] = {
    # Cine SSFP has a blood-pool SNR of roughly 30-100; severe (~8) is a badly failed scan.
    "noise": {
        "mild": {"sigma": (0.010, 0.020)},
        "moderate": {"sigma": (0.035, 0.050)},
        "severe": {"sigma": (0.090, 0.130)},
    },
    # Imperfect breath-holds: in-plane rigid motion while the outer phase-encoding lines (both
    # edges of k-space) are acquired; the centre (contrast) is always from the reference pose.
    # kspace_fraction is the share of lines from moved poses. The diaphragm moves 10-20 mm when
    # breathing, the heart a fraction of that; severe is close to a free-breathing scan.
    "motion": {
        "mild": {"degrees": (0.5, 1.0), "translation_mm": (0.5, 1.0), "kspace_fraction": (0.08, 0.12)},
        "moderate": {"degrees": (1.5, 2.5), "translation_mm": (2.0, 3.5), "kspace_fraction": (0.25, 0.35)},
        "severe": {"degrees": (4.0, 6.0), "translation_mm": (6.0, 10.0), "kspace_fraction": (0.50, 0.60)},
    },
    # Surface-coil shading: a smooth polynomial gain (in-plane, order 3); the ratio of its 95th to
    # 5th percentile over the slice is typically ~1.1 (mild), ~1.4 (moderate), ~2 (severe).
    "bias": {
        "mild": {"coefficients": (0.03, 0.06), "order": 3},
        "moderate": {"coefficients": (0.12, 0.18), "order": 3},
        "severe": {"coefficients": (0.30, 0.40), "order": 3},
    },
    # Herringbone stripes from k-space spikes: their amplitude is intensity x the mean intensity.
    # TorchIO's default intensity (1, 3) is far beyond severe.
    "spike": {
        "mild": {"intensity": (0.04, 0.06), "num_spikes": 1},
        "moderate": {"intensity": (0.12, 0.18), "num_spikes": 1},
        "severe": {"intensity": (0.30, 0.45), "num_spikes": 2},
    },
    # Contrast (windowing / sequence) changes, gamma = exp(+-log_gamma): 0.91-1.1 up to 0.55-1.8.
    "gamma": {
        "mild": {"log_gamma": (0.05, 0.10)},
        "moderate": {"log_gamma": (0.20, 0.30)},
        "severe": {"log_gamma": (0.45, 0.60)},
    },
    # In-plane Gaussian blur, std in mm (through-plane is untouched: slices are separate scans).
    "blur": {
        "mild": {"std_mm": (0.4, 0.6)},
        "moderate": {"std_mm": (1.0, 1.5)},
        "severe": {"std_mm": (2.2, 3.0)},
    },
    # Periodic (cardiac / flow / respiratory) ghosts along the phase-encoding direction.
    "ghosting": {
        "mild": {"intensity": (0.10, 0.15), "num_ghosts": (2, 5)},
        "moderate": {"intensity": (0.30, 0.40), "num_ghosts": (2, 5)},
        "severe": {"intensity": (0.65, 0.80), "num_ghosts": (2, 5)},
    },
}

_MAX_SPIKES = max(s["num_spikes"] for s in _TABLE["spike"].values())


def severity_table() -> dict[str, dict[str, dict]]:
    """The parameters of every artifact x severity (a copy: editing it changes nothing)."""
    return copy.deepcopy(_TABLE)


def _check(artifact: str, severity: str | None = None) -> None:
    if artifact not in ARTIFACTS:
        raise ValueError(f"unknown artifact {artifact!r}; choose from {', '.join(ARTIFACTS)}")
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; choose from {', '.join(SEVERITIES)}")


def _within(bounds: Sequence[float], u: float) -> float:
    a, b = bounds
    return float(a + u * (b - a))


def draw_parameters(artifact: str, severity: str, rng: np.random.Generator) -> dict[str, Any]:
    """Concrete parameters of one artifact at one severity, drawn from ``rng``.

    Every severity consumes the same draws in the same order (uniforms mapped into its range), so
    a seed fixes the pattern (directions, positions, signs, noise field) and the severity its size.
    """
    _check(artifact, severity)
    row = _TABLE[artifact][severity]
    if artifact == "noise":
        return {"sigma": _within(row["sigma"], rng.random()), "noise_seed": int(rng.integers(2**63))}
    if artifact == "motion":
        # two moved poses, one per k-space edge (TorchIO's Motion fills the segment holding the
        # centre from the reference pose); `split` shares the moved fraction between the edges
        u_deg, sign, u_mm, phi = (rng.random(2) for _ in range(4))
        fraction, split = _within(row["kspace_fraction"], rng.random()), 0.3 + 0.4 * rng.random()
        return {
            "degrees": [_within(row["degrees"], u) * (1 if s < 0.5 else -1) for u, s in zip(u_deg, sign)],
            # in-plane (h, w) shifts in mm of a random direction
            "translation_mm": [[_within(row["translation_mm"], u) * math.cos(2 * math.pi * p),
                                _within(row["translation_mm"], u) * math.sin(2 * math.pi * p)]
                               for u, p in zip(u_mm, phi)],
            # when each pose starts, as a fraction of the lines along the phase-encoding axis
            "times": [fraction * split, 1 - fraction * (1 - split)],
            "pe_axis": "hw"[int(rng.integers(2))],
        }
    if artifact == "bias":
        order = row["order"]
        n_coef = (order + 1) * (order + 2) * (order + 3) // 6  # the 3D polynomial basis of TorchIO
        size = _within(row["coefficients"], rng.random())
        return {"coefficients": (size * rng.uniform(-1, 1, n_coef)).tolist(), "order": order}
    if artifact == "spike":
        intensity = _within(row["intensity"], rng.random())
        positions = rng.random((_MAX_SPIKES, 3))[: row["num_spikes"]]
        return {"intensity": intensity, "spikes_positions": positions.tolist()}
    if artifact == "gamma":
        size, sign = _within(row["log_gamma"], rng.random()), rng.random()
        return {"gamma": float(math.exp(size if sign < 0.5 else -size))}
    if artifact == "blur":
        return {"std_mm": _within(row["std_mm"], rng.random())}
    # ghosting
    intensity = _within(row["intensity"], rng.random())
    lo, hi = row["num_ghosts"]
    return {"intensity": intensity, "num_ghosts": int(lo + min(int(rng.random() * (hi - lo + 1)), hi - lo)),
            "pe_axis": "hw"[int(rng.integers(2))]}


def _robust_frame(x: np.ndarray) -> tuple[float, float]:
    """(offset, range) mapping ``x`` to a magnitude-like image: min 0, 99.5th percentile 1."""
    lo = float(x.min())
    shifted = x - lo
    # np.percentile, not a bare np.partition: the latter degrades ~15x on the many equal values of
    # an image's air (measured 2 ms vs 0.13 ms on a 128x128 slice)
    r = float(np.percentile(shifted, 99.5))
    if not r > 0:
        r = float(shifted.max()) or 1.0  # a mostly flat image: its full range, or leave it as is
    return lo, r


def _run(transform: tio.Transform, tensor: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    """Apply a TorchIO transform to ``(C, A, 1, B)`` with spacing ``(a, z, b)`` mm."""
    image = tio.ScalarImage(tensor=tensor, affine=np.diag([*map(float, spacing), 1.0]))
    # Transform.__call__ draws torch.rand(1) for its probability even when p == 1: keep the
    # caller's torch RNG untouched. The deterministic transforms draw nothing else.
    with torch.random.fork_rng(devices=[]), _serial():
        return transform(image).data


@contextlib.contextmanager
def _serial() -> Iterator[None]:
    """One torch and one SimpleITK thread for the duration, then the caller's settings again.

    TorchIO works slice by slice (channel by channel): 128x128 FFTs and resamplings are far below
    the size where threads pay off, and on a busy machine the hand-off costs more than the work
    (measured on 2 shared cores: augment 15 ms per call with 2 threads, 2 ms with one). DataLoader
    workers run single-threaded anyway. The settings are process-wide while this runs.
    """
    torch_threads = torch.get_num_threads()
    itk_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_threads)


def apply_artifact(volume: np.ndarray, artifact: str, params: dict[str, Any],
                   spacing: Sequence[float] = (1, 1, 1)) -> np.ndarray:
    """``volume`` (Z, H, W) with one artifact of concrete ``params`` (``draw_parameters``); deterministic.

    ``spacing`` is (z, h, w) in mm, matching the array axes. Returns float32, same shape.
    """
    _check(artifact)
    x = np.asarray(volume, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"volume must be (Z, H, W), got shape {x.shape}")
    if len(spacing) != 3:
        raise ValueError(f"spacing must be (z, h, w) mm, got {tuple(spacing)}")
    lo, r = _robust_frame(x)
    u = (x - lo) / np.float32(r)

    if artifact == "noise":
        g = np.random.default_rng(params["noise_seed"])
        n = g.standard_normal((2, *u.shape), dtype=np.float32) * np.float32(params["sigma"])
        out = np.sqrt((u + n[0]) ** 2 + n[1] ** 2)
    else:
        # (Z, H, 1, W): slices as channels, the through-plane axis a singleton in the middle (ITK
        # resamples a size-1 first axis ~4x slower), phase encoding along the last axis
        t = torch.from_numpy(np.ascontiguousarray(u)).unsqueeze(2)
        sz, sh, sw = (float(s) for s in spacing)
        sp = [sh, sz, sw]
        transpose = params.get("pe_axis") == "h"
        if transpose:  # phase encoding along the last axis, where Motion fills k-space in segments
            t, sp = t.transpose(1, 3).contiguous(), [sw, sz, sh]
        if artifact == "motion":
            # rotation about the through-plane axis, shifts in-plane only (2D slices)
            degrees = np.array([[0.0, d, 0.0] for d in params["degrees"]])
            mm = np.array([[b, 0.0, a] if transpose else [a, 0.0, b] for a, b in params["translation_mm"]])
            transform = tio.Motion(degrees=degrees, translation=mm, times=np.array(params["times"]),
                                   image_interpolation="linear", copy=False)
        elif artifact == "bias":
            transform = tio.BiasField(coefficients=params["coefficients"], order=params["order"], copy=False)
        elif artifact == "spike":
            transform = tio.Spike(spikes_positions=np.array(params["spikes_positions"]),
                                  intensity=params["intensity"], copy=False)
        elif artifact == "gamma":
            transform = tio.Gamma(gamma=params["gamma"], copy=False)
        elif artifact == "blur":
            transform = tio.Blur(std=(params["std_mm"], 0.0, params["std_mm"]), copy=False)
        else:  # ghosting, along the last (phase-encoding) axis
            transform = tio.Ghosting(num_ghosts=params["num_ghosts"], axis=2, intensity=params["intensity"],
                                     restore=None, copy=False)
        t = _run(transform, t, sp)
        if transpose:
            t = t.transpose(1, 3)
        out = t[:, :, 0].numpy()

    out = out.astype(np.float32, copy=False) * np.float32(r) + np.float32(lo)
    return np.nan_to_num(out, nan=lo, posinf=lo + r, neginf=lo).astype(np.float32, copy=False)


def corrupt(volume: np.ndarray, artifact: str, severity: str, seed: int,
            spacing: Sequence[float] = (1, 1, 1)) -> np.ndarray:
    """``volume`` (Z, H, W) float32 with ``artifact`` at ``severity``; ``spacing`` is (z, h, w) mm.

    Deterministic: the parameters come from ``np.random.default_rng(seed)`` only; the global RNGs
    (numpy, torch, random) neither change nor affect the result. Same shape and dtype, finite values.
    """
    params = draw_parameters(artifact, severity, np.random.default_rng(seed))
    return apply_artifact(volume, artifact, params, spacing)


def augment(image: np.ndarray, rng: np.random.Generator, p: float,
            spacing: Sequence[float] = (1, 1, 1)) -> np.ndarray:
    """With probability ``p``, one artifact (uniform) at a uniform severity, drawn from ``rng``.

    ``image`` is (Z, H, W) or one (H, W) slice, ``spacing`` (z, h, w) mm. Without an artifact
    (probability 1 - p) the input itself is returned; with one, a new float32 array.
    """
    if not rng.random() < p:
        return image
    artifact = ARTIFACTS[int(rng.integers(len(ARTIFACTS)))]
    severity = SEVERITIES[int(rng.integers(len(SEVERITIES)))]
    params = draw_parameters(artifact, severity, rng)
    x = np.asarray(image)
    out = apply_artifact(x[None] if x.ndim == 2 else x, artifact, params, spacing)
    return out[0] if x.ndim == 2 else out
