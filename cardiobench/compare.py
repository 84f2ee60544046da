"""Paired comparison of two runs on the same test samples (``cardiobench compare``)."""
from __future__ import annotations

import pandas as pd

from . import tasks
from .errors import CardiobenchError
from .runs import Run


def align(run_a: Run, run_b: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' predictions in the same sample order; refuses different tasks or test sets."""
    ta, tb = run_a.config().task.name, run_b.config().task.name
    if ta != tb:
        raise CardiobenchError(f"{run_a.path} is task {ta!r} but {run_b.path} is task {tb!r}")
    return align_predictions(run_a.predictions(), run_b.predictions(), tasks_targets(run_a),
                             str(run_a.path), str(run_b.path))


def align_predictions(a: pd.DataFrame, b: pd.DataFrame, targets: list[str], name_a: str,
                      name_b: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two prediction tables of one task in the same sample order; refuses different test sets."""
    # A run evaluated in several modes (single clip, all clips, beat-by-beat) is compared in one:
    # the mode the other run has too, else its primary (first) mode.
    a = one_mode(a, modes(b))
    b = one_mode(b, modes(a))
    key = ["sample_id"]
    ka, kb = set(map(tuple, a[key].astype(str).to_numpy())), set(map(tuple, b[key].astype(str).to_numpy()))
    if ka != kb:
        only_a, only_b = sorted(ka - kb), sorted(kb - ka)

        def show(s):
            return ", ".join("/".join(x) for x in s[:5]) + (" ..." if len(s) > 5 else "")

        raise CardiobenchError(
            f"the runs were scored on different test sets: {len(only_a)} sample(s) only in {name_a}"
            f"{' (' + show(only_a) + ')' if only_a else ''}, {len(only_b)} only in {name_b}"
            f"{' (' + show(only_b) + ')' if only_b else ''}; compare needs the same samples")
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    for col in targets:
        if col in a.columns and col in b.columns and not (a[col].round(4) == b[col].round(4)).all():
            raise CardiobenchError(f"the runs disagree on the ground truth column {col!r} for the same samples "
                                   f"(different data versions?): {name_a} vs {name_b}")
    return a, b


def modes(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["mode"].astype(str))) if "mode" in df.columns else []


def one_mode(df: pd.DataFrame, prefer: list[str]) -> pd.DataFrame:
    """The rows of one evaluation mode: the first of ``prefer`` present, else the file's first mode."""
    have = modes(df)
    if len(have) <= 1:
        return df
    pick = next((m for m in prefer if m in have), have[0])
    return df[df["mode"].astype(str) == pick].reset_index(drop=True)


def tasks_targets(run: Run) -> list[str]:
    return list(run.config().task.targets)


def compare_runs(run_a: Run, run_b: Run, level: float = 0.95, n_resamples: int = 9999) -> list[dict]:
    a, b = align(run_a, run_b)
    return tasks.get(run_a.config().task.name).compare(a, b, level=level, n_resamples=n_resamples)


def format_table(rows: list[dict], name_a: str, name_b: str) -> str:
    lines = [f"a = {name_a}", f"b = {name_b}",
             f"{'metric':<9} {'a':>9} {'b':>9} {'a - b':>9} {'95% CI of a - b':>22} {'p':>9}  test"]
    for r in rows:
        ci = f"[{r['low']:.4g}, {r['high']:.4g}]"
        lines.append(f"{r['metric']:<9} {r['a']:>9.4g} {r['b']:>9.4g} {r['diff']:>9.4g} {ci:>22} "
                     f"{r['p_value']:>9.3g}  {r['test']}")
    return "\n".join(lines)
