"""One scan: a patient's anatomy and findings, its reconstructions rendered and the first measured."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ....data.twins import ct_phantom as cp
from ....data.twins.ct_phantom import _Grid
from .anatomy import Recon, _contrast, anatomy, label_map, on_grid, recons
from .design import design_base, design_lungs
from .findings import CHRONIC, LABELS, Design, traits, wanted
from .measure import labels_from, measure
from .render import _render_clean, regions, render

# ------------------------------------------------------------------------------ one scan


@dataclass
class Volume:
    rec: Recon
    hu: np.ndarray  # int16 HU, output voxel order
    labels: np.ndarray  # uint8 TotalSegmentator v2 ids
    affine: np.ndarray
    spacing: tuple[float, float, float]
    quantities: dict[str, float]


def scan(patient_seq: np.random.SeedSequence, scan_index: int, n_recs: int,
         measure_all: bool = False) -> tuple[list[Volume], dict, Design]:
    """Render the ``n_recs`` reconstructions of scan ``scan_index`` of a patient. The anatomy, traits and
    chronic findings come from the patient's seed (the same in every scan of the patient), the acute
    findings and the acquisition from the scan's. Returns the volumes, the labels (measured on the
    first reconstruction) and the design."""
    def child(i: int) -> np.random.SeedSequence:  # spawn() would advance the caller's sequence
        return np.random.SeedSequence(patient_seq.entropy, spawn_key=(*patient_seq.spawn_key, i))

    prng = np.random.default_rng(child(0))
    base = anatomy(prng)
    tr = traits(prng)
    chronic = wanted(tr, prng)
    rng = np.random.default_rng(child(1 + scan_index))
    want = wanted(tr, rng)
    want.update({k: chronic[k] for k in CHRONIC})
    ph = _contrast(base, bool(rng.random() < 0.33), rng)
    ph, design = design_base(ph, want, rng)
    design = dataclasses.replace(design, contrast=ph.blood_hu > 100, planted=tuple(k for k in LABELS if want[k]))
    recs = recons(rng, n_recs)
    origin = (float(rng.uniform(-15, 15)), float(rng.uniform(-40, 20)), float(rng.uniform(-650, -150)))
    jitter = rng.uniform(-6, 6, 2)
    orientation = str(rng.choice(cp.ORIENTATIONS))
    ph = dataclasses.replace(ph, orientation=orientation)
    g1 = on_grid(ph, recs[0], origin, jitter)
    gr1 = _Grid(g1)
    clean1 = _render_clean(g1, design, gr1)
    lab1 = label_map(g1, design, gr1, clean1)
    design = design_lungs(g1, design, want, rng, lab1)
    out = []
    for r, (rec, seq) in enumerate(zip(recs, np.random.SeedSequence(int(rng.integers(2**63))).spawn(len(recs)))):
        g = on_grid(ph, rec, origin, jitter)
        hu, lab, affine = render(g, design, np.random.default_rng(seq), clean=(clean1, lab1) if r == 0 else None)
        q = measure(hu, lab, g.spacing, regions(g, design)) if r == 0 or measure_all else {}
        out.append(Volume(rec, hu, lab, affine, g.spacing, q))
    return out, labels_from(out[0].quantities), design
