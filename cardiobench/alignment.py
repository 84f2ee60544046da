"""Two prediction tables of one task on the same rows: one evaluation variant of a table, and two
tables put in one row order (refusing different test sets). Used by ``compare``, seed groups,
``check`` and the report."""
from __future__ import annotations

import pandas as pd

from . import evaluation
from .errors import CardiobenchError
from .spec import TaskSpec


def one_variant(df: pd.DataFrame, spec: TaskSpec, prefer: list[str] | None = None) -> pd.DataFrame:
    """The rows of one evaluation variant: the first of ``prefer`` present, else the file's first (primary)."""
    have = evaluation.variants(df, spec)
    if len(have) <= 1:
        return df
    pick = next((v for v in prefer or [] if v in have), have[0])
    return evaluation.rows_of(df, spec, pick)


def align_predictions(a: pd.DataFrame, b: pd.DataFrame, spec: TaskSpec, name_a: str,
                      name_b: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two prediction tables of one task in the same row order; refuses different test sets.

    A table with several variants (echo modes, ACDC artifacts) is compared in one: the variant the
    other table has too, else its primary one; when the spec compares a metric across variants
    (``variants: table``, e.g. robustness), every variant both tables have, primary first.
    """
    va, vb = evaluation.variants(a, spec), evaluation.variants(b, spec)
    common = [v for v in va if v in vb]
    across = len(common) > 1 and any(m.variants == "table" for m in spec.compared.values())
    if across:
        a = a[a[spec.variant].astype(str).isin(common)]
        b = b[b[spec.variant].astype(str).isin(common)]
    else:
        a = one_variant(a, spec, vb)
        b = one_variant(b, spec, evaluation.variants(a, spec))
    key = [*spec.row_keys, *([spec.variant] if across else [])]
    for name, df in ((name_a, a), (name_b, b)):
        missing = [k for k in key if k not in df.columns]
        if missing:
            raise CardiobenchError(f"{name}: predictions lack the row key column(s) {', '.join(missing)}")
    ka, kb = set(map(tuple, a[key].astype(str).to_numpy())), set(map(tuple, b[key].astype(str).to_numpy()))
    if ka != kb:
        only_a, only_b = sorted(ka - kb), sorted(kb - ka)

        def show(s):
            return ", ".join("/".join(x) for x in s[:5]) + (" ..." if len(s) > 5 else "")

        raise CardiobenchError(
            f"the runs were scored on different test sets: {len(only_a)} sample(s) only in {name_a}"
            f"{' (' + show(only_a) + ')' if only_a else ''}, {len(only_b)} only in {name_b}"
            f"{' (' + show(only_b) + ')' if only_b else ''}; compare needs the same samples")
    order = {v: i for i, v in enumerate(common)}  # the primary variant's rows stay first

    def sort(df: pd.DataFrame) -> pd.DataFrame:
        rank = df[spec.variant].astype(str).map(order) if across else 0
        return df.assign(_rank=rank).sort_values(["_rank", *key]).drop(columns="_rank").reset_index(drop=True)

    a, b = sort(a), sort(b)
    for col in spec.targets:
        if col in a.columns and col in b.columns and not (a[col].round(4) == b[col].round(4)).all():
            raise CardiobenchError(f"the runs disagree on the ground truth column {col!r} for the same samples "
                                   f"(different data versions?): {name_a} vs {name_b}")
    return a, b
