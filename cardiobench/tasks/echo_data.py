"""EchoNet-Dynamic videos for the echo tasks: read, validated, decoded once (the cache), split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from ..data import echonet_dynamic, source as data_source
from ..data.problems import Problem, require_splits
from ..data.source import DataSource


def load_echo(cfg: DictConfig, source: DataSource, size: int) -> tuple[echonet_dynamic.EchoNetDynamic, pd.DataFrame,
                                                                        list[np.ndarray], list[Problem]]:
    """(folder, usable samples, their uint8 videos at ``size`` px, problems): videos that fail to
    decode are dropped from the samples and reported among the problems, never silently."""
    ds = echonet_dynamic.read(source.root)
    arrays, problems = data_source.load(cfg, list(ds.samples.FileName), list(ds.samples.path), size)
    ok = np.array([a is not None for a in arrays])
    return ds, ds.samples[ok].reset_index(drop=True), [a["frames"] for a in arrays if a is not None], \
        [*ds.problems, *problems]


def split_indices(samples: pd.DataFrame, root: Path, what: str = "videos") -> dict[str, np.ndarray]:
    """Row indices of TRAIN, VAL and TEST; DataError naming the empty split and FileList.csv when a
    split has no usable sample."""
    return require_splits(list(samples.Split), echonet_dynamic.split_sources(root), what, root)
