"""Cases of the bad-input corpus: (name, format, breaker, command, expectation). See ``__init__``."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# A breaker gets the copied twin folder and a scratch folder, changes them and returns the command's
# arguments (after ``cardiobench``) with {root} for the twin folder.
Breaker = Callable[[Path, Path], list[str]]


@dataclass(frozen=True)
class Case:
    name: str
    fmt: str          # echonet_dynamic, acdc, ct_echo, ct_rate, or "cli" (no data change)
    breaker: Breaker
    expect: str       # "refused" or "accepted"
    mention: str      # what the message (refused) or output (accepted) must name
    code: int = 1     # a refusal's exit status: 1, or argparse's 2 for a malformed command line
    as_root: bool = True  # False: meaningless as root (root reads a file whatever its permissions)

    @property
    def id(self) -> str:
        return f"{self.fmt}:{self.name}"


def _verify(fmt: str) -> list[str]:
    return ["data", "verify", fmt, "{root}"]


def _index(fmt: str) -> list[str]:
    """``data verify --no-decode``: for a breakage in an index file (a CSV, Info.cfg), nothing to decode."""
    return ["data", "verify", fmt, "{root}", "--no-decode"]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _first(root: Path, pattern: str) -> Path:
    return sorted(root.glob(pattern))[0]


def _edit_csv(path: Path, fn: Callable[[list[str]], list[str]], encoding: str = "utf-8", newline: str = "\n") -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_bytes((newline.join(fn(lines)) + newline).encode(encoding))


def _cell(lines: list[str], row: int, col: str, value: str) -> list[str]:
    head = lines[0].split(",")
    cells = lines[row].split(",")
    cells[head.index(col)] = value
    lines[row] = ",".join(cells)
    return lines


def _nifti_nan(path: Path) -> None:
    import nibabel as nib
    import numpy as np
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).astype(np.float32)
    data.flat[data.size // 2] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), str(path))


def _nifti_reshape(path: Path, like: Path) -> None:
    """Write ``path`` again with one slice fewer than ``like``."""
    import nibabel as nib
    import numpy as np
    img = nib.load(str(like))
    data = np.asarray(img.dataobj)[..., :-1]
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(path))


def _nifti_rewrite(path: Path, data_fn=None, affine_fn=None) -> None:
    """Write ``path`` again with its data and/or affine changed (header rebuilt from them)."""
    import nibabel as nib
    import numpy as np
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    data = data_fn(data) if data_fn else data
    affine = affine_fn(img.affine.copy()) if affine_fn else img.affine
    nib.save(nib.Nifti1Image(data, affine), str(path))


def _not_gzip(path: Path) -> None:
    path.write_bytes(b"this is not a gzip stream" * 8)


# ------------------------------------------------------------------ echonet_dynamic
def _echo_cases() -> list[Case]:
    E = "echonet_dynamic"
    flist = "FileList.csv"

    def zero_byte_video(root, _):
        _first(root, "Videos/*.avi").write_bytes(b"")
        return _verify(E)

    def truncated_video(root, _):
        _truncate(_first(root, "Videos/*.avi"))
        return _verify(E)

    def not_avi(root, _):
        _first(root, "Videos/*.avi").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 200)
        return _verify(E)

    def nan_ef(root, _):
        _edit_csv(root / flist, lambda L: _cell(L, 1, "EF", "nan"))
        return _verify(E)

    def text_ef(root, _):
        _edit_csv(root / flist, lambda L: _cell(L, 1, "EF", "sixty"))
        return _verify(E)

    def duplicate_id(root, _):
        _edit_csv(root / flist, lambda L: L + [L[1]])
        return _verify(E)

    def unknown_split(root, _):
        _edit_csv(root / flist, lambda L: _cell(L, 1, "Split", "TRIAN"))
        return _verify(E)

    def missing_column(root, _):
        _edit_csv(root / flist, lambda L: [",".join(c for i, c in enumerate(r.split(",")) if i != 1) for r in L])
        return _verify(E)

    def missing_video(root, _):
        _first(root, "Videos/*.avi").unlink()
        return _verify(E)

    def bom_csv(root, _):
        _edit_csv(root / flist, lambda L: L, encoding="utf-8-sig")
        return _verify(E)

    def crlf_csv(root, _):
        _edit_csv(root / flist, lambda L: L, newline="\r\n")
        return _verify(E)

    def latin1_csv(root, _):
        _edit_csv(root / flist, lambda L: L[:1] + [L[1].replace(L[1].split(",")[0], L[1].split(",")[0] + "é", 1)]
                  + L[2:], encoding="latin-1")
        return _verify(E)

    def predictions(root, scratch, edit: Callable[[list[str]], list[str]]) -> list[str]:
        rows = [r.split(",") for r in (root / flist).read_text().splitlines()]
        head = rows[0]
        test = [r for r in rows[1:] if r[head.index("Split")] == "TEST"]
        lines = ["sample_id,EF_pred"] + [f"{r[0]},{float(r[head.index('EF')]) + 1:.2f}" for r in test]
        out = scratch / "my model's <predictions>.csv"
        out.write_text("\n".join(edit(lines)) + "\n")
        return ["evaluate", "--task", "echonet_ef", "--predictions", str(out), "--name", "<b>net</b>",
                "data.root={root}", f"runs_root={scratch / 'runs'}", "report=false"]

    def pred_ok(root, scratch):
        return predictions(root, scratch, lambda L: L)

    def pred_nan(root, scratch):
        return predictions(root, scratch, lambda L: L[:2] + [L[2].split(",")[0] + ",nan"] + L[3:])

    def pred_duplicate(root, scratch):
        return predictions(root, scratch, lambda L: L + [L[1]])

    def pred_missing_row(root, scratch):
        return predictions(root, scratch, lambda L: L[:-1])

    def pred_extra_row(root, scratch):
        return predictions(root, scratch, lambda L: L + ["0XNOTATESTVIDEO,55.0"])

    def pred_wrong_column(root, scratch):
        return predictions(root, scratch, lambda L: ["sample_id,ef"] + L[1:])

    def tracing_unknown_video(root, _):
        _edit_csv(root / "VolumeTracings.csv", lambda L: L + ["0XDOESNOTEXIST.avi,1,2,3,4,5"])
        return _verify(E)

    def tracing_nan(root, _):
        _edit_csv(root / "VolumeTracings.csv", lambda L: _cell(L, 1, "X1", "inf"))
        return _verify(E)

    return [Case("zero_byte_video", E, zero_byte_video, "refused", ".avi"),
            Case("truncated_video", E, truncated_video, "refused", ".avi"),
            Case("wrong_codec_header", E, not_avi, "refused", ".avi"),
            Case("nan_label", E, nan_ef, "refused", "EF"),
            Case("text_label", E, text_ef, "refused", "EF"),
            Case("duplicated_id", E, duplicate_id, "refused", "FileList.csv"),
            Case("unknown_split", E, unknown_split, "refused", "TRIAN"),
            Case("missing_column", E, missing_column, "refused", "EF"),
            Case("missing_video", E, missing_video, "refused", ".avi"),
            Case("bom_prefixed_csv", E, bom_csv, "accepted", ""),
            Case("windows_line_endings", E, crlf_csv, "accepted", ""),
            Case("non_utf8_csv", E, latin1_csv, "refused", "FileList.csv: not UTF-8"),
            Case("tracing_of_unknown_video", E, tracing_unknown_video, "accepted", "0XDOESNOTEXIST"),
            Case("inf_tracing_coordinate", E, tracing_nan, "refused", "VolumeTracings.csv"),
            Case("predictions_with_markup_in_names", E, pred_ok, "accepted", ""),
            Case("predictions_nan", E, pred_nan, "refused", "predictions"),
            Case("predictions_duplicated_id", E, pred_duplicate, "refused", "predictions"),
            Case("predictions_missing_sample", E, pred_missing_row, "refused", "predictions"),
            Case("predictions_unknown_sample", E, pred_extra_row, "refused", "0XNOTATESTVIDEO"),
            Case("predictions_wrong_column", E, pred_wrong_column, "refused", "EF_pred")]


# ------------------------------------------------------------------ acdc
def _acdc_cases() -> list[Case]:
    A = "acdc"

    def truncated_gz(root, _):
        _truncate(_first(root, "training/patient*/patient*_frame01.nii.gz"))
        return _verify(A)

    def not_gzip(root, _):
        _not_gzip(_first(root, "training/patient*/patient*_frame01_gt.nii.gz"))
        return _verify(A)

    def zero_byte(root, _):
        _first(root, "training/patient*/patient*_4d.nii.gz").write_bytes(b"")
        return _verify(A)

    def nan_voxels(root, _):
        _nifti_nan(_first(root, "training/patient*/patient*_frame01.nii.gz"))
        return _verify(A)

    def gt_shape(root, _):
        p = _first(root, "training/patient*/patient*_frame01_gt.nii.gz")
        _nifti_reshape(p, p)
        return _verify(A)

    def info_missing_es(root, _):
        cfg = _first(root, "training/patient*/Info.cfg")
        cfg.write_text("\n".join(l for l in cfg.read_text().splitlines() if not l.startswith("ES")) + "\n")
        return _verify(A)

    def info_bad_group(root, _):
        cfg = _first(root, "training/patient*/Info.cfg")
        cfg.write_text(cfg.read_text().replace("Group: ", "Group: XYZ"))
        return _verify(A)

    def missing_gt(root, _):
        _first(root, "training/patient*/patient*_frame01_gt.nii.gz").unlink()
        return _verify(A)

    def gt_affine(root, _):
        def shift(affine):
            affine[:3, 3] += 25.0  # the label map 25 mm away from its image
            return affine
        _nifti_rewrite(_first(root, "training/patient*/patient*_frame01_gt.nii.gz"), affine_fn=shift)
        return _verify(A)

    def gt_float_labels(root, _):
        _nifti_rewrite(_first(root, "training/patient*/patient*_frame01_gt.nii.gz"),
                       data_fn=lambda d: d.astype("float32") * 0.5)  # 0.5, 1.5: not labels
        return _verify(A)

    def gt_label_out_of_range(root, _):
        _nifti_rewrite(_first(root, "training/patient*/patient*_frame01_gt.nii.gz"),
                       data_fn=lambda d: (d.astype("int16") * 3))
        return _verify(A)

    def symlink_loop(root, _):
        (root / "training" / "loop").symlink_to(root / "training" / "loop")
        return _verify(A)

    def predicted_masks(root, scratch, edit: Callable[[list[Path]], None]) -> list[str]:
        """External predicted masks (challenge naming), made from the TEST ground truth, then broken."""
        from cardiobench.tasks.acdc import format as fmt
        samples, _ = fmt.index(root)
        masks = scratch / "predicted masks"
        masks.mkdir()
        for row in samples[samples.split == "TEST"].itertuples():
            shutil.copy(row.gt_path, masks / f"{row.sample_id}.nii.gz")
        edit(sorted(masks.glob("*.nii.gz")))
        return ["evaluate", "--task", "acdc_seg", "--predictions", str(masks), "--name", "m", "data.root={root}",
                f"runs_root={scratch / 'runs'}", "report=false"]

    def masks_ok(root, scratch):
        return predicted_masks(root, scratch, lambda files: None)

    def masks_missing_case(root, scratch):
        return predicted_masks(root, scratch, lambda files: files[-1].unlink())

    def masks_wrong_shape(root, scratch):
        return predicted_masks(root, scratch, lambda files: _nifti_reshape(files[0], files[0]))

    def masks_label_out_of_range(root, scratch):
        return predicted_masks(root, scratch, lambda files: _nifti_rewrite(files[0], data_fn=lambda d: d * 3))

    def masks_not_nifti(root, scratch):
        return predicted_masks(root, scratch, lambda files: _not_gzip(files[0]))

    def space_and_unicode_path(root, scratch):
        target = scratch / "données cardiaques" / "ACDC set"
        shutil.copytree(root, target, symlinks=True)
        return ["data", "verify", A, str(target)]

    return [Case("truncated_nifti", A, truncated_gz, "refused", "_frame01.nii.gz"),
            Case("not_gzip_nifti", A, not_gzip, "refused", "_gt.nii.gz"),
            Case("zero_byte_nifti", A, zero_byte, "refused", "_4d.nii.gz"),
            Case("nan_voxels", A, nan_voxels, "refused", "_frame01.nii.gz"),
            Case("label_shape_mismatch", A, gt_shape, "refused", "_gt.nii.gz"),
            Case("info_without_es", A, info_missing_es, "refused", "Info.cfg"),
            Case("info_unknown_group", A, info_bad_group, "accepted", "is not one of ACDC's"),
            Case("missing_label_map", A, missing_gt, "refused", "frame01"),
            Case("label_map_affine_mismatch", A, gt_affine, "refused", "_gt.nii.gz"),
            Case("label_map_not_integer", A, gt_float_labels, "refused", "_gt.nii.gz: non-integral label value(s) 0.5"),
            Case("label_out_of_range", A, gt_label_out_of_range, "refused", "_gt.nii.gz"),
            Case("predicted_masks_ok", A, masks_ok, "accepted", "run folder"),
            Case("predicted_masks_missing_case", A, masks_missing_case, "refused", "_ES.nii.gz"),
            Case("predicted_mask_wrong_shape", A, masks_wrong_shape, "refused", "_ED.nii.gz"),
            Case("predicted_mask_label_out_of_range", A, masks_label_out_of_range, "refused", "_ED.nii.gz"),
            Case("predicted_mask_not_nifti", A, masks_not_nifti, "refused", "_ED.nii.gz"),
            Case("symlink_loop", A, symlink_loop, "accepted", ""),
            Case("path_with_spaces_and_accents", A, space_and_unicode_path, "accepted", "")]


# ------------------------------------------------------------------ ct_echo
def _ct_echo_cases() -> list[Case]:
    C = "ct_echo"

    def truncated(root, _):
        _truncate(_first(root, "images/*.nii.gz"))
        return _verify(C)

    def nan_label(root, _):
        _edit_csv(root / "labels.csv", lambda L: _cell(L, 1, "lvef", "nan"))
        return _verify(C)

    def bad_binary(root, _):
        _edit_csv(root / "labels.csv", lambda L: _cell(L, 1, "aortic_stenosis", "2"))
        return _verify(C)

    def unknown_split(root, _):
        _edit_csv(root / "labels.csv", lambda L: _cell(L, 1, "split", "holdout"))
        return _verify(C)

    def duplicated_patient(root, _):
        _edit_csv(root / "labels.csv", lambda L: L + [L[1]])
        return _verify(C)

    def missing_image(root, _):
        _first(root, "images/*.nii*").unlink()
        return _verify(C)

    def nan_voxels(root, _):
        _nifti_nan(_first(root, "images/*.nii.gz"))
        return _verify(C)

    def unreadable(root, _):
        p = _first(root, "images/*.nii.gz")
        p.chmod(0)
        return _verify(C)

    def volume_is_a_folder(root, _):
        p = _first(root, "images/*.nii.gz")
        p.unlink()
        p.mkdir()
        return _verify(C)

    return [Case("truncated_volume", C, truncated, "refused", ".nii"),
            Case("nan_lvef", C, nan_label, "refused", "lvef"),
            Case("label_not_0_or_1", C, bad_binary, "refused", "aortic_stenosis"),
            Case("unknown_split", C, unknown_split, "refused", "holdout"),
            Case("duplicated_patient", C, duplicated_patient, "refused", "labels.csv"),
            Case("missing_volume", C, missing_image, "refused", "images/"),
            Case("nan_voxels", C, nan_voxels, "refused", ".nii"),
            Case("unreadable_file", C, unreadable, "refused", ".nii", as_root=False),
            Case("volume_path_is_a_folder", C, volume_is_a_folder, "refused", ".nii")]


# ------------------------------------------------------------------ ct_rate
def _ct_rate_cases() -> list[Case]:
    R = "ct_rate"
    labels = "multi_abnormality_labels/train_predicted_labels.csv"

    def truncated(root, _):
        _truncate(_first(root, "train/*/*/*.nii.gz"))
        return _verify(R)

    def label_not_binary(root, _):
        _edit_csv(root / labels, lambda L: _cell(L, 1, "Cardiomegaly", "0.5"))
        return _verify(R)

    def missing_label_column(root, _):
        _edit_csv(root / labels, lambda L: [",".join(c for i, c in enumerate(r.split(",")) if i != 3) for r in L])
        return _verify(R)

    def orphan_report(root, _):
        rep = root / "radiology_text_reports/train_reports.csv"
        rep.write_text(rep.read_text() + 'train_999_a_1.nii.gz,,,"No findings.",\n')
        return _verify(R)

    def volume_without_metadata(root, _):
        _edit_csv(root / "metadata/train_metadata.csv", lambda L: L[:1] + L[2:])
        return _verify(R)

    def mask_shape(root, _):
        m = _first(root, "masks/*.nii.gz")
        _nifti_reshape(m, m)
        return _verify(R)

    def bad_spacing(root, _):
        _edit_csv(root / "metadata/train_metadata.csv", lambda L: L[:1] + [L[1].replace('"[', '"[-', 1)] + L[2:])
        return _verify(R)

    def data_root_is_file(root, scratch):
        f = scratch / "not_a_folder.csv"
        f.write_text("VolumeName\n")
        return ["data", "verify", R, str(f)]

    return [Case("truncated_volume", R, truncated, "refused", ".nii.gz"),
            Case("label_not_0_or_1", R, label_not_binary, "refused", "train_predicted_labels.csv"),
            Case("missing_label_column", R, missing_label_column, "refused", "train_predicted_labels.csv"),
            Case("report_of_missing_volume", R, orphan_report, "refused", "train_999_a_1"),
            Case("volume_without_metadata", R, volume_without_metadata, "refused", "train_metadata.csv"),
            Case("mask_shape_mismatch", R, mask_shape, "refused", "masks/"),
            Case("negative_spacing", R, bad_spacing, "refused", "train_metadata.csv"),
            Case("data_root_is_a_file", R, data_root_is_file, "refused", "not_a_folder.csv")]


# ------------------------------------------------------------------ CLI and configs
def _cli_cases() -> list[Case]:
    X = "cli"

    def misspelled_override(root, _):
        return ["run", "--task", "echonet_ef", "--profile", "tiny", "trian.epochs=1"]

    def unknown_task(root, _):
        return ["run", "--task", "echonet_eff"]

    def unknown_baseline(root, _):
        return ["run", "--task", "echonet_ef", "--baseline", "r2plus1d_typo"]

    def unknown_profile(root, _):
        return ["run", "--task", "echonet_ef", "--profile", "smok"]

    def data_root_missing(root, scratch):
        return ["run", "--task", "echonet_ef", "--profile", "tiny", f"data.root={scratch / 'nowhere'}"]

    def bad_value_type(root, _):
        return ["run", "--task", "echonet_ef", "--profile", "tiny", "train.epochs=three"]

    def predictions_missing(root, scratch):
        return ["evaluate", "--task", "echonet_ef", "--predictions", str(scratch / "none.csv"), "--name", "x"]

    def run_dir_not_a_run(root, scratch):
        (scratch / "empty_run").mkdir()
        return ["evaluate", str(scratch / "empty_run")]

    return [Case("misspelled_override", X, misspelled_override, "refused", "trian"),
            Case("unknown_task", X, unknown_task, "refused", "echonet_eff"),
            Case("unknown_baseline", X, unknown_baseline, "refused", "r2plus1d_typo"),
            Case("unknown_profile", X, unknown_profile, "refused", "smok", code=2),
            Case("data_root_missing", X, data_root_missing, "refused", "nowhere"),
            Case("override_of_wrong_type", X, bad_value_type, "refused", "three"),
            Case("predictions_file_missing", X, predictions_missing, "refused", "none.csv"),
            Case("run_folder_without_a_run", X, run_dir_not_a_run, "refused", "empty_run")]


# ------------------------------------------------------------------ helpers of the cases below
def _cache(fmt: str, scratch: Path) -> list[str]:
    """``data cache`` of the copied twin into the case's own cache folder (the same breakage as a verify case)."""
    return ["data", "cache", fmt, "{root}", "--cache-dir", str(scratch / "cache")]


def _few_ct_echo(root: Path, keep: int = 3) -> None:
    """labels.csv cut to its first ``keep`` rows (CT0001 among them): a chest-CT case decodes (and a cache
    case resamples) 3 volumes, not 16."""
    _edit_csv(root / "labels.csv", lambda L: L[: keep + 1])


def _few_ct_rate(root: Path, patients: tuple[str, ...] = ("train_1", "train_2")) -> None:
    """The CT-RATE twin cut to a few TRAIN patients (train_1_a_1 among them; valid/ gone, their report and
    label rows kept only): a case decodes (and a cache case resamples) a handful of volumes, not 30."""
    shutil.rmtree(root / "valid")
    for folder in (root / "train").iterdir():
        if folder.name not in patients:
            shutil.rmtree(folder)
    kept = {p.name for p in (root / "train").glob("*/*/*.nii.gz")}
    for rel in ("radiology_text_reports/train_reports.csv", "multi_abnormality_labels/train_predicted_labels.csv"):
        _edit_rows(root / rel, lambda rows: rows[:1] + [r for r in rows[1:] if r and r[0] in kept])


def _reencode(path: Path, encoding: str) -> None:
    """Write a UTF-8 text file again in ``encoding`` (Python's ``utf-16`` writes a byte-order mark first)."""
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))


def _edit_rows(path: Path, fn: Callable[[list[list[str]]], list[list[str]]]) -> None:
    """Edit a CSV with quoted fields (CT-RATE's "[x, y]" spacing) row by row."""
    import csv
    import io
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(fn(rows))
    path.write_text(out.getvalue(), encoding="utf-8")


def _set_value(column: str, value: str, row: int = 1) -> Callable[[list[list[str]]], list[list[str]]]:
    def edit(rows: list[list[str]]) -> list[list[str]]:
        rows[row][rows[0].index(column)] = value
        return rows
    return edit


def _edit_header(path: Path, fn) -> None:
    """Change a NIfTI-1 header's fields in place (``fn(header)``), the voxel bytes untouched: how a
    converter with a bug writes a broken affine that nibabel would refuse to build from an array."""
    import gzip
    import io

    import nibabel as nib
    raw = path.read_bytes()
    packed = raw[:2] == b"\x1f\x8b"
    data = gzip.decompress(raw) if packed else raw
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(data), check=False)
    fn(header)
    data = header.binaryblock + data[348:]
    path.write_bytes(gzip.compress(data, mtime=0) if packed else data)


def _set_affine(path: Path, fn) -> None:
    """The header's sform set to ``fn(affine)`` (qform off, so the sform is what readers use)."""
    import nibabel as nib
    affine = fn(nib.load(str(path)).affine.copy())

    def edit(h):
        h["srow_x"], h["srow_y"], h["srow_z"] = affine[0], affine[1], affine[2]
        h["sform_code"], h["qform_code"] = 1, 0
        pixdim = h["pixdim"].copy()
        pixdim[1:4] = [v if v > 0 else 1.0 for v in __import__("numpy").linalg.norm(affine[:3, :3], axis=0)]
        h["pixdim"] = pixdim
    _edit_header(path, edit)


def _column(k: int, value) -> Callable:
    def fn(a):
        a[:3, k] = value
        return a
    return fn


def _singular(a):
    a[:3, 2] = a[:3, 0]  # the third voxel axis along the first: no 3D orientation
    return a


def _nan_affine(a):
    a[0, 0] = float("nan")
    return a


def _sheared(a):
    import numpy as np
    unit0 = a[:3, 0] / np.linalg.norm(a[:3, 0])
    a[:3, 1] += np.tan(np.radians(15)) * np.linalg.norm(a[:3, 1]) * unit0  # a 15 degree gantry tilt
    return a


def _spacing(k: int, mm: float):
    """Voxel axis ``k`` given a spacing of ``mm`` (its direction kept)."""
    def fn(a):
        import numpy as np
        a[:3, k] *= mm / np.linalg.norm(a[:3, k])
        return a
    return fn


def _hu_rewrite(path: Path, data_fn) -> None:
    """A chest CT written again as float32 HU (scaling applied) after ``data_fn``."""
    import nibabel as nib
    import numpy as np
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(data_fn(np.asarray(img.get_fdata(), dtype=np.float32)), img.affine), str(path))


def _stored_rewrite(path: Path, data_fn, dtype=None) -> None:
    """A NIfTI written again from its stored (unscaled) voxels after ``data_fn``, same affine."""
    import nibabel as nib
    import numpy as np
    img = nib.load(str(path))
    data = data_fn(np.asarray(img.dataobj.get_unscaled()))
    nib.save(nib.Nifti1Image(data, img.affine, dtype=dtype), str(path))


# ------------------------------------------------------------------ echonet_dynamic: metadata, encodings, videos
def _echo_more() -> list[Case]:
    E = "echonet_dynamic"
    flist = "FileList.csv"

    def fl(edit, command=_index):
        def breaker(root, _):
            _edit_csv(root / flist, edit)
            return command(E)
        return breaker

    def utf16_bom(root, _):
        _reencode(root / flist, "utf-16")
        return _index(E)

    def utf16_no_bom(root, _):
        _reencode(root / flist, "utf-16-le")
        return _index(E)

    def tracings_utf16_bom(root, _):
        _reencode(root / "VolumeTracings.csv", "utf-16")
        return _index(E)

    def all_train(lines: list[str]) -> list[str]:
        return lines[:1] + [l.rsplit(",", 1)[0] + ",TRAIN" for l in lines[1:]]

    def all_train_run(root, scratch):
        _edit_csv(root / flist, all_train)
        return ["run", "--task", "echonet_ef", "--profile", "tiny", "data.root={root}", f"runs_root={scratch / 'runs'}",
                f"data.cache_dir={scratch / 'cache'}", "report=false"]

    def video_edit(fn):
        def breaker(root, _):
            from cardiobench.data.video import read_avi, write_avi
            path = _first(root, "Videos/*.avi")
            write_avi(path, fn(read_avi(path)), 50)
            return _verify(E)
        return breaker

    def tracings(edit):
        def breaker(root, _):
            _edit_csv(root / "VolumeTracings.csv", edit)
            return _verify(E)
        return breaker

    def frame_beyond(lines: list[str]) -> list[str]:
        name = lines[1].split(",")[0]
        first_frame = lines[1].rsplit(",", 1)[1]
        return lines[:1] + [l.rsplit(",", 1)[0] + ",9999" if l.startswith(name + ",") and l.endswith("," + first_frame)
                            else l for l in lines[1:]]

    def single_point_frame(lines: list[str]) -> list[str]:
        name, frame = lines[1].split(",")[0], lines[1].rsplit(",", 1)[1]
        rows = [l for l in lines[1:] if l.startswith(name + ",") and l.endswith("," + frame)]
        return [l for l in lines if l not in rows[1:]]

    def negative_point(lines: list[str]) -> list[str]:
        return _cell(lines, 2, "X1", "-40.0")

    def duplicate_header(lines: list[str]) -> list[str]:
        return [lines[0].replace("ESV", "EF")] + lines[1:]

    def trailing_blank_lines(lines: list[str]) -> list[str]:
        return lines + ["", "", ""]

    def extra_column(lines: list[str]) -> list[str]:
        return [lines[0] + ",Comment"] + [l + ",reviewed" for l in lines[1:]]

    def names_with_extension(lines: list[str]) -> list[str]:
        return lines[:1] + [l.replace(",", ".avi,", 1) for l in lines[1:]]

    def zero_byte_filelist(root, _):
        (root / flist).write_bytes(b"")
        return _index(E)

    def cache_truncated_video(root, scratch):
        _truncate(_first(root, "Videos/*.avi"))
        return _cache(E, scratch)

    return [Case("utf16_csv_with_bom", E, utf16_bom, "accepted", "0 error(s)"),
            Case("utf16_csv_without_bom", E, utf16_no_bom, "refused", "UTF-16"),
            Case("utf16_tracings_with_bom", E, tracings_utf16_bom, "accepted", "0 error(s)"),
            Case("fps_zero", E, fl(lambda L: _cell(L, 1, "FPS", "0")), "refused", "FPS is 0"),
            Case("fps_5000", E, fl(lambda L: _cell(L, 1, "FPS", "5000")), "accepted", "FPS 5000"),
            Case("frame_height_not_the_videos", E, fl(lambda L: _cell(L, 1, "FrameHeight", "100"), _verify), "accepted",
                 "says FrameHeight 100"),
            Case("frame_width_text", E, fl(lambda L: _cell(L, 1, "FrameWidth", "wide")), "refused", "FrameWidth"),
            Case("ef_zero", E, fl(lambda L: _cell(L, 1, "EF", "0")), "accepted", "EF 0 %"),
            Case("ef_120", E, fl(lambda L: _cell(L, 1, "EF", "120")), "refused", "EF is 120"),
            Case("esv_larger_than_edv", E, fl(lambda L: _cell(L, 1, "ESV", "500")), "accepted",
                 "is larger than EDV"),
            Case("no_test_rows", E, fl(all_train), "accepted", "FileList.csv (column Split): no usable TEST"),
            Case("no_test_rows_run", E, all_train_run, "refused", "FileList.csv (column Split): no usable VAL or TEST"),
            Case("one_frame_video", E, video_edit(lambda v: v[:1]), "refused", "beyond the video's 1 frames"),
            Case("video_of_another_size", E, video_edit(lambda v: v[:, :96, :80]), "accepted", "says FrameHeight 112"),
            Case("constant_video", E, video_edit(lambda v: v * 0), "accepted", "blank video"),
            Case("tracing_frame_beyond_video", E, tracings(frame_beyond), "refused", "traced frame 9999"),
            Case("tracing_with_one_point", E, tracings(single_point_frame), "refused", "need a long axis and chords"),
            Case("negative_tracing_coordinate", E, tracings(negative_point), "accepted", "lie off the"),
            Case("duplicate_header_column", E, fl(duplicate_header), "refused", "appear more than once"),
            Case("trailing_empty_lines", E, fl(trailing_blank_lines), "accepted", "0 error(s)"),
            Case("extra_unknown_column", E, fl(extra_column), "accepted", "0 error(s)"),
            Case("filenames_with_extension", E, fl(names_with_extension), "accepted", "0 error(s)"),
            Case("zero_byte_filelist", E, zero_byte_filelist, "refused", "FileList.csv"),
            Case("cache_of_truncated_video", E, cache_truncated_video, "refused", ".avi")]


# ------------------------------------------------------------------ acdc: Info.cfg, label maps, files verify and cache agree on
def _acdc_more() -> list[Case]:
    A = "acdc"
    frame = "training/patient*/patient*_frame01.nii.gz"
    gt = "training/patient*/patient*_frame01_gt.nii.gz"

    def info(edit: Callable[[str], str], command=_index):
        def breaker(root, _):
            cfg = _first(root, "training/patient*/Info.cfg")
            cfg.write_text(edit(cfg.read_text()))
            return command(A)
        return breaker

    def set_key(key: str, value: str) -> Callable[[str], str]:
        return lambda text: "".join(f"{key}: {value}\n" if l.startswith(f"{key}:") else l + "\n"
                                    for l in text.splitlines())

    def info_encoded(encoding: str):
        def breaker(root, _):
            _reencode(_first(root, "training/patient*/Info.cfg"), encoding)
            return _index(A)
        return breaker

    def missing_info(root, _):
        _first(root, "training/patient*/Info.cfg").unlink()
        return _index(A)

    def ed_is_es(text: str) -> str:
        return set_key("ES", "1")(text)

    def rewrite(pattern: str, data_fn, dtype=None, command=_verify):
        def breaker(root, scratch):
            _stored_rewrite(_first(root, pattern), data_fn, dtype)
            return command(A) if command is _verify else command(A, scratch)
        return breaker

    def gt_uncompressed(command):
        def breaker(root, scratch):
            import gzip
            p = _first(root, gt)
            p.with_name(p.name[:-3]).write_bytes(gzip.decompress(p.read_bytes()))
            p.unlink()
            return _verify(A) if command == "verify" else _cache(A, scratch)
        return breaker

    def gzip_header(root, _):
        import gzip
        import io
        p = _first(root, frame)
        buf = io.BytesIO()
        with gzip.GzipFile(filename="scanner export.nii", mode="wb", fileobj=buf, mtime=1_700_000_000,
                           compresslevel=9) as f:
            f.write(gzip.decompress(p.read_bytes()))
        p.write_bytes(buf.getvalue())
        return _verify(A)

    def no_testing(root, _):
        shutil.rmtree(root / "testing")
        return _index(A)

    def cache_truncated(root, scratch):
        _truncate(_first(root, frame))
        return _cache(A, scratch)

    return [Case("info_height_1800", A, info(set_key("Height", "1800.0")), "accepted", "Height '1800.0'"),
            Case("info_weight_0", A, info(set_key("Weight", "0")), "accepted", "Weight '0'"),
            Case("info_nbframe_not_the_4d", A, info(set_key("NbFrame", "40"), _verify), "refused", "Info.cfg says NbFrame: 40"),
            Case("info_ed_equals_es", A, info(ed_is_es), "accepted", "ED and ES are both frame 1"),
            Case("info_unknown_keys", A, info(lambda t: t + "Scanner: 1.5T\nComment: none\n"), "accepted", "0 error(s)"),
            Case("info_with_utf8_bom", A, info_encoded("utf-8-sig"), "accepted", "0 error(s)"),
            Case("info_utf16_with_bom", A, info_encoded("utf-16"), "accepted", "0 error(s)"),
            Case("missing_info_cfg", A, missing_info, "refused", "Info.cfg missing"),
            Case("float_label_map_integral", A, rewrite(gt, lambda d: d.astype("float32")), "accepted", "0 error(s)"),
            Case("label_map_without_rv", A, rewrite(gt, lambda d: d * (d != 1)), "accepted", "empty-structure"),
            Case("label_map_int64", A, rewrite(gt, lambda d: d.astype("int64"), dtype="int64"), "accepted",
                 "0 error(s)"),
            Case("image_2d", A, rewrite(frame, lambda d: d[:, :, 0]), "refused", "expected a 3D volume"),
            Case("image_4d", A, rewrite(frame, lambda d: __import__("numpy").stack([d, d], -1)), "refused",
                 "expected a 3D volume"),
            Case("all_zero_image", A, rewrite(frame, lambda d: d * 0), "accepted", "blank image"),
            Case("gzip_header_with_name_and_time", A, gzip_header, "accepted", "0 error(s)"),
            Case("uncompressed_label_map", A, gt_uncompressed("verify"), "accepted", "0 error(s)"),
            Case("uncompressed_label_map_cache", A, gt_uncompressed("cache"), "accepted", "0 failed"),
            Case("no_testing_folder", A, no_testing, "accepted", "testing/: no usable TEST"),
            Case("cache_of_truncated_nifti", A, cache_truncated, "refused", "_frame01.nii.gz")]


# ------------------------------------------------------------------ ct_echo: geometry, voxels, labels.csv
def _ct_echo_more() -> list[Case]:
    C = "ct_echo"
    image = "images/CT0001.nii.gz"

    def affine(fn, command="verify"):
        def breaker(root, scratch):
            _set_affine(root / image, fn)
            _few_ct_echo(root)
            return _verify(C) if command == "verify" else _cache(C, scratch)
        return breaker

    def hu(data_fn):
        def breaker(root, _):
            _hu_rewrite(root / image, data_fn)
            _few_ct_echo(root)
            return _verify(C)
        return breaker

    def labels(edit, encoding="utf-8"):
        def breaker(root, _):
            _edit_csv(root / "labels.csv", edit, encoding=encoding)
            return _index(C)
        return breaker

    def int64(root, _):
        _hu_rewrite(root / image, lambda d: d)  # float32 HU first, then whole HU as int64
        _stored_rewrite(root / image, lambda d: d.round().astype("int64"), dtype="int64")
        _few_ct_echo(root)
        return _verify(C)

    def no_test(lines: list[str]) -> list[str]:
        return [l.replace(",test,", ",train,") for l in lines]

    np_ = __import__("numpy")
    return [Case("affine_zero_column", C, affine(_column(1, 0.0)), "refused", "affine column 1 is zero"),
            Case("affine_singular", C, affine(_singular), "refused", "singular"),
            Case("affine_nan", C, affine(_nan_affine), "refused", "non-finite"),
            Case("affine_singular_cache", C, affine(_singular, "cache"), "refused", "CT0001.nii.gz: affine direction"),
            Case("affine_sheared_15_degrees", C, affine(_sheared), "accepted", "not orthogonal"),
            Case("slice_spacing_50mm", C, affine(_spacing(2, 50.0)), "refused", "axis 2: voxel spacing 50 mm"),
            Case("pixel_spacing_0_001mm", C, affine(_spacing(0, 0.001)), "refused", "axis 0: voxel spacing 0.001 mm"),
            Case("slice_spacing_15mm", C, affine(_spacing(2, 15.0)), "accepted", "implausible for CT"),
            Case("volume_2d", C, hu(lambda d: d[:, :, 0]), "refused", "expected a 3D volume"),
            Case("volume_4d", C, hu(lambda d: np_.stack([d, d], -1)), "refused", "expected a 3D volume"),
            Case("all_zero_volume", C, hu(lambda d: d * 0), "refused", "no air or lung"),
            Case("volume_int64", C, int64, "accepted", "0 error(s)"),
            Case("labels_utf16_with_bom", C, labels(lambda L: L, encoding="utf-16"), "accepted", "0 error(s)"),
            Case("labels_duplicate_column", C, labels(lambda L: [L[0].replace("sex", "lvef")] + L[1:]), "refused",
                 "appear more than once"),
            Case("labels_extra_column", C, labels(lambda L: [L[0] + ",site"] + [l + ",A" for l in L[1:]]),
                 "accepted", "0 error(s)"),
            Case("no_test_rows", C, labels(no_test), "accepted", "labels.csv (column split): no usable TEST")]


# ------------------------------------------------------------------ ct_rate: geometry from header and CSV, masks, encodings
def _ct_rate_more() -> list[Case]:
    R = "ct_rate"
    volume = "train/train_1/train_1_a/train_1_a_1.nii.gz"
    metadata = "metadata/train_metadata.csv"

    def affine(fn, command="verify"):
        def breaker(root, scratch):
            _set_affine(root / volume, fn)
            _few_ct_rate(root)
            return _verify(R) if command == "verify" else _cache(R, scratch)
        return breaker

    def meta(edit, command=_index):
        def breaker(root, _):
            _edit_rows(root / metadata, edit)
            return command(R)
        return breaker

    def mask(data_fn, dtype=None):
        def breaker(root, _):
            _stored_rewrite(root / "masks" / "train_1_a_1.nii.gz", data_fn, dtype)
            _few_ct_rate(root)
            return _verify(R)
        return breaker

    def encoded(encoding: str):
        def breaker(root, _):
            _reencode(root / metadata, encoding)
            return _index(R)
        return breaker

    def no_valid(root, _):
        shutil.rmtree(root / "valid")
        return _index(R)

    return [Case("affine_zero_column", R, affine(_column(0, 0.0)), "refused", "affine column 0 is zero"),
            Case("affine_nan", R, affine(_nan_affine), "refused", "non-finite"),
            Case("affine_singular", R, affine(_singular), "refused", "singular"),
            Case("affine_zero_column_cache", R, affine(_column(1, 0.0), "cache"), "refused", "affine column 1 is zero"),
            Case("zspacing_50mm", R, meta(_set_value("ZSpacing", "50")), "refused", "ZSpacing: voxel spacing 50"),
            Case("xyspacing_0_001mm", R, meta(_set_value("XYSpacing", "[0.001, 0.001]")), "refused",
                 "XYSpacing (x): voxel spacing 0.001"),
            Case("zspacing_12mm", R, meta(_set_value("ZSpacing", "12")), "accepted", "ZSpacing: voxel spacing 12"),
            Case("mask_float_integral", R, mask(lambda d: d.astype("float32"), "float32"), "accepted", "0 error(s)"),
            Case("mask_not_integral", R, mask(lambda d: d.astype("float32") + 0.25, "float32"), "refused",
                 "non-integral label value"),
            Case("mask_id_over_255", R, mask(lambda d: d.astype("int16") + 300 * (d > 0), "int16"), "refused",
                 "outside 0-255"),
            Case("metadata_utf16_with_bom", R, encoded("utf-16"), "accepted", "0 error(s)"),
            Case("metadata_utf16_without_bom", R, encoded("utf-16-be"), "refused", "UTF-16 (big-endian)"),
            Case("no_valid_folder", R, no_valid, "accepted", "valid/: no usable TEST")]


# ------------------------------------------------------------------ the data commands themselves
def _data_command_cases() -> list[Case]:
    X = "data"

    def synth_into_existing(root, _):
        return ["data", "synth", "echonet_dynamic", "--n", "1", "--out", "{root}"]

    def synth_n(n: int):
        return lambda root, scratch: ["data", "synth", "acdc", "--n", str(n), "--out", str(scratch / "twin")]

    def synth_unknown_format(root, scratch):
        return ["data", "synth", "echonet_dynamik", "--n", "1", "--out", str(scratch / "twin")]

    def synth_under_a_file(root, scratch):
        (scratch / "a_file").write_text("not a folder\n")
        return ["data", "synth", "echonet_dynamic", "--n", "1", "--out", str(scratch / "a_file" / "twin")]

    def verify_unknown_format(root, _):
        return ["data", "verify", "echo_dynamic", "{root}"]

    def cache_dir_is_a_file(root, scratch):
        (scratch / "cache_file").write_text("not a folder\n")
        return ["data", "cache", "echonet_dynamic", "{root}", "--cache-dir", str(scratch / "cache_file")]

    def cache_dir_read_only(root, scratch):
        (scratch / "ro").mkdir()
        (scratch / "ro").chmod(0o555)
        return ["data", "cache", "echonet_dynamic", "{root}", "--cache-dir", str(scratch / "ro" / "cache")]

    def synth_one(root, scratch):
        return ["data", "synth", "echonet_dynamic", "--n", "1", "--seed", "3", "--out", str(scratch / "new twin")]

    return [Case("synth_into_existing_folder", X, synth_into_existing, "refused", "already exists"),
            Case("synth_n_0", X, synth_n(0), "refused", "n=0"),
            Case("synth_negative_n", X, synth_n(-2), "refused", "n=-2"),
            Case("synth_unknown_format", X, synth_unknown_format, "refused", "echonet_dynamik"),
            Case("synth_out_under_a_file", X, synth_under_a_file, "refused", "a_file"),
            Case("synth_one_sample", X, synth_one, "accepted", "wrote 1-sample"),
            Case("verify_unknown_format", X, verify_unknown_format, "refused", "echo_dynamic"),
            Case("cache_dir_is_a_file", X, cache_dir_is_a_file, "refused", "cache_file"),
            Case("cache_dir_read_only", X, cache_dir_read_only, "refused", "ro", as_root=False)]


CASES: list[Case] = [*_echo_cases(), *_echo_more(), *_acdc_cases(), *_acdc_more(), *_ct_echo_cases(),
                     *_ct_echo_more(), *_ct_rate_cases(), *_ct_rate_more(), *_cli_cases(), *_data_command_cases()]
