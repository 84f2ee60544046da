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

    def utf16_csv(root, _):
        _edit_csv(root / flist, lambda L: L, encoding="utf-16")
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
            Case("non_utf8_csv", E, utf16_csv, "refused", "FileList.csv"),
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
        from cardiobench.data import acdc as fmt
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
            Case("label_map_not_integer", A, gt_float_labels, "refused", "_gt.nii.gz"),
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


CASES: list[Case] = [*_echo_cases(), *_acdc_cases(), *_ct_echo_cases(), *_ct_rate_cases(), *_cli_cases()]
