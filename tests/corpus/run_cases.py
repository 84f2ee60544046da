"""Corpus cases for the run-folder commands (``run`` resume, ``evaluate``, ``compare``, ``check``,
``report``) and the config's values. A case's run folder is written from predictions in the scratch
folder (no training): the finished echonet_ef run a ``cardiobench evaluate`` would leave, scored
against the copied twin's TEST split."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .cases import Case, _truncate

X = "run"  # the cases' format column: they break run folders and settings, not a dataset
DECOYS = (".results.20261207.csv", ".foo.tmp", ".x.partial", ".last.pt.k3x_9a2b.pt")


def _template(root: str) -> tuple[str, str, str, str]:
    """(config.yaml, manifest.json, predictions.csv, metrics.json) of a finished run on the twin at ``root``.
    Made once: every case's twin is a copy of the same clean twin, so only the folder's name differs."""
    first, texts = _first_template(root)
    return tuple(t.replace(first, root) for t in texts)  # type: ignore[return-value]


_MADE: dict[str, tuple[str, tuple[str, ...]]] = {}


def _first_template(root: str) -> tuple[str, tuple[str, ...]]:
    if "echonet_ef" not in _MADE:
        _MADE["echonet_ef"] = (root, _make_template(root))
    return _MADE["echonet_ef"]


def _make_template(root: str) -> tuple[str, ...]:
    import numpy as np
    import pandas as pd
    from omegaconf import OmegaConf

    from cardiobench.config import compose, spec_of
    from cardiobench.data.source import resolve_source
    from cardiobench.evaluation import evaluate
    from cardiobench.io import json_default

    cfg = compose("echonet_ef", profile="smoke", overrides=[f"data.root={root}", "ci.n_resamples=200"])
    fl = pd.read_csv(Path(root) / "FileList.csv")
    test = fl[fl.Split.str.upper() == "TEST"].reset_index(drop=True)
    pred = pd.DataFrame({"sample_id": test.FileName.astype(str), "patient_id": test.FileName.astype(str),
                         "split": "TEST", "EF": test.EF.astype(float), "EF_pred": test.EF.astype(float) + 3.0,
                         "mode": "single_clip"})
    manifest = dict(task="echonet_ef", task_version=int(cfg.task.version), baseline=str(cfg.baseline.name),
                    profile="smoke", model=str(cfg.model.name), seed=0, status="finished",
                    started="2026-12-07T00:00:00+00:00", ended="2026-12-07T00:01:00+00:00", git_commit="corpus",
                    data={"root": root, "is_twin": True, "format": "echonet_dynamic",
                          "fingerprint": resolve_source(cfg).fingerprint})
    csv = pred.to_csv(index=False, float_format="%.6f")
    with np.errstate(all="ignore"):  # a few TEST videos: some bootstrap draw has a constant column (pearson 0/0)
        metrics = evaluate(pred, spec_of(cfg), cfg.ci)
    return (OmegaConf.to_yaml(cfg, resolve=True), json.dumps(manifest, indent=2), csv,
            json.dumps(metrics, indent=2, default=json_default))


def _run(root: Path, scratch: Path, name: str = "run") -> Path:
    """A finished run folder ``scratch/name`` scored on ``root``'s TEST split."""
    config, manifest, pred, metrics = _template(str(root))
    path = scratch / name
    path.mkdir(parents=True)
    for file, text in (("config.yaml", config), ("manifest.json", manifest), ("predictions.csv", pred),
                       ("metrics.json", metrics)):
        (path / file).write_text(text)
    return path


def _edit_run(edit: Callable[[Path], None], name: str = "run") -> Callable[[Path, Path], Path]:
    def make(root: Path, scratch: Path) -> Path:
        path = _run(root, scratch, name)
        edit(path)
        return path
    return make


def _predictions(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        f = run / "predictions.csv"
        f.write_text("\n".join(edit(f.read_text().splitlines())) + "\n")
    return apply


def _cell(lines: list[str], row: int, col: str, value: str) -> list[str]:
    head = lines[0].split(",")
    cells = lines[row].split(",")
    cells[head.index(col)] = value
    return [*lines[:row], ",".join(cells), *lines[row + 1:]]


def _drop_column(col: str) -> Callable[[list[str]], list[str]]:
    def drop(lines: list[str]) -> list[str]:
        i = lines[0].split(",").index(col)
        return [",".join(c for k, c in enumerate(line.split(",")) if k != i) for line in lines]
    return drop


def _reference(root: Path, scratch: Path, **changes) -> tuple[Path, Path]:
    """(run, reference JSON) where the reference is the run's own, with ``changes`` written over it."""
    from cardiobench.check import write_reference
    from cardiobench.runs import Run

    run = _run(root, scratch)
    ref = scratch / "reference" / "echonet_ef.json"
    write_reference(Run(run), ref, None, "corpus")
    ref.write_text(json.dumps({**json.loads(ref.read_text()), **changes}))
    return run, ref


def _tiny(*overrides: str) -> list[str]:
    return ["run", "--task", "echonet_ef", "--profile", "tiny", "report=false", *overrides]


# ------------------------------------------------------------------ run: resume and settings
def _run_cases() -> list[Case]:
    def resume_on_user_folder(root, scratch):
        folder = scratch / "my_folder"
        (folder / "notes").mkdir(parents=True)
        for name in DECOYS:
            (folder / name).write_text("mine")
            (folder / "notes" / name).write_text("mine")
        return _tiny("--run-dir", str(folder), "resume=true", "data.root={root}")

    def run_dir_is_a_file(root, scratch):
        (scratch / "results.csv").write_text("mine\n")
        return _tiny("--run-dir", str(scratch / "results.csv"), "data.root={root}")

    def run_dir_with_grammar_characters(root, scratch):
        return _tiny("--run-dir", str(scratch / "run(1),a=b[x]"), "--cfg", "job")  # no space: YAML would wrap it

    def data_root_with_parentheses(root, scratch):
        return _tiny(f"data.root={scratch / 'my data(1)'}")

    def out_of_range(override: str):
        return lambda root, scratch: _tiny(override)

    return [Case("resume_on_a_folder_of_user_files", X, resume_on_user_folder, "refused", "not a run folder"),
            Case("run_dir_is_a_file", X, run_dir_is_a_file, "refused", "results.csv"),
            Case("run_dir_with_grammar_characters", X, run_dir_with_grammar_characters, "accepted", "run(1),a=b[x]"),
            Case("path_with_parentheses_unquoted", X, data_root_with_parentheses, "refused", "quote the value"),
            Case("ci_level_above_1", X, out_of_range("ci.level=1.5"), "refused", "ci.level must be in (0, 1)"),
            Case("negative_bootstrap_count", X, out_of_range("ci.n_resamples=-5"), "refused", "ci.n_resamples"),
            Case("negative_epochs", X, out_of_range("train.epochs=-1"), "refused", "train.epochs must be >= 0"),
            Case("zero_batch_size", X, out_of_range("train.batch_size=0"), "refused", "train.batch_size"),
            Case("negative_seed", X, out_of_range("seed=-1"), "refused", "seed=-1")]


# ------------------------------------------------------------------ evaluate
def _evaluate_cases() -> list[Case]:
    def evaluate(edit: Callable[[Path], None]):
        return lambda root, scratch: ["evaluate", str(_edit_run(edit)(root, scratch))]

    def truncated_config(run: Path) -> None:
        (run / "config.yaml").write_text("task:\n  name: [echonet_ef\n")

    return [Case("evaluate_prediction_out_of_range", X,
                 evaluate(_predictions(lambda L: _cell(_cell(L, 1, "EF_pred", "250"), 2, "EF_pred", "-20"))),
                 "accepted", "outside the range"),
            Case("evaluate_nan_prediction", X, evaluate(_predictions(lambda L: _cell(L, 2, "EF_pred", "nan"))),
                 "refused", "EF_pred has a missing, NaN or non-numeric value on line(s) 3"),
            Case("evaluate_missing_column", X, evaluate(_predictions(_drop_column("EF"))), "refused",
                 "lacks column(s) EF"),
            Case("evaluate_empty_predictions", X, evaluate(lambda r: (r / "predictions.csv").write_text("")),
                 "refused", "predictions.csv"),
            Case("evaluate_damaged_config", X, evaluate(truncated_config), "refused", "config.yaml")]


# ------------------------------------------------------------------ compare and check
def _compare_check_cases() -> list[Case]:
    def compare(edit_b: Callable[[Path], None], *extra: str):
        def make(root, scratch):
            a = _run(root, scratch, "a")
            b = _edit_run(edit_b, "b")(root, scratch)
            return ["compare", str(a), str(b), "--n-resamples", "200", *extra]
        return make

    def check_null(key: str):
        def make(root, scratch):
            run, ref = _reference(root, scratch, **{key: None})
            return ["check", str(run), "--reference", str(ref)]
        return make

    def check_tolerance_text(root, scratch):
        run, ref = _reference(root, scratch, tolerance="half")
        return ["check", str(run), "--reference", str(ref)]

    def check_truncated_manifest(root, scratch):
        run, ref = _reference(root, scratch)
        _truncate(run / "manifest.json")
        return ["check", str(run), "--reference", str(ref)]

    def negative_tolerance(root, scratch):
        return ["check", str(_run(root, scratch)), "--reference", str(scratch / "ref.json"), "--write-reference",
                "--tolerance", "-1"]

    return [Case("compare_truncated_predictions", X, compare(lambda r: _truncate(r / "predictions.csv", 0.3)),
                 "refused", "scored on different test sets"),
            Case("compare_empty_predictions", X, compare(lambda r: (r / "predictions.csv").write_text("")),
                 "refused", "predictions.csv"),
            Case("compare_damaged_config", X, compare(lambda r: (r / "config.yaml").write_text("[")), "refused",
                 "config.yaml"),
            Case("compare_negative_resamples", X, compare(lambda r: None, "--n-resamples", "-1"), "refused",
                 "--n-resamples"),
            Case("check_reference_value_null", X, check_null("value"), "refused", "'value' is null"),
            Case("check_reference_tolerance_null", X, check_null("tolerance"), "refused", "'tolerance' is null"),
            Case("check_reference_tolerance_text", X, check_tolerance_text, "refused",
                 "'tolerance' must be a number"),
            Case("check_truncated_manifest", X, check_truncated_manifest, "refused", "manifest.json"),
            Case("check_write_negative_tolerance", X, negative_tolerance, "refused", "--tolerance")]


# ------------------------------------------------------------------ report
def _report_cases() -> list[Case]:
    def report_with(damaged: str):
        def make(root, scratch):
            _run(root, scratch / "runs", "good")
            _truncate(_run(root, scratch / "runs", "bad") / damaged)
            return ["report", str(scratch / "runs"), "--out", str(scratch / "site")]
        return make

    def out_is_a_file(root, scratch):
        _run(root, scratch / "runs", "good")
        (scratch / "site.html").write_text("mine")
        return ["report", str(scratch / "runs"), "--out", str(scratch / "site.html")]

    return [Case("report_truncated_manifest", X, report_with("manifest.json"), "accepted", "skipped run folder"),
            Case("report_truncated_metrics", X, report_with("metrics.json"), "accepted", "skipped run folder"),
            Case("report_out_is_a_file", X, out_is_a_file, "refused", "must be a folder")]


RUN_CASES: list[Case] = [*_run_cases(), *_evaluate_cases(), *_compare_check_cases(), *_report_cases()]
