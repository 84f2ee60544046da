"""EchoNet-Dynamic reader quirks and `cardiobench data verify` on broken inputs."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from cardiobench.errors import DataError
from cardiobench.tasks.echonet import format as E

from .conftest import cli


@pytest.fixture()
def copy(twin, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(twin, dst)
    return dst


def test_quirks_are_accepted(copy):
    flist = pd.read_csv(copy / E.FILELIST)
    flist.loc[0, "FileName"] = flist.loc[0, "FileName"] + ".avi"
    flist["Split"] = flist.Split.str.lower()
    flist.to_csv(copy / E.FILELIST, index=False)
    (copy / "README.txt").write_text("extra file")
    (copy / "Videos" / "notes.txt").write_text("extra file")
    ds = E.read(copy)
    assert len(ds.samples) == 24 and not [p for p in ds.problems if p.severity == "error"]
    assert set(ds.samples.Split) == {"TRAIN", "VAL", "TEST"}


def test_ed_es_by_volume_not_order(copy):
    ds = E.read(copy)
    name = ds.samples.FileName[0]
    ed, es = E.ed_es(ds.tracings[name])
    ed2, es2 = E.ed_es(ds.tracings[name][::-1])
    assert ed.frame == ed2.frame and es.frame == es2.frame and ed.volume() > es.volume()


def test_missing_filelist_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="FileList.csv: not found"):
        E.read(tmp_path)


def test_verify_reports_each_problem(copy):
    flist = pd.read_csv(copy / E.FILELIST)
    names = list(flist.FileName)
    # 1. truncated AVI
    avi = copy / "Videos" / f"{names[0]}.avi"
    data = avi.read_bytes()
    avi.write_bytes(data[: len(data) // 2])
    # 2. a FileList row whose video is missing
    (copy / "Videos" / f"{names[1]}.avi").unlink()
    # 3. a NaN EF
    flist.loc[2, "EF"] = np.nan
    flist.to_csv(copy / E.FILELIST, index=False)
    # 4. VolumeTracings.csv with a wrong header
    tr = (copy / E.TRACINGS).read_text().splitlines()
    tr[0] = "FileName,X1,Y1,X2,Y2,FrameNumber"
    (copy / E.TRACINGS).write_text("\n".join(tr) + "\n")

    proc = cli("data", "verify", "echonet_dynamic", str(copy))
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    lines = [l for l in proc.stdout.splitlines() if l.startswith("ERROR")]
    assert len(lines) == 4, proc.stdout
    assert any(f"{names[0]}.avi" in l and ("truncated" in l or "cannot be opened" in l or "no decodable" in l) for l in lines)
    assert any(f"{names[1]}.avi" in l and "missing" in l for l in lines)
    assert any("FileList.csv row 4" in l and "EF is nan" in l for l in lines)
    assert any("VolumeTracings.csv" in l and "header" in l for l in lines)


def test_verify_clean_twin_exits_zero(twin):
    proc = cli("data", "verify", "echonet_dynamic", str(twin))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 error(s)" in proc.stderr
