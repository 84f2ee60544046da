"""The EchoNet-Dynamic twin: real layout, deterministic, labels measured from its own geometry."""
from __future__ import annotations

import filecmp

import cv2
import numpy as np
import pandas as pd

from cardiobench.data.video import read_avi
from cardiobench.tasks.echonet import format as E
from cardiobench.tasks.echonet import twin as P


def test_layout_and_headers(twin):
    flist = pd.read_csv(twin / E.FILELIST)
    assert list(flist.columns) == E.FILELIST_COLUMNS
    assert (twin / E.TRACINGS).read_text().splitlines()[0] == "FileName,X1,Y1,X2,Y2,Frame"
    tr = pd.read_csv(twin / E.TRACINGS)
    assert tr.FileName.str.endswith(".avi").all()
    assert not flist.FileName.str.endswith(".avi").any()
    assert set(flist.Split) == {"TRAIN", "VAL", "TEST"}
    for row in flist.itertuples():
        v = read_avi(twin / "Videos" / f"{row.FileName}.avi")
        assert v.shape == (row.NumberOfFrames, 112, 112)
        g = tr[tr.FileName == f"{row.FileName}.avi"]
        assert g.Frame.nunique() == 2 and len(g) == 42  # 2 frames x (long axis + 20 chords)


def test_deterministic(tmp_path, twin):
    again = E.synthesize(tmp_path / "again", n=24, seed=3, workers=1, progress=False)
    for name in (E.FILELIST, E.TRACINGS):
        assert filecmp.cmp(twin / name, again / name, shallow=False)
    a = sorted((twin / "Videos").iterdir())[0]
    assert np.array_equal(read_avi(a), read_avi(again / "Videos" / a.name))
    other = E.synthesize(tmp_path / "other", n=24, seed=4, progress=False)
    assert not filecmp.cmp(twin / E.FILELIST, other / E.FILELIST, shallow=False)


def test_ef_is_measured_from_tracings(twin):
    ds = E.read(twin)
    for row in ds.samples.itertuples():
        ed, es = E.ed_es(ds.tracings[row.FileName])
        edv, esv = ed.volume(), es.volume()
        assert np.isclose(row.EDV, edv, atol=1e-3) and np.isclose(row.ESV, esv, atol=1e-3)
        assert np.isclose(row.EF, 100 * (edv - esv) / edv, atol=1e-3)


def test_tracings_lie_on_the_dark_cavity(twin):
    """The traced ED polygon covers dark blood; a band just outside it is bright myocardium."""
    ds = E.read(twin)
    for row in ds.samples.head(8).itertuples():
        video = read_avi(row.path)
        ed, _ = E.ed_es(ds.tracings[row.FileName])
        poly = np.concatenate([ed.chords[:, :2], ed.chords[::-1, 2:]]).round().astype(np.int32)
        mask = np.zeros((112, 112), np.uint8)
        cv2.fillPoly(mask, [poly], 1)
        inner = cv2.erode(mask, np.ones((3, 3), np.uint8))
        ring = cv2.dilate(mask, np.ones((7, 7), np.uint8)) - cv2.dilate(mask, np.ones((3, 3), np.uint8))
        frame = video[ed.frame].astype(float)
        assert frame[inner > 0].mean() < 0.4 * frame[ring > 0].mean()


def test_ef_distribution_is_realistic():
    rng = np.random.default_rng(0)
    efs = []
    for _ in range(400):
        ph = P.sample(rng)
        ed, es = ph.traced_frames()
        v = [P.disk_volume(*P.trace(ph, f)) for f in (ed, es)]
        efs.append(100 * (v[0] - v[1]) / v[0])
    efs = np.array(efs)
    assert efs.min() < 20 and efs.max() > 75
    assert 0.07 < (efs < 40).mean() < 0.2  # about one in eight below 40 %
    assert 50 < np.median(efs) < 65
