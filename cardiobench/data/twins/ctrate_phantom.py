"""Chest-CT phantom of the CT-RATE twin: a volume in HU, a TotalSegmentator-v2-style label map, the
18 CT-RATE abnormalities planted in the pixels and *measured* from them, and a report written from
the measurements.

Anatomy is :mod:`ct_phantom`'s ``chest`` patient (body, lungs with vessels, spine, ribs, sternum,
mediastinum, heart, aorta, airways, oesophagus, liver), re-gridded at a coarse reconstruction (about
128-160 px at 2-3 mm in-plane, 3-5 mm slices) by replacing its acquisition fields; its aortic-valve
and coronary calcium are removed (the twin plants its own). Two thirds of the scans are non-contrast,
as most of CT-RATE (blood, myocardium, liver and spleen at unenhanced values). The left upper abdomen
is redrawn (stomach with an air-fluid level, spleen, fat), so that every soft-tissue region of fluid
density is either labelled or a planted fluid collection.

One *scan* is one phantom with one set of findings; its *reconstructions* are renders of that phantom
on different grids (spacing, matrix), kernels (in-plane PSF) and noise levels. The labels of a scan
are measured on its first reconstruction (the standard kernel) and shared by all of them, as
CT-RATE's labels come from the scan's report.

Findings and how each is measured (``measure``; ``HU`` is the saved volume, ``L`` the label map):

* Medical material: pacemaker generator + lead, port chamber, or sternotomy wires (metal, 2500-4000
  HU). Measured: volume of voxels >= 1500 HU >= 50 mm^3 (bone stays below ~1100 HU).
* Arterial wall calcification: Gaussian plaques on the intima of the arch and descending aorta.
  Measured: connected foci (26-connected, >= 2 voxels) of HU >= threshold inside the aorta label,
  threshold 130 HU (non-contrast; aorta median < 100 HU) or aorta median + 150 HU (contrast); >= 1 focus.
* Coronary artery wall calcification: plaques in the epicardial fat along the coronary grooves; the
  same rule inside the heart label (which holds the pericardial sac content: chambers, myocardium and
  epicardial fat) minus the aorta.
* Cardiomegaly: heart chambers scaled about the LV centre (the chest refitted around them).
  Measured: cardiothoracic ratio = largest left-right extent of the heart label on an axial slice /
  largest left-right extent of the lungs; >= 0.5.
* Pericardial effusion: a water-density rim (10 HU) of 6-15 mm outside the epicardial fat.
  Measured: unlabelled voxels of fluid density (3x3 in-plane mean in [-20, 30] HU, opened by a 3x3
  in-plane square) within 15 mm of the heart label; >= 10 mL.
* Pleural effusion: dependent (posterior) fluid (8 HU) 30-65 mm deep over the diaphragm, tapering
  upwards, on one or both sides. Measured: the other fluid voxels, as 26-connected collections that
  come within 10 mm of the lungs; >= 20 mL.
* Hiatal hernia: a stomach pouch (air-fluid) through the hiatus above the diaphragm, labelled stomach.
  Measured: stomach label volume above the top slice of the liver label (the right dome); >= 3 mL.
* Emphysema: clusters of spheres at -990..-970 HU in the upper lungs. Measured: LAA-950 = fraction of
  lung-label voxels < -950 HU; >= 5 %.
* The other lung findings are planted as lesions in the lungs (painted only over aerated lung) and
  measured from the rendered voxels inside the lesion's own region (voxel centres inside its shapes):
  lung nodule (solid spheres 10-24 mm; largest equivalent diameter of voxels > -300 HU >= 4 mm; tiny
  2-3 mm nodules in some negatives), lung opacity (ground glass -650..-450 HU, also the halo of most
  consolidations; volume of voxels in (-800, -250) HU >= 5 mL), consolidation (30-45 HU with air
  bronchograms; volume > -150 HU >= 5 mL), atelectasis (posterior basal plates, 20-40 HU; volume
  > -300 HU >= 3 mL), pulmonary fibrotic sequela (peripheral strands; volume > -500 HU >= 1 mL),
  mosaic attenuation (interleaved low -110 HU and high +160 HU lobular patches of 14-24 mm radius; volume of low-patch
  voxels below their lung level - 35 HU (3x3 mean) >= 20 mL), peribronchial thickening (bronchial
  cuffs of 2.5-4 mm soft tissue; wall volume > -500 HU >= 2 mL), bronchiectasis (dilated bronchi,
  lumen radius 5-9 mm; lumen volume < -900 HU >= 1 mL), interlobular septal thickening (a network of
  thin peripheral septa; volume > -700 HU within 1 mm of them >= 1 mL). Lymphadenopathy: mediastinal
  nodes at five stations (normal ones, radius 2-3.5 mm, at about half of them in everyone; enlarged
  ones 10-15 mm, at 2-4 stations); largest axial equivalent diameter of voxels > -5 HU inside a node >= 10 mm.

Sizes, HU and the thresholds were calibrated on 40 scans so that planted and unplanted findings are
far apart (twin_measurements.csv holds every measured quantity); a finding planted but measured
below its threshold (e.g. a plaque outside the scanned range) is a negative: the label is the
measurement, never the plan (``Design.planted`` keeps the plan).
Twin v3 plants bigger and more findings than v2 (plaques, nodes, nodules, mosaic patches, fibrotic
strands, bronchiectatic sites, septa, emphysema): at v2 sizes a planted finding fell below its threshold
often enough (coronary 25 of 400 volumes, bronchiectasis 13) that its report and its label disagreed
with what the smoke encoder could see; at v3, 2 and 5 of 400 (seed 1).

Label map ids are TotalSegmentator v2's (:data:`organs.TOTAL_V2`): five lobes (fissures as planes),
heart, aorta, trachea (with the main bronchi), oesophagus, pulmonary veins, SVC, IVC, liver,
stomach, spleen, vertebrae (levels counted from the left dome = T10), ribs (left/right 1-12),
costal cartilages, sternum and the autochthon muscles.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import ct_phantom as cp
from . import portable_math as pmath
from .ct_phantom import AIR, _Capsule, _Ellipsoid, _ellipse_sd, _field, _Grid, _paint, _soft, _t

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


# ------------------------------------------------------------------------------ anatomy


def _heart_box(ph: cp.CTPhantom, grow: float) -> tuple[np.ndarray, np.ndarray]:
    d, e2 = np.asarray(ph.axis), np.asarray(ph.septal)
    rows = np.stack([d, e2, np.cross(d, e2)])
    L = (1 + ph.trunc) * ph.c_ed
    r_epi = ph.r_ed + ph.wall
    lo1, hi1 = cp._ell_bbox(np.asarray(ph.base) + d * (L - ph.c_ed), rows,
                            np.array([ph.c_ed + ph.wall_apex, r_epi, r_epi]))
    lo2, hi2 = cp._ell_bbox(ph.rv[0], rows, np.asarray(ph.rv[1]) + 3.5)
    return np.minimum(lo1, lo2) - grow, np.maximum(hi1, hi2) + grow


def _inside_ell(p, c, semi) -> bool:
    return float(np.sum(np.square((np.asarray(p) - np.asarray(c)) / np.asarray(semi)))) <= 1.0


def scale_heart(ph: cp.CTPhantom, k: float, rim: float = 0.0) -> cp.CTPhantom:
    """The chambers scaled by ``k`` about the LV centre (vessels that start in an atrium follow), the
    chest wall moved out and the diaphragm down where the heart (plus ``rim`` mm of pericardial fluid)
    would no longer fit, as :func:`ct_phantom.sample` fits a body around the heart."""
    C = ph.lv_center()
    old_lo, _ = _heart_box(ph, 0.0)

    def m(p):
        return _t(C + k * (np.asarray(p) - C))

    tubes = []
    for kind, a, b, r0, r1 in ph.tubes:
        if kind in ("vein", "blood") and (_inside_ell(a, *ph.ra) or _inside_ell(a, *ph.la)):
            a = m(a)
        tubes.append((kind, a, b, r0, r1))
    ph = dataclasses.replace(
        ph, base=m(ph.base), r_ed=ph.r_ed * k, c_ed=ph.c_ed * k, wall=ph.wall * k, wall_apex=ph.wall_apex * k,
        rv=(m(ph.rv[0]), _t(np.asarray(ph.rv[1]) * k)), ra=(m(ph.ra[0]), _t(np.asarray(ph.ra[1]) * k)),
        la=(m(ph.la[0]), _t(np.asarray(ph.la[1]) * k)), tubes=tuple(tubes))
    lo, hi = _heart_box(ph, ph.epi_fat + rim)
    a_b, b_b, body_y = ph.body
    a_c, b_c, y_c = ph.cavity
    front = hi[1] + 4 - (y_c + b_c)
    if front > 0:
        b_c, y_c, b_b, body_y = b_c + front / 2, y_c + front / 2, b_b + front / 2, body_y + front / 2
    side = -lo[0] + 15 - a_c
    if side > 0:
        a_c, a_b = a_c + side, a_b + side
    drop = max(0.0, old_lo[2] - lo[2] + ph.epi_fat + rim)
    domes = (ph.domes[0] - drop, ph.domes[1] - drop, *ph.domes[2:])
    return dataclasses.replace(ph, body=(a_b, b_b, body_y), cavity=(a_c, b_c, y_c), domes=_t(domes))


def _dome(ph, X, Y):
    z_r, z_l, x_d, y_d, r_d = ph.domes
    d = np.maximum(z_r - (np.square(X - x_d) + np.square(Y - y_d)) / (2 * r_d),
                   z_l - (np.square(X + x_d) + np.square(Y - y_d)) / (2 * r_d))
    return np.maximum(d, z_l - 75)


def _top(ph, X, Y):
    z_ap, x_ap, y_ap, r_ap = ph.lung_top
    return z_ap - (np.square(np.abs(X) - x_ap) + np.square(Y - y_ap)) / (2 * r_ap)


def _liver_side(ph, X, Y):
    return X > -20 - 0.4 * (Y - ph.cavity[2])


def _torso(ph: cp.CTPhantom, gr: _Grid, vol: np.ndarray) -> None:
    """:func:`ct_phantom._torso` with the left upper abdomen as fat (stomach and spleen drawn after)."""
    e = gr.edge
    X, Y = gr.x[:, None], gr.y[None, :]
    a, b, yb = ph.body
    wall = AIR + _soft(_ellipse_sd(X, Y, 0, yb, a, b), e) * (ph.fat_hu - AIR)
    f = ph.fat_mm
    wall += _soft(_ellipse_sd(X, Y, 0, yb, a - f, b - f), e) * (ph.muscle_hu - wall)
    a_c, b_c, y_c = ph.cavity
    cav = _soft(_ellipse_sd(X, Y, 0, y_c, a_c, b_c), e)
    lung = np.broadcast_to(ph.lung_hu + ph.lung_gradient * np.clip(0.5 - 0.5 * (Y - y_c) / b_c, 0, 1), wall.shape)
    z_top, dome = _top(ph, X, Y), _dome(ph, X, Y)
    abd = np.where(_liver_side(ph, X, Y), ph.liver_hu, -70.0).astype(np.float32)
    neck = np.float32(ph.muscle_hu)
    for k, z in enumerate(gr.z):
        z = float(z)
        low = np.clip((dome - z) / e + 0.5, 0, 1)
        high = np.clip((z - z_top) / e + 0.5, 0, 1)
        lf = np.clip(1 - low - high, 0, 1)
        vol[:, :, k] = wall + cav * (lf * lung + low * abd + high * neck - wall)


def _abdomen_prims(ph: cp.CTPhantom):
    """Stomach and spleen under the left dome (clipped 3 mm below it)."""
    z_r, z_l, x_d, y_d, r_d = ph.domes
    a_c, b_c, y_c = ph.cavity
    g = ph.size
    stomach = ("ell", (-0.85 * x_d, y_d + 0.15 * b_c, z_l - 42 * g), (38 * g, 34 * g, 40 * g))
    spleen = ("ell", (-0.78 * a_c, y_c - 0.4 * b_c, z_l - 45 * g), (22 * g, 32 * g, 45 * g))
    return stomach, spleen


def _below_dome_sd(ph, gr, prim):
    f = _field(gr, _prim(prim), 0.0)
    if f is None:
        return None
    sl, sd = f
    X, Y, Z = gr.x[sl[0], None, None], gr.y[None, sl[1], None], gr.z[None, None, sl[2]]
    return sl, np.maximum(sd, Z - (_dome(ph, X, Y) - 3))


def _paint_sd(vol, gr, f, hu):
    if f is None:
        return
    sl, sd = f
    m = _soft(sd, gr.edge)
    v = vol[sl]
    v += m * (np.float32(hu) - v)


def _effusion_sd(ph: cp.CTPhantom, gr: _Grid, side: int, depth: float, taper: float):
    """Signed distance (mm) of the dependent fluid of one side: a posterior layer ``depth`` deep at the
    dome, thinning to nothing ``taper`` mm higher."""
    a_c, b_c, y_c = ph.cavity
    z_dome = ph.domes[0] if side > 0 else ph.domes[1]
    X, Y, Z = gr.x[:, None, None], gr.y[None, :, None], gr.z[None, None, :]
    level = y_c - b_c + depth * np.clip(1 - (Z - z_dome + 20) / taper, 0, 1)
    sd = np.maximum(Y - level, -side * (X - ph.mediastinum[0]))
    return (slice(None), slice(None), slice(None)), sd.astype(np.float32)


# ------------------------------------------------------------------------------ label map


def _union(shape, gr, prims_grow) -> np.ndarray:
    out = np.zeros(shape, bool)
    for prim, grow in prims_grow:
        f = _field(gr, prim, grow)
        if f is not None:
            sl, sd = f
            out[sl] |= sd <= grow
    return out


def label_map(ph: cp.CTPhantom, design: Design, gr: _Grid, clean: np.ndarray) -> np.ndarray:
    """TotalSegmentator-v2 ids on the grid (RAS order), from the geometry and, for the lungs, the
    aerated voxels of the noise-free render before the lung lesions (``clean``)."""
    shape = ph.shape
    X, Y, Z = gr.x[:, None, None], gr.y[None, :, None], gr.z[None, None, :]
    X2, Y2 = gr.x[:, None], gr.y[None, :]
    lab = np.zeros(shape, np.uint8)
    a_c, b_c, y_c = ph.cavity
    cav2 = _ellipse_sd(X2, Y2, 0, y_c, a_c, b_c) <= 0
    dome, top = _dome(ph, X2, Y2), _top(ph, X2, Y2)
    below = Z < dome[:, :, None]
    # abdomen
    lab[cav2[:, :, None] & below & _liver_side(ph, X2, Y2)[:, :, None]] = ID["liver"]
    stomach, spleen = _abdomen_prims(ph)
    for prim, name in ((spleen, "spleen"), (stomach, "stomach")):
        f = _below_dome_sd(ph, gr, prim)
        if f is not None:
            sl, sd = f
            lab[sl][sd <= 0] = ID[name]
    # lungs: the aerated voxels of the thoracic cavity between the domes and the apices, with their vessels
    lung_region = cav2[:, :, None] & ~below & (Z < top[:, :, None])
    vessels = _union(shape, gr, [(_Capsule(a, b, r0, r1), 0.0) for a, b, r0, r1 in ph.lung_vessels])
    fluid = np.zeros(shape, bool)
    for side, depth in ((1, design.effusion[0]), (-1, design.effusion[1])):
        if depth > 0:
            fluid |= _effusion_sd(ph, gr, side, depth, design.effusion[2])[1] <= 0
    lung = lung_region & ((clean < -400) | (vessels & ~fluid))
    B = np.asarray(ph.la[0])  # hilum level
    right = X >= ph.mediastinum[0]
    lower = Z < B[2] + 1.0 * (B[1] - Y)
    lobe = np.where(right, np.where(lower, ID["lung_lower_lobe_right"],
                                    np.where((Z < B[2] - 5) & (Y > B[1]), ID["lung_middle_lobe_right"],
                                             ID["lung_upper_lobe_right"])),
                    np.where(lower, ID["lung_lower_lobe_left"], ID["lung_upper_lobe_left"])).astype(np.uint8)
    lab[lung] = lobe[lung]
    tubes = ph.tubes
    eso = [(_Capsule(a, b, r0, r1), 0.0) for kind, a, b, r0, r1 in tubes if kind == "tissue"]
    lab[_union(shape, gr, eso) & (Z > ph.domes[1] - 15)] = ID["esophagus"]
    airways = [(_Capsule(a, b, r0, r1), 1.5) for kind, a, b, r0, r1 in tubes if kind == "air"]
    lab[_union(shape, gr, airways)] = ID["trachea"]
    if design.hernia:
        lab[_union(shape, gr, [(_prim(p), 0.0) for p in design.hernia])] = ID["stomach"]
    # paraspinal muscle, vertebrae, ribs, sternum
    y_v, r_v, period, phase, _, _ = ph.spine
    back = y_c - b_c - 12
    auto = (np.abs(X2) <= r_v + 8) & (Y2 >= back) & (Y2 <= y_v + 4)
    auto3 = np.broadcast_to(auto[:, :, None], shape)
    lab[auto3 & (X >= 0)] = ID["autochthon_right"]
    lab[auto3 & (X < 0)] = ID["autochthon_left"]
    vb = _ellipse_sd(X2, Y2, 0, y_v, r_v, 0.85 * r_v) <= 0
    y_can = y_v - 0.85 * r_v - 9
    rc = np.sqrt(np.square(X2) + np.square(Y2 - y_can))
    arch = (np.abs(rc - 9.5) <= 2.2) & (Y2 < y_can + 4)
    spin = (np.abs(X2) <= 3.5) & (Y2 >= y_can - 36) & (Y2 <= y_can - 10)
    bone = (vb | arch | spin)[:, :, None]
    j_d = math.floor((ph.domes[1] - phase) / period)
    level = np.clip(T10 + np.floor((gr.z - phase) / period).astype(int) - j_d, 26, 50).astype(np.uint8)
    lab[:] = np.where(bone, level[None, None, :], lab)
    _rib_labels(ph, gr, lab)
    ys = y_c + b_c + 6
    st = (_ellipse_sd(X2, Y2, 0, ys, 14, 6) <= 0)[:, :, None] & (Z >= ph.domes[0] - 10) & (Z <= ph.lung_top[0] - 30)
    lab[st] = ID["sternum"]
    # heart and vessels
    epi, rv, ra, la = cp.heart_primitives(ph)
    f = ph.epi_fat
    lab[_union(shape, gr, [(epi, f), (rv, 3.5 + f), (ra, 3.0), (la, 3.0)])] = ID["heart"]
    veins = [(kind, a, b, r0, r1) for kind, a, b, r0, r1 in tubes if kind == "vein"]
    lab[_union(shape, gr, [(_Capsule(a, b, r0, r1), 0.0) for kind, a, b, r0, r1 in tubes if kind == "blood"])
        & ~(lab == ID["heart"])] = ID["pulmonary_vein"]
    for (kind, a, b, r0, r1), name in zip(veins[:2], ("superior_vena_cava", "inferior_vena_cava")):
        lab[_union(shape, gr, [(_Capsule(a, b, r0, r1), 0.0)]) & (lab != ID["heart"])] = ID[name]
    A, ax = np.asarray(ph.annulus), np.asarray(ph.root_axis)
    aorta = [(_Capsule(a, b, r0, r1), 0.0) for kind, a, b, r0, r1 in tubes if kind == "aorta"]
    aorta += [(_Capsule(_t(A + ax * 4), _t(A + ax * 16), ph.annulus_r * 1.3, ph.annulus_r * 1.2), 0.0),
              (_Capsule(_t(A + ax * 10), _t(A + ax * 26), ph.annulus_r * 1.1, ph.annulus_r * 1.25), 0.0)]
    lab[_union(shape, gr, aorta)] = ID["aorta"]
    return lab


def _rib_labels(ph: cp.CTPhantom, gr: _Grid, lab: np.ndarray) -> None:
    """Ribs (numbered from the apex down, left/right by side) and costal cartilage, as
    :func:`ct_phantom._ribs` draws them."""
    band = cp.rib_band(ph, gr)
    if band is None:
        return
    ii, jj, kk, w, cart, right = band
    inside = kk <= 1
    period, phase = ph.ribs[0], ph.ribs[1]
    m_ref = round((ph.lung_top[0] - 10 - phase) / period)
    number = np.clip(1 + m_ref - np.round(w).astype(int), 1, 12)
    ids = np.where(cart, ID["costal_cartilages"], np.where(right, RIB_RIGHT, RIB_LEFT) + number).astype(np.uint8)
    cur = lab[ii, jj, :]
    lab[ii, jj, :] = np.where(inside, ids, cur)


# ------------------------------------------------------------------------------ rendering


def _render_clean(ph: cp.CTPhantom, design: Design, gr: _Grid) -> np.ndarray:
    """The noise-free volume (RAS order) before the lung lesions, calcium and metal."""
    vol = np.empty(ph.shape, np.float32)
    _torso(ph, gr, vol)
    stomach, spleen = _abdomen_prims(ph)
    _paint_sd(vol, gr, _below_dome_sd(ph, gr, spleen), ph.liver_hu * 0.9 if design.contrast else 48.0)
    f = _below_dome_sd(ph, gr, stomach)
    _paint_sd(vol, gr, f, 40.0)
    if f is not None:  # content (fluid) with an air cap over a level 1/3 down from the top
        sl, sd = f
        _paint_sd(vol, gr, (sl, sd + 3.0), 12.0)
        top = stomach[1][2] + stomach[2][2]
        Z = gr.z[None, None, sl[2]]
        _paint_sd(vol, gr, (sl, np.maximum(sd + 3.0, (top - 0.3 * stomach[2][2]) - Z)), AIR)
    for side, depth in ((1, design.effusion[0]), (-1, design.effusion[1])):
        if depth > 0:
            sl, sd = _effusion_sd(ph, gr, side, depth, design.effusion[2])
            _paint(vol, gr, None, 8.0, lung_only=True, field=(sl, sd))
    for a, b, r0, r1 in ph.lung_vessels:
        _paint(vol, gr, _Capsule(a, b, r0, r1), 0.75 * ph.rv_hu, lung_only=True)
    cp._mediastinum(ph, gr, vol)
    cp.airways_and_soft_tissue(ph, gr, vol)
    for p in design.hernia:  # wall, fluid, air above the level
        _paint(vol, gr, _prim(p), 40.0, grow=2.0)
    for p in design.hernia:
        _paint(vol, gr, _prim(p), 15.0)
    for p in design.hernia:
        fld = _field(gr, _prim(p), 0.0)
        if fld is not None:
            sl, sd = fld
            _paint_sd(vol, gr, (sl, np.maximum(sd + 1.0, design.hernia_level - gr.z[None, None, sl[2]])), AIR)
    for x, y, z, r in design.nodes:
        _paint(vol, gr, _Capsule((x, y, z - 0.3 * r), (x, y, z + 0.3 * r), r, r), 40.0)
    cp._spine(ph, gr, vol)
    cp._ribs(ph, gr, vol)
    if design.pericardial_mm > 0:
        epi, rv, _, _ = cp.heart_primitives(ph)
        t = design.pericardial_mm
        _paint(vol, gr, epi, 10.0, grow=ph.epi_fat + t)
        _paint(vol, gr, rv, 10.0, grow=3.5 + ph.epi_fat + t)
    cp._heart_static(ph, gr, vol)
    cp._lv_cycle(ph, gr, vol)
    return vol


def _paint_lesions(ph: cp.CTPhantom, design: Design, gr: _Grid, vol: np.ndarray) -> None:
    for les in design.lesions:
        for p, hu in les.paint:
            _paint(vol, gr, _prim(p), hu, lung_only=les.lung_only)
    cp._blobs(gr, ph.spacing, list(design.aortic) + list(design.coronary), out=vol)
    for p, hu in design.metal:
        _paint(vol, gr, _prim(p), hu)


def render(ph: cp.CTPhantom, design: Design, rng: np.random.Generator,
           clean: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU as whole numbers in [-1024, 3071], int16; label map uint8; affine), in the voxel order the
    affine describes. ``clean``: the (volume, label map) of :func:`_render_clean` on this grid, if made."""
    gr = _Grid(ph)
    if clean is None:
        vol = _render_clean(ph, design, gr)
        lab = label_map(ph, design, gr, vol)
    else:
        vol, lab = clean[0].copy(), clean[1]
    _paint_lesions(ph, design, gr, vol)
    vol = cp._psf_noise(ph, vol, rng)
    hu = np.clip(np.round(vol), -1024, 3071).astype(np.int16)
    return cp._to_output(ph, hu), cp._to_output(ph, lab), ph.affine()


def regions(ph: cp.CTPhantom, design: Design) -> dict[str, list[np.ndarray]]:
    """Per lesion kind, the boolean region of each lesion (output voxel order) its measurement reads."""
    gr = _Grid(ph)
    out: dict[str, list[np.ndarray]] = {}
    for les in design.lesions:
        prims = les.region if les.region is not None else tuple(p for p, _ in les.paint)
        m = _union(ph.shape, gr, [(_prim(p), 0.0) for p in prims])
        out.setdefault(les.kind, []).append(cp._to_output(ph, m))
        if les.kind == "mosaic_low":
            out.setdefault("mosaic_ref", []).append(les.ref_hu)
    for x, y, z, r in design.nodes:
        m = _union(ph.shape, gr, [(_Capsule((x, y, z - 0.3 * r), (x, y, z + 0.3 * r), r, r), 0.0)])
        out.setdefault("node", []).append(cp._to_output(ph, m))
    return out


# ------------------------------------------------------------------------------ measurement rules


def _mean3(hu: np.ndarray) -> np.ndarray:
    return ndimage.uniform_filter(hu.astype(np.float32), size=(3, 3, 1), mode="nearest")


def ctr(lab: np.ndarray, spacing) -> float:
    """Cardiothoracic ratio: widest left-right extent (axis 0) of the heart on an axial slice over the
    widest left-right extent of the lungs on any axial slice."""
    def width(m):
        best = 0
        for k in np.nonzero(m.any(axis=(0, 1)))[0]:
            i = np.nonzero(m[:, :, k].any(axis=1))[0]
            best = max(best, int(i[-1] - i[0] + 1))
        return best * float(spacing[0])
    thorax = width(np.isin(lab, LUNG_IDS))
    return width(lab == ID["heart"]) / thorax if thorax else float("nan")


def laa_fraction(hu: np.ndarray, lab: np.ndarray, threshold: float = LAA_HU) -> float:
    lung = np.isin(lab, LUNG_IDS)
    return float(np.mean(hu[lung] < threshold)) if lung.any() else float("nan")


def calcium_threshold(hu: np.ndarray, lab: np.ndarray) -> float:
    """130 HU without contrast; aorta median + 150 HU when the aorta is enhanced (median >= 100 HU)."""
    blood = float(np.median(hu[lab == ID["aorta"]]))
    return CALC_HU if blood < 100 else blood + 150.0


def calcified_foci(hu: np.ndarray, roi: np.ndarray, threshold: float) -> int:
    """Connected foci (26-connected, at least 2 voxels) of HU >= threshold inside ``roi``; a focus
    reaching METAL_HU is metal (a pacemaker lead), not calcium."""
    if not roi.any():
        return 0
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(roi))
    hu, roi = hu[box], roi[box]
    lab, n = ndimage.label((hu >= threshold) & roi, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return 0
    idx = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones(hu.shape, np.int32), lab, idx)
    peak = ndimage.maximum(hu, lab, idx)
    return int(np.sum((sizes >= 2) & (peak < METAL_HU)))


def fluid_voxels(hu: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Unlabelled voxels of fluid density (3x3 in-plane mean in FLUID_HU), opened by a 3x3 in-plane square."""
    m = _mean3(hu)
    f = (m >= FLUID_HU[0]) & (m <= FLUID_HU[1]) & (lab == 0)
    return ndimage.binary_opening(f, structure=np.ones((3, 3, 1), bool))


def within(target: np.ndarray, query: np.ndarray, mm: float, spacing) -> np.ndarray:
    """The ``query`` voxels within ``mm`` (Euclidean, voxel centres) of a ``target`` voxel."""
    from scipy.spatial import cKDTree

    out = np.zeros(query.shape, bool)
    if not query.any() or not target.any():
        return out
    surface = target & ~ndimage.binary_erosion(target)  # the nearest target voxel of an outside one is on it
    sp = np.asarray(spacing, float)
    tree = cKDTree(np.argwhere(surface) * sp)
    qi = np.argwhere(query & ~target)
    d, _ = tree.query(qi * sp, distance_upper_bound=mm + 1e-6)
    hit = qi[np.isfinite(d)]
    out[tuple(hit.T)] = True
    out |= query & target
    return out


def effusions_ml(hu: np.ndarray, lab: np.ndarray, spacing) -> tuple[float, float]:
    """(pericardial, pleural) fluid volumes in mL: fluid voxels within PERI_SHELL_MM of the heart, and
    the other fluid collections (26-connected) that come within PLEURAL_NEAR_LUNG_MM of the lungs."""
    fl = fluid_voxels(hu, lab)
    vox = float(np.prod(spacing)) / 1000
    peri = within(lab == ID["heart"], fl, PERI_SHELL_MM, spacing)
    rest = fl & ~peri
    near = within(np.isin(lab, LUNG_IDS), rest, PLEURAL_NEAR_LUNG_MM, spacing)
    comp, n = ndimage.label(rest, structure=np.ones((3, 3, 3), bool))
    keep = np.unique(comp[near])
    pleural = np.isin(comp, keep[keep > 0]) if n else rest
    return float(peri.sum()) * vox, float(pleural.sum()) * vox


def hernia_ml(lab: np.ndarray, spacing) -> float:
    """Stomach volume above the top slice of the liver (mL)."""
    liver = np.nonzero((lab == ID["liver"]).any(axis=(0, 1)))[0]
    if liver.size == 0:
        return 0.0
    return float((lab[:, :, liver[-1] + 1:] == ID["stomach"]).sum()) * float(np.prod(spacing)) / 1000


def metal_mm3(hu: np.ndarray, spacing) -> float:
    return float((hu >= METAL_HU).sum()) * float(np.prod(spacing))


def _slice_diameter(m: np.ndarray, spacing) -> float:
    if not m.any():
        return 0.0
    area = float(m.sum(axis=(0, 1)).max()) * spacing[0] * spacing[1]
    return 2 * math.sqrt(area / math.pi)


def measure(hu: np.ndarray, lab: np.ndarray, spacing, reg: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Every quantity of :data:`RULES` from the saved volume (HU), its label map and the lesion regions."""
    spacing = tuple(float(s) for s in spacing)
    vox = float(np.prod(spacing)) / 1000  # mL
    q: dict[str, float] = {}
    q["metal_mm3"] = metal_mm3(hu, spacing)
    thr = calcium_threshold(hu, lab)
    q["calcium_threshold"] = thr
    q["aortic_foci"] = calcified_foci(hu, lab == ID["aorta"], thr)
    q["coronary_foci"] = calcified_foci(hu, lab == ID["heart"], thr)
    q["ctr"] = ctr(lab, spacing)
    q["pericardial_ml"], q["pleural_ml"] = effusions_ml(hu, lab, spacing)
    q["hernia_ml"] = hernia_ml(lab, spacing)
    q["laa950"] = laa_fraction(hu, lab)

    def vol(kind, cond):
        return sum(float((r & cond).sum()) * vox for r in reg.get(kind, []))
    q["atelectasis_ml"] = vol("atelectasis", hu > -300)
    q["nodule_mm"] = max([2 * math.pow(3 * float((r & (hu > -300)).sum()) * vox * 1000 / (4 * math.pi), 1 / 3)
                          for r in reg.get("nodule", [])], default=0.0)
    q["ggo_ml"] = vol("ggo", (hu > -800) & (hu < -250))
    q["consolidation_ml"] = vol("consolidation", hu > -150)
    q["fibrosis_ml"] = vol("fibrosis", hu > -500)
    q["peribronchial_ml"] = vol("peribronchial", hu > -500)
    q["bronchiectasis_ml"] = vol("bronchiectasis", hu < -900)
    q["septal_ml"] = vol("septal", hu > -700)
    q["mosaic_ml"] = 0.0
    if reg.get("mosaic_low"):
        m3 = _mean3(hu)
        q["mosaic_ml"] = sum(float((r & (m3 < ref)).sum()) * vox
                             for r, ref in zip(reg["mosaic_low"], reg["mosaic_ref"]))
    q["node_mm"] = max([_slice_diameter(r & (hu > -5), spacing) for r in reg.get("node", [])], default=0.0)
    return q


def labels_from(q: dict[str, float]) -> dict[str, int]:
    return {label: int(q[key] >= cut) for label, (key, cut) in RULES.items()}


# ------------------------------------------------------------------------------ sampling


@dataclass(frozen=True)
class Recon:
    """One reconstruction of a scan: matrix, spacing, kernel (in-plane PSF) and noise."""

    kernel: str
    n: int
    spacing: tuple[float, float, float]
    psf_mm: float
    noise_hu: float


def anatomy(rng: np.random.Generator) -> cp.CTPhantom:
    """A patient's anatomy (the chest phantom without its valve and coronary calcium)."""
    ph = cp.sample(rng, "chest")
    return dataclasses.replace(ph, calcium=(), coronary=(), calcium_design=0.0,
                               muscle_hu=float(rng.uniform(48, 58)))


def _contrast(ph: cp.CTPhantom, contrast: bool, rng: np.random.Generator) -> cp.CTPhantom:
    if contrast:
        return ph
    blood = float(rng.uniform(35, 50))
    return dataclasses.replace(ph, blood_hu=blood, rv_hu=blood + float(rng.uniform(-4, 4)),
                               myo_hu=float(rng.uniform(38, 52)), liver_hu=float(rng.uniform(50, 65)))


def _heart_width(ph: cp.CTPhantom) -> float:
    lo, hi = _heart_box(ph, ph.epi_fat + 2)
    sp = 1.5
    n = np.ceil((hi - lo) / sp).astype(int) + 1
    g = dataclasses.replace(ph, spacing=(sp, sp, sp), shape=tuple(int(v) for v in n), fov_center=_t((lo + hi) / 2),
                            orientation="RAS")
    gr = _Grid(g)
    epi, rv, ra, la = cp.heart_primitives(g)
    f = g.epi_fat
    m = _union(g.shape, gr, [(epi, f), (rv, 3.5 + f), (ra, 3.0), (la, 3.0)])
    best = 0
    for k in range(m.shape[2]):
        i = np.nonzero(m[:, :, k].any(axis=1))[0]
        if i.size:
            best = max(best, int(i[-1] - i[0] + 1))
    return best * sp


def recons(rng: np.random.Generator, count: int) -> list[Recon]:
    """``count`` reconstructions: the first a standard kernel, then sharp (lung) and soft kernels."""
    out = []
    z = float(rng.choice([3.0, 4.0, 5.0]))
    for r in range(count):
        kind = ("standard", "sharp", "soft")[r % 3]
        n = int(rng.choice([128, 144, 160]))
        if kind == "standard":
            out.append(Recon(kind, n, (0.0, 0.0, z), float(rng.uniform(1.0, 1.5)), float(rng.uniform(8, 13))))
        elif kind == "sharp":
            out.append(Recon(kind, n, (0.0, 0.0, float(rng.choice([z, 3.0]))), float(rng.uniform(0.4, 0.7)),
                             float(rng.uniform(16, 24))))
        else:
            out.append(Recon(kind, n, (0.0, 0.0, float(rng.choice([4.0, 5.0]))), float(rng.uniform(1.6, 2.2)),
                             float(rng.uniform(5, 9))))
    return out


def on_grid(ph: cp.CTPhantom, rec: Recon, origin, centre_jitter) -> cp.CTPhantom:
    """The phantom reconstructed on ``rec``'s grid: the whole body in-plane, from below the left dome to
    above the apices."""
    a_b, b_b, body_y = ph.body
    extent = 2 * max(a_b, b_b) + 16
    sx = round(extent / rec.n, 4)
    z0, z1 = ph.domes[1] - 35, ph.lung_top[0] + 12
    sz = rec.spacing[2]
    nz = int(math.ceil((z1 - z0) / sz))
    c = (float(centre_jitter[0]), body_y + float(centre_jitter[1]), 0.5 * (z0 + z1))
    return dataclasses.replace(ph, spacing=(sx, sx, sz), shape=(rec.n, rec.n, nz), fov_center=c, origin=_t(origin),
                               psf_mm=rec.psf_mm, noise_hu=rec.noise_hu)


def _tube_frame(a, b):
    d = np.asarray(b, float) - np.asarray(a, float)
    d /= pmath.norm(d)
    u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
    u /= pmath.norm(u)
    return d, u, np.cross(d, u)


def design_base(ph: cp.CTPhantom, want: dict[str, bool], rng: np.random.Generator) -> tuple[cp.CTPhantom, Design]:
    """The non-lung findings (heart size, pericardial fluid, effusions, hernia, calcium, metal, nodes)
    and the phantom refitted to them."""
    u = rng.uniform
    rim = float(u(6, 15)) if want["Pericardial effusion"] else 0.0
    thorax = 1.7 * ph.cavity[0]  # the lungs' widest extent is ~0.85 of the cavity's (calibrated)
    target = float(u(0.55, 0.66)) if want["Cardiomegaly"] else float(u(0.36, 0.45))
    k = float(np.clip(target * thorax / _heart_width(ph), 0.7, 1.4))
    ph = scale_heart(ph, k, rim)
    # pleural effusion
    er = el = 0.0
    if want["Pleural effusion"]:
        r = rng.random()
        er = float(u(30, 65)) if r < 0.8 else 0.0
        el = float(u(30, 65)) if r >= 0.3 else 0.0
    taper = float(u(70, 140))
    # hiatal hernia through the hiatus, above the right dome
    tubes = ph.tubes
    eso = next(t for t in tubes if t[0] == "tissue")
    x_e, y_e = eso[1][0], eso[1][1]
    hernia, level = (), 0.0
    if want["Hiatal hernia"]:
        r_h = float(u(14, 22))
        top = ph.domes[0] + float(u(12, 35))
        lo = (x_e - 14, y_e + 10, ph.domes[1] - 25)
        hi = (x_e - 6, y_e + 14, top)
        hernia = (("cap", lo, hi, r_h, r_h * 0.9),)
        level = top - float(u(0.3, 0.6)) * r_h
    # aortic plaques on the arch and descending aorta (inside the scanned range)
    aortic = []
    aorta_tubes = [t for t in tubes if t[0] == "aorta"]
    arch_desc = [aorta_tubes[0]] + aorta_tubes[2:]
    if want["Arterial wall calcification"]:
        for _ in range(int(rng.integers(5, 13))):
            _, a, b, r0, r1 = arch_desc[int(rng.integers(len(arch_desc)))]
            for _try in range(10):
                t = float(u(0.05, 0.95))
                p = np.asarray(a) + t * (np.asarray(b) - np.asarray(a))
                if ph.domes[1] - 10 < p[2] < ph.lung_top[0]:
                    break
            d, e1, e2 = _tube_frame(a, b)
            th = float(u(0, 2 * np.pi))
            p = p + (r0 + t * (r1 - r0) - 0.5) * (np.cos(th) * e1 + np.sin(th) * e2)
            aortic.append((*_t(p), float(u(2.0, 3.2)), float(u(600, 1000))))
    # coronary plaques in the epicardial fat, in the AV groove and along the LAD
    coronary = []
    if want["Coronary artery wall calcification"]:
        d, e2 = np.asarray(ph.axis), np.asarray(ph.septal)
        e3 = np.cross(d, e2)
        L = (1 + ph.trunc) * ph.c_ed
        r_epi = ph.r_ed + ph.wall
        for _ in range(int(rng.integers(3, 9))):
            t = float(u(0.08, 0.3)) if rng.random() < 0.5 else float(u(0.25, 0.6))
            h = (1 - t) * L
            rr = r_epi * math.sqrt(max(0.05, 1 - ((h - ph.c_ed) / (ph.c_ed + ph.wall_apex)) ** 2))
            th = float(u(0, 2 * np.pi))
            groove = np.cos(th) * e2 + np.sin(th) * e3
            p = np.asarray(ph.base) + d * t * L + groove * (rr + 0.5 * ph.epi_fat)
            coronary.append((*_t(p), float(u(1.8, 2.8)), float(u(550, 950))))
    # medical material
    metal, metal_kind = [], ""
    if want["Medical material"]:
        a_b, b_b, body_y = ph.body
        metal_kind = str(rng.choice(["pacemaker", "port", "sternotomy"], p=[0.4, 0.3, 0.3]))
        z_hi = ph.lung_top[0] - 25
        side = -1 if metal_kind == "pacemaker" else 1
        x = side * 0.45 * a_b
        y = body_y + b_b * math.sqrt(1 - (x / a_b) ** 2) - 0.5 * ph.fat_mm - 3
        svc = next(t for t in tubes if t[0] == "vein")
        if metal_kind == "pacemaker":
            gen = (x, y - 4, z_hi)
            metal += [(("ell", gen, (20.0, 5.0, 15.0)), 3000.0),
                      (("cap", gen, svc[2], 1.6, 1.6), 2500.0), (("cap", svc[2], svc[1], 1.6, 1.6), 2500.0),
                      (("cap", svc[1], ph.rv[0], 1.6, 1.6), 2500.0)]
        elif metal_kind == "port":
            gen = (x, y - 6, z_hi)
            metal += [(("ell", gen, (13.0, 6.0, 13.0)), 2500.0), (("cap", gen, svc[2], 1.5, 1.5), 250.0)]
        else:
            a_c, b_c, y_c = ph.cavity
            ys = y_c + b_c + 6
            for zz in np.linspace(ph.domes[0], ph.lung_top[0] - 40, int(rng.integers(4, 7))):
                metal.append((("cap", (-16.0, ys, float(zz)), (16.0, ys, float(zz)), 1.4, 1.4), 4000.0))
    # lymph nodes: normal ones in everybody, enlarged ones at some stations
    air = [t for t in tubes if t[0] == "air"]
    x_m, y_tr, z_car = air[0][2][0], air[0][2][1], air[0][2][2]
    r_tr = air[0][3]
    end_r, end_l = np.asarray(air[1][2]), np.asarray(air[2][2])
    stations = {"right paratracheal": lambda r: (x_m + r_tr + 6 + r, y_tr + 2, z_car + 20),
                "subcarinal": lambda r: (x_m, y_tr - 4, z_car - 14 - r),
                "aortopulmonary window": lambda r: (x_m - r_tr - 8 - r, y_tr + 6, z_car - 4),
                "right hilar": lambda r: _t(end_r + (8 + r, -6, -14)),
                "left hilar": lambda r: _t(end_l + (-8 - r, -6, -14))}
    names = list(stations)
    enlarged = []
    if want["Lymphadenopathy"]:
        enlarged = list(rng.choice(names, size=int(rng.integers(2, 5)), replace=False))
    nodes = []
    for name in names:
        if name in enlarged:
            nodes.append((*stations[name](r := float(u(10, 15))), r))
        elif rng.random() < 0.5:
            nodes.append((*stations[name](r := float(u(2.0, 3.5))), r))
    return ph, Design(contrast=False, heart_scale=k, pericardial_mm=rim, effusion=(er, el, taper), hernia=hernia,
                      hernia_level=level, aortic=tuple(aortic), coronary=tuple(coronary), metal=tuple(metal),
                      metal_kind=metal_kind, nodes=tuple(nodes), node_stations=tuple(enlarged),
                      lobes={"Pleural effusion": ("right" if er and not el else "left" if el and not er else
                                                  "bilateral")})


LOBE_WORDS = {10: "left upper lobe", 11: "left lower lobe", 12: "right upper lobe", 13: "right middle lobe",
              14: "right lower lobe"}


def design_lungs(ph: cp.CTPhantom, design: Design, want: dict[str, bool], rng: np.random.Generator,
                 lab: np.ndarray) -> Design:
    """The lung lesions, placed with the lung label map of the first reconstruction (RAS order)."""
    u = rng.uniform
    gr = _Grid(ph)
    sp = ph.spacing
    lung = np.isin(lab, LUNG_IDS)
    # depth inside the lungs (mm, a lower bound: chessboard voxel steps times the smallest spacing)
    dist = ndimage.distance_transform_cdt(lung, metric="chessboard").astype(np.float32) * float(min(sp))
    lung_ml = float(lung.sum()) * float(np.prod(sp)) / 1000
    lesions: list[Lesion] = []
    lobes: dict[str, str] = dict(design.lobes)

    cache: dict[str, np.ndarray] = {}

    def pick(cond, jitter=True):
        if isinstance(cond, str):  # a named condition, its voxel list computed once
            if cond not in cache:
                cache[cond] = np.flatnonzero(named[cond]())
            idx = cache[cond]
        else:
            idx = np.flatnonzero(cond)
        if idx.size == 0:
            idx = np.flatnonzero(lung)
        i, j, k = np.unravel_index(int(idx[int(rng.integers(idx.size))]), lung.shape)
        p = np.array([gr.x[i], gr.y[j], gr.z[k]], float)
        if jitter:
            p += rng.uniform(-0.5, 0.5, 3) * np.asarray(sp)
        return p, int(lab[i, j, k])

    def lobe_word(ids):
        return ", ".join(dict.fromkeys(LOBE_WORDS.get(i, "lung") for i in ids))

    upper = np.isin(lab, (10, 12))
    lower = np.isin(lab, (11, 14))
    named = {"upper3": lambda: upper & (dist >= 3), "lung3": lambda: dist >= 3, "lung6": lambda: dist >= 6,
             "lung10": lambda: dist >= 10, "rim_upper": lambda: (dist >= 2) & (dist <= 8) & upper,
             "rim": lambda: (dist >= 2) & (dist <= 8), "septal_lower": lambda: (dist >= 1) & (dist <= 15) & lower,
             "septal": lambda: (dist >= 1) & (dist <= 15)}
    lung_hu = ph.lung_hu
    if want["Emphysema"]:
        goal = float(u(0.10, 0.28)) * lung_ml * 1.7
        total, paints = 0.0, []
        while total < goal and len(paints) < 300:
            p, _ = pick("upper3" if rng.random() < 0.8 else "lung3")
            r = float(u(6, 14))
            paints.append((_sphere(p, r), float(u(-990, -972))))
            total += 4 / 3 * np.pi * math.pow(r, 3) / 1000
        lesions.append(Lesion("emphysema", tuple(paints)))
    if want["Mosaic attenuation pattern"]:
        low = max(lung_hu - 110, -930.0)
        for _ in range(int(rng.integers(12, 23))):
            p, _ = pick("lung6")
            lesions.append(Lesion("mosaic_low", ((_sphere(p, float(u(14, 24))), low),), ref_hu=low + 30))
            p, _ = pick("lung6")
            lesions.append(Lesion("mosaic_high", ((_sphere(p, float(u(14, 24))), lung_hu + 160),)))
    if want["Lung opacity"]:
        ids = []
        for _ in range(int(rng.integers(1, 4))):
            p, lid = pick("lung6")
            ids.append(lid)
            lesions.append(Lesion("ggo", ((("ell", _t(p), _t(u(20, 40, 3))), float(u(-650, -450))),)))
        lobes["Lung opacity"] = lobe_word(ids)
    if want["Consolidation"]:
        ids = []
        for _ in range(int(rng.integers(1, 3))):
            p, lid = pick("lung10")
            ids.append(lid)
            semi = u(14, 28, 3)
            if rng.random() < 0.7:  # ground-glass halo
                lesions.append(Lesion("ggo", ((("ell", _t(p), _t(semi * 1.4)), float(u(-650, -500))),)))
            lesions.append(Lesion("consolidation", ((("ell", _t(p), _t(semi)), float(u(30, 45))),)))
            d = _tube_frame(p, p + rng.normal(0, 1, 3))[0]
            lesions.append(Lesion("bronchogram", ((("cap", _t(p - d * semi.min() * 0.7), _t(p + d * semi.min() * 0.7),
                                                    1.6, 1.2), -950.0),), lung_only=False))
        lobes["Consolidation"] = lobe_word(ids)
    if want["Atelectasis"] or rng.random() < 0.3:
        big = want["Atelectasis"]
        ids = []
        for _ in range(int(rng.integers(1, 3)) if big else 1):
            ys = gr.y[None, :, None]
            cond = lower & (dist <= 10) & (ys < np.percentile(gr.y[np.nonzero(lower.any(axis=(0, 2)))[0]], 30))
            p, lid = pick(cond)
            ids.append(lid)
            semi = (u(30, 50), u(8, 14), u(20, 30)) if big else (u(6, 9), 2.0, u(5, 7))
            lesions.append(Lesion("atelectasis", ((("ell", _t(p), _t(semi)), float(u(20, 40))),)))
        if big:
            lobes["Atelectasis"] = lobe_word(ids)
    if want["Lung nodule"]:
        ids, sizes = [], []
        for _ in range(int(rng.integers(1, 5))):
            r = float(u(5, 12))
            p, lid = pick(dist >= r + 3)
            ids.append(lid)
            sizes.append(2 * r)
            lesions.append(Lesion("nodule", ((_sphere(p, r), float(u(20, 45))),)))
        lobes["Lung nodule"] = lobe_word(ids)
    elif rng.random() < 0.35:
        p, _ = pick(dist >= 4)
        lesions.append(Lesion("nodule", ((_sphere(p, float(u(1.0, 1.5))), 30.0),)))
    hil = np.asarray(ph.la[0])
    if want["Pulmonary fibrotic sequela"] or rng.random() < 0.25:
        big = want["Pulmonary fibrotic sequela"]
        paints, ids = [], []
        for _ in range(int(rng.integers(12, 25)) if big else 1):
            p, lid = pick("rim_upper" if rng.random() < 0.6 else "rim")
            ids.append(lid)
            d = _tube_frame(p, hil + rng.normal(0, 25, 3))[0]
            ln = float(u(25, 50)) if big else 8.0
            r = float(u(2.5, 4.0)) if big else 1.2
            paints.append((("cap", _t(p), _t(p + d * ln), r, r * 0.8), float(u(0, 30))))
        lesions.append(Lesion("fibrosis", tuple(paints)))
        if big:
            lobes["Pulmonary fibrotic sequela"] = lobe_word(ids)
    # bronchi beside the lung arteries (the vessel tree stands in for the bronchial tree)
    segs = [s for s in ph.lung_vessels if s[2] >= 2.0]

    def airway_sites(n, cond):
        out, tries = [], 0
        while len(out) < n and tries < 400:
            tries += 1
            a, b, r0, r1 = segs[int(rng.integers(len(segs)))]
            mid = 0.5 * (np.asarray(a) + np.asarray(b))
            ijk = [int(np.clip(np.searchsorted(v, c), 0, len(v) - 1)) for v, c in zip((gr.x, gr.y, gr.z), mid)]
            if cond[tuple(ijk)] and dist[tuple(ijk)] >= 6:
                d, e1, _ = _tube_frame(a, b)
                off = e1 * (r0 + 5.0)
                out.append((np.asarray(a) + off, np.asarray(b) + off, r0, int(lab[tuple(ijk)])))
        return out
    if want["Peribronchial thickening"]:
        for a, b, r0, _ in airway_sites(int(rng.integers(8, 16)), lung):
            rb, w = 0.7 * r0, float(u(2.5, 4.0))
            lesions.append(Lesion("peribronchial", ((("cap", _t(a), _t(b), rb + w, rb + w), 35.0),)))
            lesions.append(Lesion("lumen", ((("cap", _t(a), _t(b), rb, rb), AIR),), lung_only=False))
    if want["Bronchiectasis"]:
        ids = []
        want_n = int(rng.integers(4, 10))
        sites = airway_sites(want_n, lower)
        sites += airway_sites(want_n - len(sites), lung)  # too few in the lower lobes: elsewhere
        for a, b, r0, lid in sites:
            ids.append(lid)
            rb = float(u(5, 9))
            lesions.append(Lesion("bronchiectasis_wall", ((("cap", _t(a), _t(b), rb + 2.5, rb + 2.5), 40.0),)))
            lesions.append(Lesion("bronchiectasis", ((("cap", _t(a), _t(b), rb, rb), AIR),), lung_only=False))
        lobes["Bronchiectasis"] = lobe_word(ids) if ids else "lower lobes"
    if want["Interlobular septal thickening"]:
        paints, region = [], []
        for _ in range(int(rng.integers(90, 180))):
            p, _ = pick("septal_lower" if rng.random() < 0.7 else "septal")
            d = _tube_frame(p, p + rng.normal(0, 1, 3))[0]
            ln, r = float(u(8, 15)), float(u(1.4, 2.0))
            paints.append((("cap", _t(p), _t(p + d * ln), r, r), 60.0))
            region.append(("cap", _t(p), _t(p + d * ln), r + 1.0, r + 1.0))
        lesions.append(Lesion("septal", tuple(paints), region=tuple(region)))
    return dataclasses.replace(design, lesions=tuple(lesions), lobes=lobes)


# ------------------------------------------------------------------------------ one scan

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


# ------------------------------------------------------------------------------ report

Sentence = tuple[str, frozenset]  # text, its true organs (organ_text's organ names and "whole_image")
_W = "whole_image"


def _s(text: str, *organs: str) -> Sentence:
    return text, frozenset(organs)


def _lobe(label: str, design: Design) -> str:
    """Where a lung finding lies: its planted lobes, or for one measured but not planted (the ground-glass
    halo of a consolidation is a lung opacity) the lobes of what made it, else the lungs."""
    source = {"Lung opacity": "Consolidation"}.get(label, "")
    return design.lobes.get(label) or design.lobes.get(source) or "lungs"


def _positive(label: str, q: dict, design: Design, rng: np.random.Generator) -> list[Sentence]:
    c = lambda *opts: opts[int(rng.integers(len(opts)))]  # noqa: E731
    lobe = _lobe(label, design)
    if label == "Medical material":
        return [{"pacemaker": _s("A pacemaker generator is seen in the left pectoral region, with its lead extending "
                                 "into the right heart chambers.", "heart", _W),
                 "port": _s(c("A port catheter is present in the right anterior chest wall.",
                              "A chemoport is seen in the right chest wall."), _W),
                 "sternotomy": _s(c("Sternotomy wires are noted.", "Median sternotomy wires are present."), _W)
                 }.get(design.metal_kind, _s("Metallic medical material is seen.", _W))]
    if label == "Arterial wall calcification":
        return [_s(c("Atherosclerotic calcified plaques are observed in the thoracic aorta.",
                     "Calcific atheromatous plaques are seen in the wall of the aortic arch and descending aorta.",
                     "Arterial wall calcification is present in the thoracic aorta."), "aorta")]
    if label == "Coronary artery wall calcification":
        return [_s(c("Calcified plaques are seen in the coronary arteries.",
                     "Coronary artery wall calcifications are noted.",
                     "There are calcific plaques along the coronary arteries."), "heart")]
    if label == "Cardiomegaly":
        return [_s(c(f"The heart is enlarged, with a cardiothoracic ratio of about {q['ctr']:.2f}.",
                     "Cardiomegaly is present.", "Heart size is increased."), "heart")]
    if label == "Pericardial effusion":
        mm = design.pericardial_mm
        return [_s(c(f"Pericardial effusion reaching {mm:.0f} mm in thickness is observed.",
                     "There is fluid in the pericardial space.", "Pericardial effusion is present."), "heart")]
    if label == "Hiatal hernia":
        return [c(_s("A hiatal hernia is present.", "esophagus"),
                  _s("Sliding hiatal hernia with part of the stomach above the diaphragm.", "esophagus", "stomach"),
                  _s("Hiatal hernia is observed.", "esophagus"))]
    if label == "Lymphadenopathy":
        st = " and ".join(design.node_stations) or "mediastinal"
        return [_s(c(f"Enlarged lymph nodes up to {q['node_mm']:.0f} mm in short axis are seen in the {st} stations.",
                     "Mediastinal lymphadenopathy is present.",
                     f"Lymph nodes of pathological size in the {st} region."), _W)]
    if label == "Emphysema":
        return [_s(c("Centrilobular emphysematous changes are seen, predominantly in the upper lobes.",
                     "Emphysema is noted in both lungs.", "Paraseptal and centrilobular emphysema in both lungs."),
                   "lung")]
    if label == "Atelectasis":
        return [_s(c(f"Subsegmental atelectasis in the {lobe}.", f"Linear atelectasis is seen in the {lobe}.",
                     f"Passive atelectasis in the posterior {lobe}.", f"Atelectatic changes are seen in the {lobe}."),
                   "lung")]
    if label == "Lung nodule":
        return [_s(c(f"A {q['nodule_mm']:.0f} mm solid nodule is seen in the {lobe}.",
                     f"Nodules up to {q['nodule_mm']:.0f} mm in diameter in the {lobe}.",
                     f"Pulmonary nodule measuring {q['nodule_mm']:.0f} mm in the {lobe}.",
                     f"A lung nodule of {q['nodule_mm']:.0f} mm is present in the {lobe}."), "lung")]
    if label == "Lung opacity":
        return [_s(c(f"Ground-glass opacities are seen in the {lobe}.", f"Patchy opacities in the {lobe}.",
                     f"Areas of ground glass density in the {lobe}."), "lung")]
    if label == "Pulmonary fibrotic sequela":
        return [_s(c(f"Fibrotic sequelae in the {lobe}.", f"Linear fibrotic bands are seen in the {lobe}.",
                     f"Parenchymal fibrotic changes in the {lobe}."), "lung")]
    if label == "Pleural effusion":
        side = design.lobes.get(label, "bilateral")
        text = {"right": c("Pleural effusion is seen in the right hemithorax.", "Right pleural effusion is present."),
                "left": c("Pleural effusion is seen in the left hemithorax.", "Left pleural effusion is present."),
                "bilateral": c("Bilateral pleural effusion is present.",
                               "Pleural effusion is seen in both hemithoraces.")}[side]
        return [_s(text, "lung")]
    if label == "Mosaic attenuation pattern":
        return [_s(c("Mosaic attenuation pattern in both lungs.",
                     "Areas of mosaic attenuation are seen in the lung parenchyma."), "lung")]
    if label == "Peribronchial thickening":
        return [_s(c("Peribronchial thickening is observed.", "Bronchial wall thickening is noted in both lungs."),
                   "lung")]
    if label == "Consolidation":
        return [_s(c(f"Consolidation with air bronchograms in the {lobe}.",
                     f"Consolidation is seen in the {lobe}.", f"Consolidated area in the {lobe}."), "lung")]
    if label == "Bronchiectasis":
        return [_s(c(f"Cylindrical bronchiectasis in the {lobe}.", f"Bronchiectatic changes in the {lobe}."), "lung")]
    if label == "Interlobular septal thickening":
        return [_s(c("Interlobular septal thickening is seen, mostly in the lower lobes.",
                     "Smooth interlobular septal thickening in both lungs."), "lung")]
    raise KeyError(label)


NEGATIONS: dict[str, tuple[Sentence, ...]] = {  # CT-RATE states absences both ways: "No X." and "X was not observed."
    # twin v3: an absent device is not stated (radiologists rarely do); v2's "Medical material was not
    # observed in the chest." named the label only in denials, so its prompt matched the denials
    "Medical material": (),
    "Arterial wall calcification": (_s("No calcified plaque was seen in the thoracic aorta.", "aorta"),
                                    _s("The thoracic aorta is of normal calibre without wall calcification.", "aorta"),
                                    _s("Arterial wall calcification was not observed in the thoracic aorta.", "aorta")),
    "Coronary artery wall calcification": (_s("No coronary artery calcification was detected.", "heart"),
                                           _s("Coronary artery wall calcification was not detected.", "heart")),
    "Cardiomegaly": (_s("Heart size is normal.", "heart"),
                     _s("Heart contour and size are within normal limits.", "heart"),
                     _s("Cardiomegaly is not present.", "heart")),
    "Pericardial effusion": (_s("No pericardial effusion was observed.", "heart"),
                             _s("No pericardial thickening or effusion.", "heart"),
                             _s("Pericardial effusion-thickening was not observed.", "heart")),
    "Hiatal hernia": (_s("No hiatal hernia.", "esophagus"),
                      _s("The esophagus is of normal calibre and there is no hiatal hernia.", "esophagus"),
                      _s("Hiatal hernia was not detected.", "esophagus")),
    "Lymphadenopathy": (_s("No mediastinal or hilar lymphadenopathy.", _W),
                        _s("No lymph nodes of pathological size were detected in the mediastinum.", _W),
                        _s("Lymph nodes in pathological size were not detected in the mediastinum.", _W)),
    "Emphysema": (_s("No emphysema.", "lung"), _s("There are no emphysematous changes in the lungs.", "lung"),
                  _s("Emphysema was not observed.", "lung")),
    "Atelectasis": (_s("No atelectasis was observed.", "lung"), _s("Atelectasis was not detected in the lungs.", "lung")),
    "Lung nodule": (_s("No pulmonary nodule was detected.", "lung"),
                    _s("No mass or nodule was seen in the lung parenchyma.", "lung"),
                    _s("A lung nodule was not detected.", "lung")),
    "Lung opacity": (_s("No ground-glass opacity.", "lung"), _s("Lung opacity was not observed.", "lung")),
    "Pulmonary fibrotic sequela": (_s("No fibrotic changes in the lungs.", "lung"),
                                   _s("Pulmonary fibrotic sequelae were not observed.", "lung")),
    "Pleural effusion": (_s("No pleural effusion was observed.", "lung"),
                         _s("No pleural thickening or effusion.", "lung"),
                         _s("Pleural effusion-thickening was not detected.", "lung")),
    "Mosaic attenuation pattern": (_s("No mosaic attenuation pattern.", "lung"),
                                   _s("Mosaic attenuation pattern was not observed.", "lung")),
    "Peribronchial thickening": (_s("No bronchial wall thickening.", "lung"),
                                 _s("Peribronchial thickening was not observed.", "lung")),
    "Consolidation": (_s("No consolidation.", "lung"),
                      _s("No infiltration or consolidation was seen in the lung parenchyma.", "lung"),
                      _s("Consolidation was not detected in the lung parenchyma.", "lung")),
    "Bronchiectasis": (_s("No bronchiectasis.", "lung"), _s("Bronchiectasis was not observed.", "lung")),
    "Interlobular septal thickening": (_s("No interlobular septal thickening.", "lung"),
                                       _s("Interlobular septal thickening is not seen.", "lung")),
}
NORMALS = (
    (_s("Trachea and both main bronchi are open.", "trachea"), _s("Trachea and main bronchi are patent.", "trachea")),
    (_s("Thoracic aorta diameter is normal.", "aorta"), _s("The calibre of the thoracic aorta is normal.", "aorta")),
    (_s("The liver is of normal size in the sections included.", "liver"),
     _s("No focal lesion was seen in the liver within the scan area.", "liver")),
    (_s("The spleen and the visible parts of the stomach are unremarkable.", "spleen", "stomach"),),
    (_s("No lytic or destructive lesion was seen in the bones within the scan area.", _W),
     _s("Degenerative changes are seen in the thoracic vertebrae.", _W)),
    (_s("Both hemithoraces are symmetrical.", "lung"), _s("Thyroid gland is normal in size.", _W)),
)
ORDER = ["Medical material", "Cardiomegaly", "Pericardial effusion", "Coronary artery wall calcification",
         "Arterial wall calcification", "Lymphadenopathy", "Hiatal hernia", "Pleural effusion", "Emphysema",
         "Lung nodule", "Lung opacity", "Consolidation", "Atelectasis", "Pulmonary fibrotic sequela",
         "Mosaic attenuation pattern", "Peribronchial thickening", "Bronchiectasis", "Interlobular septal thickening"]
SHORT = {"Medical material": "Medical device in the chest", "Arterial wall calcification": "Aortic atherosclerosis",
         "Coronary artery wall calcification": "Coronary artery calcification", "Lung nodule": "Pulmonary nodule",
         "Pulmonary fibrotic sequela": "Fibrotic sequelae in the lung"}


def report(labels: dict[str, int], q: dict, design: Design, rng: np.random.Generator, slice_mm: float
           ) -> tuple[dict[str, str], list[dict]]:
    """CT-RATE report sections written from the measured labels (positives described, a random half of the
    negatives stated), and each findings/impressions sentence with its true organs."""
    c = lambda opts: opts[int(rng.integers(len(opts)))]  # noqa: E731
    findings: list[Sentence] = []
    if not design.contrast and rng.random() < 0.5:
        findings.append(_s("Mediastinal structures were evaluated as suboptimal because the examination was "
                           "without contrast.", _W))
    normals = [c(group) for group in NORMALS if rng.random() < 0.6]
    for label in ORDER:
        if labels[label]:
            findings += _positive(label, q, design, rng)
        elif NEGATIONS[label] and rng.random() < 0.55:
            findings.append(c(NEGATIONS[label]))
        if label == "Hiatal hernia":
            findings += normals[:3]
    findings += normals[3:]
    pos = [lab for lab in ORDER if labels[lab]]
    impressions: list[Sentence] = []
    organ = {"Medical material": (_W,), "Arterial wall calcification": ("aorta",), "Cardiomegaly": ("heart",),
             "Pericardial effusion": ("heart",), "Coronary artery wall calcification": ("heart",),
             "Hiatal hernia": ("esophagus",), "Lymphadenopathy": (_W,)}
    for lab in pos[:5]:
        impressions.append(_s(SHORT.get(lab, lab) + ".", *organ.get(lab, ("lung",))))
    if not pos:
        impressions.append(c((_s("No significant abnormality was detected.", ), _s("Normal chest CT."))))
    contrast = "with intravenous contrast" if design.contrast else "without contrast"
    sections = {
        "ClinicalInformation_EN": c(("Not given.", "Cough.", "Shortness of breath.", "Fever and cough.",
                                     "Chest pain.", "Follow-up.")),
        "Technique_EN": f"Thorax CT was performed {contrast} with {slice_mm:g} mm slice thickness.",
        "Findings_EN": " ".join(t for t, _ in findings),
        "Impressions_EN": " ".join(t for t, _ in impressions),
    }
    truth = [{"section": sec, "sentence": t, "organs": sorted(o)}
             for sec, items in (("Findings_EN", findings), ("Impressions_EN", impressions)) for t, o in items]
    return sections, truth
