"""Where a scan's findings are planted: the non-lung findings (and the phantom refitted to them), then
the lung lesions placed with the first reconstruction's lung labels."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from ....data.twins import ct_phantom as cp
from ....data.twins import portable_math as pmath
from ....data.twins.ct_phantom import AIR, _Grid, _t
from .anatomy import _heart_width, scale_heart
from .findings import LUNG_IDS, Design, Lesion, _sphere


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
