"""EchoNet-Dynamic videos for the echo tasks, through the shared preparation step (read, validated,
decoded once, problems to skipped.csv, split from FileList.csv's Split column)."""
from __future__ import annotations

from typing import Any

import pandas as pd
from omegaconf import DictConfig

from ...data.source import DataSource
from ...runs import Run
from ..prepare import Inspector, Prepared, cached_loader, prepare
from . import format as echonet_dynamic


def prepare_echo(cfg: DictConfig, run: Run, source: DataSource, size: int, inspect: Inspector | None = None,
                 index: echonet_dynamic.EchoNetDynamic | None = None
                 ) -> tuple[echonet_dynamic.EchoNetDynamic, Prepared]:
    """(the dataset's index, the prepared videos): ``Prepared.arrays`` are the usable videos as uint8
    (frames, size, size); videos that fail to decode are dropped and reported, never silently.
    ``index``: the folder already read (:func:`format.read`)."""
    ds = index if index is not None else echonet_dynamic.read(source.root)
    load = cached_loader(cfg, size, id_column="FileName")

    def frames(samples: pd.DataFrame) -> tuple[list[Any], list]:
        arrays, problems = load(samples)
        return [None if a is None else a["frames"] for a in arrays], problems

    return ds, prepare(run, source, ds.samples, ds.problems, frames, sources=echonet_dynamic.split_sources(source.root),
                       split_columns=["FileName", "Split"], split_column="Split", what="videos", inspect=inspect)
