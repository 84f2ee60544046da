"""Geometry primitives: vectors and frames, the voxel grid (:class:`_Grid`), signed distances of capsules,
ellipsoids and ellipses, partial-volume membership (:func:`_soft`) and painting a shape into a volume
(:func:`_field`, :func:`_paint`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import portable_math as pmath
from .model import CTPhantom, Vec, _axes


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / pmath.norm(v)


def _t(v) -> Vec:
    return tuple(float(a) for a in v)


def _frame(axis: np.ndarray, toward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors normal to ``axis``: the one nearest ``toward``, and axis x it."""
    e2 = _unit(toward - pmath.dot(toward, axis) * axis)
    return e2, np.cross(axis, e2)


def _ell_bbox(c, rows, semi) -> tuple[np.ndarray, np.ndarray]:
    half = np.sqrt(np.sum(np.square(np.asarray(rows) * np.asarray(semi)[:, None]), axis=0))
    return np.asarray(c) - half, np.asarray(c) + half


class _Grid:
    def __init__(self, ph: CTPhantom):
        self.x, self.y, self.z = _axes(ph)
        self.edge = float(min(ph.spacing[:2]))

    def box(self, lo, hi):
        """Index box and coordinate vectors (broadcastable) of the voxels inside [lo, hi]."""
        idx = []
        for v, a, b in zip((self.x, self.y, self.z), lo, hi):
            i0, i1 = int(np.searchsorted(v, a)), int(np.searchsorted(v, b, side="right"))
            if i1 <= i0:
                return None
            idx.append(slice(i0, i1))
        return (tuple(idx), self.x[idx[0], None, None], self.y[None, idx[1], None], self.z[None, None, idx[2]])


def _soft(sd: np.ndarray, edge: float, grow: float = 0.0) -> np.ndarray:
    """Partial-volume membership from a signed distance (mm, negative inside) of a shape grown by
    ``grow`` mm: a linear ramp ``edge`` wide."""
    m = sd * np.float32(-1.0 / edge)
    m += np.float32(0.5 + grow / edge)
    return np.clip(m, 0.0, 1.0, out=m)


@dataclass(frozen=True)
class _Capsule:
    a: Vec
    b: Vec
    r0: float
    r1: float

    def bbox(self, m):
        a, b, r = np.asarray(self.a), np.asarray(self.b), max(self.r0, self.r1) + m
        return np.minimum(a, b) - r, np.maximum(a, b) + r

    def sd(self, X, Y, Z):
        ax, ay, az = self.a
        dx, dy, dz = (float(q - p) for p, q in zip(self.a, self.b))
        l2 = max(dx * dx + dy * dy + dz * dz, 1e-6)
        px, py, pz = X - np.float32(ax), Y - np.float32(ay), Z - np.float32(az)
        t = (px * np.float32(dx / l2) + py * np.float32(dy / l2)) + pz * np.float32(dz / l2)
        np.clip(t, 0, 1, out=t)
        ex, ey, ez = px - t * np.float32(dx), py - t * np.float32(dy), pz - t * np.float32(dz)
        out = np.sqrt(ex * ex + ey * ey + ez * ez)
        out -= self.r0 + (self.r1 - self.r0) * t
        return out


@dataclass(frozen=True)
class _Ellipsoid:
    c: Vec
    rows: tuple[Vec, Vec, Vec]  # unit vectors of the semi-axes
    semi: Vec
    cut: tuple[Vec, float] | None = None  # keep n . (p - c) <= offset

    def bbox(self, m):
        lo, hi = _ell_bbox(self.c, self.rows, self.semi)
        return lo - m, hi + m

    def sd(self, X, Y, Z):
        dX, dY, dZ = X - np.float32(self.c[0]), Y - np.float32(self.c[1]), Z - np.float32(self.c[2])
        k0 = k1 = 0
        for r, s in zip(self.rows, self.semi):
            t = (dX * np.float32(r[0] / s) + dY * np.float32(r[1] / s)) + dZ * np.float32(r[2] / s)
            k0 = k0 + t * t
            t *= np.float32(1 / s)
            k1 = k1 + t * t
        k0 = np.sqrt(k0)
        out = k0 * (k0 - 1) / np.sqrt(np.maximum(k1, 1e-12))
        if self.cut is not None:
            n, off = self.cut
            plane = (dX * np.float32(n[0]) + dY * np.float32(n[1])) + dZ * np.float32(n[2]) - np.float32(off)
            np.maximum(out, plane, out=out)
        return out


def _field(gr: _Grid, prim, margin: float = 0.0):
    """(index box, signed distance) of ``prim`` over the voxels within ``margin`` mm of it."""
    b = gr.box(*prim.bbox(margin + 2 * gr.edge))
    if b is None:
        return None
    sl, X, Y, Z = b
    return sl, prim.sd(X, Y, Z)


def _paint(vol, gr, prim, hu, alpha=1.0, grow=0.0, lung_only=False, field=None):
    """Composite ``hu`` over ``vol`` with the partial-volume membership of ``prim`` grown by ``grow``
    mm (``field``: its precomputed :func:`_field` with a margin of at least ``grow``)."""
    f = field if field is not None else _field(gr, prim, grow)
    if f is None:
        return
    sl, sd = f
    m = _soft(sd, gr.edge, grow)
    if alpha != 1.0:
        m *= np.float32(alpha)
    v = vol[sl]
    if lung_only:
        m *= v < -400
    v += m * (np.float32(hu) - v)


def _ellipse_sd(X, Y, cx, cy, a, b):
    """Approximate signed distance to an axis-aligned ellipse, exact on circles."""
    dx, dy = X - np.float32(cx), Y - np.float32(cy)
    rho = np.sqrt(dx * dx + dy * dy)
    q = np.sqrt(np.square(dx * np.float32(1 / a)) + np.square(dy * np.float32(1 / b)))
    return rho - rho / np.maximum(q, 1e-6)
