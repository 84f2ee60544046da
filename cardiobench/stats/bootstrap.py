"""Bootstrap confidence intervals: percentile, basic and BCa, with cluster and stratified resampling.

Conventions follow ``scipy.stats.bootstrap`` (BCa per Efron & Tibshirani 1993, eq. 14.9-14.15;
z0 from the weak/strict percentile of the estimate among the replicates; acceleration from the
jackknife), with two additions the field needs:

* ``groups``: resample whole clusters (patients), not rows; the jackknife leaves out one cluster.
* ``strata``: resample clusters within each stratum (e.g. class-stratified AUC bootstraps).

Sum statistics (mean, MAE, RMSE, R²) take a fast path through resampled per-cluster sums.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
from scipy.special import ndtr, ndtri

from .inversion import bca_constants, invert
from .metrics import MEAN, SUM_STATISTICS, SumStatistic, auc
from .sampling import uniform_indices

Method = Literal["bca", "percentile", "basic"]
Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class BootstrapCI:
    estimate: float
    low: float
    high: float
    level: float
    method: str
    n_resamples: int
    n: int
    n_clusters: int | None = None
    note: str = ""  # why the interval is not the requested method's (a BCa fallback)

    def __repr__(self) -> str:
        unit = f", {self.n_clusters} clusters" if self.n_clusters is not None else ""
        return (f"BootstrapCI({self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}], {self.level:.0%} {self.method}, "
                f"B={self.n_resamples}, n={self.n}{unit})")

    def as_dict(self) -> dict:
        out = dict(value=self.estimate, low=self.low, high=self.high, level=self.level, method=self.method,
                   n_resamples=self.n_resamples, n=self.n, n_clusters=self.n_clusters)
        return {**out, "note": self.note} if self.note else out


def check_arrays(*arrays: Sequence, names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Convert to float arrays of one length with no NaN/inf, else ValueError saying which."""
    out = [np.asarray(a, dtype=float).ravel() for a in arrays]
    names = names or [f"array {i}" for i in range(len(out))]
    n = len(out[0])
    for a, name in zip(out, names):
        if len(a) != n:
            raise ValueError(f"length mismatch: {names[0]} has {n} values, {name} has {len(a)}")
        if not np.all(np.isfinite(a)):
            bad = np.flatnonzero(~np.isfinite(a))[:5]
            raise ValueError(f"{name} has NaN or inf at index {', '.join(map(str, bad))}")
    if n < 2:
        raise ValueError(f"need at least 2 values, got {n}")
    return out


class _Resampler:
    """Draws cluster indices (within strata) and maps clusters to rows."""

    def __init__(self, n: int, groups: Sequence | None, strata: Sequence | None):
        if groups is None:
            codes = np.arange(n)
        else:
            _, codes = np.unique(np.asarray(groups), return_inverse=True)
            if len(codes) != n:
                raise ValueError(f"groups has {len(codes)} values for {n} rows")
        self.codes = codes
        self.n_clusters = int(codes.max()) + 1
        order = np.argsort(codes, kind="stable")
        self.rows_sorted = order
        self.counts = np.bincount(codes, minlength=self.n_clusters)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        if strata is None:
            self.strata = [np.arange(self.n_clusters)]
        else:
            strata = np.asarray(strata)
            if len(strata) != n:
                raise ValueError(f"strata has {len(strata)} values for {n} rows")
            per_cluster = {}
            for c, s in zip(codes, strata):
                if per_cluster.setdefault(c, s) != s:
                    raise ValueError("a cluster spans several strata; stratify by a cluster-level variable")
            cs = np.array([per_cluster[c] for c in range(self.n_clusters)])
            self.strata = [np.flatnonzero(cs == s) for s in np.unique(cs)]

    def draw(self, rng: np.random.Generator, b: int) -> np.ndarray:
        """(b, n_clusters) resampled cluster ids (int64), each stratum keeping its own size."""
        if len(self.strata) == 1:  # the common case: no gather through the stratum's member list
            return uniform_indices(rng, self.n_clusters, (b, self.n_clusters))
        parts = [s[uniform_indices(rng, len(s), (b, len(s)))] for s in self.strata]
        return np.concatenate(parts, axis=1)

    def rows(self, clusters: np.ndarray) -> np.ndarray:
        """Row indices of a sequence of clusters (with repeats), concatenated."""
        lengths = self.counts[clusters]
        total = int(lengths.sum())
        starts = np.repeat(self.offsets[clusters] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        return self.rows_sorted[starts + np.arange(total)]

    def leave_one_out(self) -> Iterator[np.ndarray]:
        """Row indices without each cluster in turn, one at a time (all at once would be O(n^2) memory)."""
        for c in range(self.n_clusters):
            yield np.flatnonzero(self.codes != c)

    @property
    def one_row_each(self) -> bool:
        return len(self.codes) == self.n_clusters


def _resample_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """AUC, or NaN for an (unstratified) resample that drew one class only: such replicates are dropped."""
    y = np.asarray(y_true).astype(bool)
    return auc(y, score) if 0 < y.sum() < len(y) else float("nan")


def _resolve(statistic: str | Callable | SumStatistic) -> tuple[Callable, SumStatistic | None]:
    if isinstance(statistic, str):
        if statistic == "auc":
            return _resample_auc, None
        if statistic not in SUM_STATISTICS:
            raise ValueError(f"unknown statistic {statistic!r}; named ones: {', '.join([*SUM_STATISTICS, 'auc'])}")
        statistic = SUM_STATISTICS[statistic]
    if statistic is np.mean:  # the named mean's fast path, whatever the caller called it
        statistic = MEAN
    if isinstance(statistic, SumStatistic):
        return statistic, statistic
    return statistic, None


# Values per block of the vectorised paths, per array (measured on 2 cores at n = 10^5): jackknife blocks
# of 2^18 float64 (2 MiB) keep a statistic's temporaries in cache (2.3x faster than 2^21); replicate
# blocks are bound by the index draws and gathers, where 2^20 (8 MiB) was fastest.
JACKKNIFE_BLOCK, REPLICATE_BLOCK = 1 << 18, 1 << 20


def is_vectorized(statistic: str | Callable | SumStatistic, vectorized: bool | None) -> bool:
    """Whether a callable statistic takes ``axis`` and reduces along it (``scipy.stats.bootstrap``'s
    ``vectorized``); None: it does when its signature has an ``axis`` parameter."""
    fn, sumstat = _resolve(statistic)
    if sumstat is not None or isinstance(statistic, str):
        return False
    if vectorized is not None:
        return bool(vectorized)
    try:
        return "axis" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def _block(n_rows: int, total: int, elements: int) -> int:
    """Rows of ``n_rows`` values per block of about ``elements`` values (at least 1, at most ``total``)."""
    return max(1, min(total, elements // max(n_rows, 1)))


def _cluster_sums(mom: np.ndarray, resampler: _Resampler) -> np.ndarray:
    """Per-cluster column sums of the row moments, (n_clusters, k)."""
    csum = np.zeros((resampler.n_clusters, mom.shape[1]))
    np.add.at(csum, resampler.codes, mom)
    return csum


def _draw_replicates(statistic: str | Callable | SumStatistic, arrays: list[np.ndarray], n_resamples: int,
               rng: np.random.Generator, resampler: _Resampler, batch: int | None = None,
               vectorized: bool = False) -> np.ndarray:
    """Bootstrap replicates of ``statistic`` (length ``n_resamples``)."""
    fn, sumstat = _resolve(statistic)
    if isinstance(statistic, str) and statistic == "auc":
        return _auc_replicates(arrays[0], arrays[1], n_resamples, rng, resampler, batch)
    out = np.empty(n_resamples)
    if sumstat is not None:
        mom = sumstat.moments(*arrays)
        k = mom.shape[1]
        columns = [np.ascontiguousarray(c) for c in _cluster_sums(mom, resampler).T]
        counts = resampler.counts.astype(float)
        # With one row per cluster every resample has n rows: no gather of the counts needed.
        fixed_n = float(len(counts)) if np.all(resampler.counts == 1) else None
        # Blocks of ~500k indices (2 MB) stay in cache: measured 30 % faster than 16 MB blocks.
        b = batch or max(1, min(n_resamples, 500_000 // max(resampler.n_clusters, 1)))
        for i in range(0, n_resamples, b):
            idx = resampler.draw(rng, min(b, n_resamples - i))
            sums = np.stack([np.take(c, idx).sum(axis=1) for c in columns], axis=-1)
            n_rows = np.full(len(idx), fixed_n) if fixed_n is not None else counts[idx].sum(axis=1)
            out[i:i + len(idx)] = sumstat.finalize(sums, n_rows)
        return out
    if vectorized and resampler.one_row_each:  # resamples of n rows each: (b, n) blocks, one call per block
        ordered = [a[resampler.rows_sorted] for a in arrays]  # cluster c is row c
        b = batch or _block(len(arrays[0]), n_resamples, REPLICATE_BLOCK)
        for i in range(0, n_resamples, b):
            idx = resampler.draw(rng, min(b, n_resamples - i))
            out[i:i + len(idx)] = fn(*(a[idx] for a in ordered), axis=-1)
        return out
    for i in range(n_resamples):
        rows = resampler.rows(resampler.draw(rng, 1)[0])
        out[i] = fn(*(a[rows] for a in arrays))
    return out


def _auc_replicates(y_true: np.ndarray, score: np.ndarray, n_resamples: int, rng: np.random.Generator,
                    resampler: _Resampler, batch: int | None = None) -> np.ndarray:
    """Bootstrap replicates of the AUC, a block of resamples at a time: a resample is a multiplicity per
    cluster, so its AUC is the Mann-Whitney statistic with those row weights (ties count 1/2), taken over
    the rows sorted once by score: sum over tied-score groups k of P_k * (N_below_k + N_k / 2) / (P * N),
    P_k and N_k the weights of positives and negatives in group k. Equal to :func:`auc` on the resampled
    rows; a resample with one class only is NaN (dropped, as in the one-at-a-time path)."""
    y = np.asarray(y_true).astype(bool)
    order = np.argsort(np.asarray(score, dtype=float), kind="stable")
    s = np.asarray(score, dtype=float)[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])   # first row of each tied-score group
    codes, positive = resampler.codes[order], y[order]
    k = resampler.n_clusters
    out = np.empty(n_resamples)
    b = batch or _block(len(s) + k, n_resamples, REPLICATE_BLOCK)
    for i in range(0, n_resamples, b):
        idx = resampler.draw(rng, min(b, n_resamples - i))
        m = len(idx)
        mult = np.bincount((idx + k * np.arange(m)[:, None]).ravel(), minlength=m * k).reshape(m, k)
        w = mult[:, codes].astype(float)                     # (m, rows) in score order
        pos = np.add.reduceat(w * positive, starts, axis=1)
        neg = np.add.reduceat(w * ~positive, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        den = pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i:i + m] = np.where(den > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / den, np.nan)
    return out


def _leave_one_out_block(a: np.ndarray, first: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
    """(stop - first, n - 1): row k is ``a`` without element first + k. Left of ``first`` and right of
    ``stop`` every row holds the same values (two broadcast copies); only the band between them is
    gathered, so a block costs about one copy of its size, not a gather of it."""
    n, b = len(a), stop - first
    out = np.empty((b, n - 1), dtype=a.dtype) if out is None else out[:b]
    out[:, :first] = a[:first]
    out[:, stop - 1:] = a[stop:]
    band = np.arange(first, stop - 1)
    out[:, first:stop - 1] = a[band[None, :] + (band[None, :] >= np.arange(first, stop)[:, None])]
    return out


def jackknife(statistic: str | Callable | SumStatistic, arrays: list[np.ndarray], resampler: _Resampler,
              vectorized: bool = False) -> np.ndarray:
    """Leave-one-cluster-out values of the statistic, streamed: memory stays O(n) (a vectorised
    statistic with one row per cluster: blocks of leave-one-out rows, one call per block)."""
    fn, sumstat = _resolve(statistic)
    if sumstat is not None:
        csum = _cluster_sums(sumstat.moments(*arrays), resampler)
        total = csum.sum(axis=0)
        counts = resampler.counts.astype(float)
        return sumstat.finalize(total[None] - csum, counts.sum() - counts)
    if vectorized and resampler.one_row_each:
        n = len(arrays[0])
        ordered = [a[resampler.rows_sorted] for a in arrays]  # cluster c is row c of ``ordered``
        out = np.empty(n)
        b = _block(n - 1, n, JACKKNIFE_BLOCK)
        buffers = [np.empty((b, n - 1), dtype=a.dtype) for a in ordered]  # reused: fresh pages cost a fault each
        for i in range(0, n, b):
            stop = min(i + b, n)
            out[i:stop] = fn(*(_leave_one_out_block(a, i, stop, buf) for a, buf in zip(ordered, buffers)), axis=-1)
        return out
    return np.fromiter((fn(*(a[rows] for a in arrays)) for rows in resampler.leave_one_out()), float,
                       count=resampler.n_clusters)


def bca_levels(theta: float, theta_b: np.ndarray, theta_jack: np.ndarray, level: float) -> tuple[float, float]:
    """Adjusted percentiles (alpha_1, alpha_2) of the BCa interval (NaN when z0 or a is undefined)."""
    alpha = (1 - level) / 2
    z0, a = bca_constants(theta, theta_b, theta_jack)
    za = ndtri(alpha)
    lo = ndtr(z0 + (z0 + za) / (1 - a * (z0 + za)))
    hi = ndtr(z0 + (z0 - za) / (1 - a * (z0 - za)))
    return float(lo), float(hi)


def _check_options(method: str, level: float) -> None:
    if method not in ("bca", "percentile", "basic"):
        raise ValueError(f"method must be 'bca', 'percentile' or 'basic', not {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def statistic_bounds(statistic: str | Callable | SumStatistic) -> tuple[float, float]:
    """The range a statistic can take (R² <= 1, AUC and Dice in [0, 1], errors >= 0): no interval leaves it.
    A callable may declare it as a ``bounds`` attribute."""
    if isinstance(statistic, str):
        if statistic == "auc":
            return 0.0, 1.0
        statistic = SUM_STATISTICS.get(statistic, statistic)
    return tuple(getattr(statistic, "bounds", (-np.inf, np.inf)))


def _interval(statistic, arrs: list[np.ndarray], res: _Resampler, theta: float, theta_b: np.ndarray,
              method: str, level: float, theta_jack: np.ndarray | None = None,
              vectorized: bool = False) -> tuple[float, float, str, str]:
    """(low, high, method used, note): BCa falls back to the percentile interval, and says so, where
    its bias correction or acceleration is undefined or its adjusted levels are extreme."""
    theta_b = theta_b[np.isfinite(theta_b)]
    alpha = (1 - level) / 2
    if len(theta_b) == 0 or np.ptp(theta_b) == 0:
        return theta, theta, method, ""
    note = ""
    if method == "bca":
        jack = jackknife(statistic, arrs, res, vectorized) if theta_jack is None else theta_jack
        a1, a2 = bca_levels(theta, theta_b, jack, level)
        if np.isfinite(a1) and np.isfinite(a2) and 1 / len(theta_b) <= a1 < a2 <= 1 - 1 / len(theta_b):
            low, high = np.percentile(theta_b, [100 * a1, 100 * a2])
            return float(low), float(high), method, ""
        method, note = "percentile", (f"BCa adjusted levels undefined or extreme ({a1:.3g}, {a2:.3g}): "
                                      f"percentile interval")
    if method == "percentile":
        low, high = np.percentile(theta_b, [100 * alpha, 100 * (1 - alpha)])
    else:  # basic
        q_lo, q_hi = np.percentile(theta_b, [100 * alpha, 100 * (1 - alpha)])
        low, high = 2 * theta - q_hi, 2 * theta - q_lo
    return float(low), float(high), method, note


def bootstrap_ci(statistic: str | Callable | SumStatistic, *arrays: Sequence, level: float = 0.95,
                 n_resamples: int = 9999, method: Method = "bca", groups: Sequence | None = None,
                 strata: Sequence | None = None, seed: int | np.random.Generator | None = 0,
                 replicates: Sequence | None = None, vectorized: bool | None = None) -> BootstrapCI:
    """Bootstrap CI of ``statistic(*arrays)``.

    ``statistic``: a callable taking the (resampled) arrays and returning a float, or a name:
    ``"mean"``, ``"mae"``, ``"rmse"``, ``"r2"`` (fast sum paths; ``np.mean`` is the named mean) or
    ``"auc"`` (``(y_true, score)``). ``vectorized``: the callable takes ``axis`` and reduces the last
    axis of 2-D resamples (as in ``scipy.stats.bootstrap``); None: detected from its signature. Without
    ``groups``, a vectorised statistic is called once per block of resamples (and of jackknife
    leave-one-outs); memory stays bounded (``REPLICATE_BLOCK`` values per array) at any n.
    ``groups``: cluster ids; whole clusters are resampled. ``strata``: resample within strata.
    ``replicates``: bootstrap replicates drawn elsewhere (e.g. another library's
    ``bootstrap_distribution``) to build the interval from, instead of drawing ``n_resamples``.
    """
    _check_options(method, level)
    arrs = check_arrays(*arrays)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    res = _Resampler(len(arrs[0]), groups, strata)
    fn, _ = _resolve(statistic)
    vec = is_vectorized(statistic, vectorized)
    if statistic == "auc":
        auc(*arrs)  # refuses data with one class, where the AUC is undefined
    theta = float(fn(*arrs))
    if replicates is None:
        theta_b = _draw_replicates(statistic, arrs, n_resamples, rng, res, vectorized=vec)
    else:
        theta_b = np.asarray(replicates, dtype=float).ravel()
        n_resamples = len(theta_b)
    low, high, used, note = _interval(statistic, arrs, res, theta, theta_b, method, level, vectorized=vec)
    lo_b, hi_b = statistic_bounds(statistic)
    return BootstrapCI(theta, float(np.clip(low, lo_b, hi_b)), float(np.clip(high, lo_b, hi_b)), level, used,
                       n_resamples, len(arrs[0]), res.n_clusters if groups is not None else None, note)


@dataclass(frozen=True)
class PairedDiff:
    """metric(a) - metric(b) on the same samples, with a bootstrap CI and two-sided p-value."""

    metric: str
    estimate_a: float
    estimate_b: float
    diff: float
    low: float
    high: float
    p_value: float
    level: float
    method: str
    n_resamples: int
    n: int
    n_clusters: int | None = None
    alternative: str = "two-sided"
    note: str = ""           # why the interval is not the requested method's (a BCa fallback)
    p_floor: float = 0.0     # the smallest p the resamples can give (a p at it means "below")
    p_two_sided: float | None = None  # the two-sided p of the same replicates (compare, leaderboard)

    def __repr__(self) -> str:
        return (f"PairedDiff({self.metric}: {self.estimate_a:.4g} - {self.estimate_b:.4g} = {self.diff:.4g} "
                f"[{self.low:.4g}, {self.high:.4g}], {self.level:.0%} {self.method}, p={self.p_value:.4g}, "
                f"B={self.n_resamples}, n={self.n})")

    def as_dict(self) -> dict:
        return dict(metric=self.metric, a=self.estimate_a, b=self.estimate_b, diff=self.diff, low=self.low,
                    high=self.high, p_value=self.p_value, level=self.level, method=self.method,
                    n_resamples=self.n_resamples, n=self.n, n_clusters=self.n_clusters,
                    alternative=self.alternative, note=self.note, p_floor=self.p_floor)


def _difference(statistic: str | Callable | SumStatistic, k: int) -> Callable | SumStatistic:
    """The statistic (*arrays_a, *arrays_b) -> metric(*arrays_a) - metric(*arrays_b), ``k`` arrays each,
    keeping the fast sum path."""
    fn, sumstat = _resolve(statistic)
    if sumstat is None:
        def diff(*arrs, **kw):  # kw: ``axis`` of a vectorised metric, passed through
            return fn(*arrs[:k], **kw) - fn(*arrs[k:], **kw)
        return diff

    def moments(*arrs):
        return np.hstack([sumstat.moments(*arrs[:k]), sumstat.moments(*arrs[k:])])

    def finalize(sums, counts):
        m = sums.shape[-1] // 2
        return sumstat.finalize(sums[..., :m], counts) - sumstat.finalize(sums[..., m:], counts)

    return SumStatistic(f"{sumstat.name}_diff", moments, finalize, f"difference of {sumstat.definition}")


def paired_bootstrap_diff(metric: str | Callable | SumStatistic, y_true: Sequence, pred_a: Sequence,
                          pred_b: Sequence, groups: Sequence | None = None, level: float = 0.95,
                          n_resamples: int = 9999, method: Method = "bca", strata: Sequence | None = None,
                          seed: int | np.random.Generator | None = 0,
                          alternative: Alternative = "two-sided", vectorized: bool | None = None) -> PairedDiff:
    """CI of ``metric(y, a) - metric(y, b)`` from one joint resampling of (patients of) the same samples.

    The interval and the p-value come from one set of replicates by test inversion
    (:func:`cardiobench.stats.inversion.invert`): the two-sided ``level`` interval excludes 0 exactly
    when the two-sided p < 1 - level, so the CI and the test never disagree. ``alternative="greater"``
    (H1: a - b > 0) and ``"less"`` give one-sided p-values (``p_two_sided`` keeps the two-sided one);
    the interval stays two-sided.
    """
    y, a, b = check_arrays(y_true, pred_a, pred_b, names=["y_true", "pred_a", "pred_b"])
    return paired_bootstrap_diff_rows(metric, (y, a), (y, b), groups=groups, level=level,
                                      n_resamples=n_resamples, method=method, strata=strata, seed=seed,
                                      alternative=alternative, vectorized=vectorized)


def paired_bootstrap_diff_rows(metric: str | Callable | SumStatistic, arrays_a: Sequence[Sequence],
                               arrays_b: Sequence[Sequence], groups: Sequence | None = None, level: float = 0.95,
                               n_resamples: int = 9999, method: Method = "bca", strata: Sequence | None = None,
                               seed: int | np.random.Generator | None = 0,
                               alternative: Alternative = "two-sided", vectorized: bool | None = None) -> PairedDiff:
    """As :func:`paired_bootstrap_diff` for a metric of several per-row arrays per model, e.g. pooled
    Dice from ``(|P & T|, |P| + |T|)`` of model a and of model b on the same rows (``vectorized``: as in
    :func:`bootstrap_ci`)."""
    _check_options(method, level)
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', not {alternative!r}")
    if len(arrays_a) != len(arrays_b):
        raise ValueError(f"arrays_a has {len(arrays_a)} arrays, arrays_b {len(arrays_b)}")
    k = len(arrays_a)
    arrs = check_arrays(*arrays_a, *arrays_b, names=[f"a[{i}]" for i in range(k)] + [f"b[{i}]" for i in range(k)])
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    res = _Resampler(len(arrs[0]), groups, strata)
    fn, _ = _resolve(metric)
    if metric == "auc":
        auc(*arrs[:k])  # refuses data with one class, where the AUC is undefined
    diff_stat = _difference(metric, k)
    vec = is_vectorized(metric, vectorized)
    est_a, est_b = float(fn(*arrs[:k])), float(fn(*arrs[k:]))
    d = est_a - est_b
    d_b = _draw_replicates(diff_stat, arrs, n_resamples, rng, res, vectorized=vec)
    jack = jackknife(diff_stat, arrs, res, vec) if method == "bca" else None
    lo_b, hi_b = statistic_bounds(metric)
    inv = invert(d, d_b, method, level, alternative, jack, bounds=(lo_b - hi_b, hi_b - lo_b))
    name = metric if isinstance(metric, str) else getattr(metric, "name", getattr(metric, "__name__", "metric"))
    return PairedDiff(name, est_a, est_b, d, inv.low, inv.high, inv.p_value, level, inv.method, n_resamples,
                      len(arrs[0]), res.n_clusters if groups is not None else None, alternative, inv.note,
                      inv.p_floor, inv.p_two_sided)
