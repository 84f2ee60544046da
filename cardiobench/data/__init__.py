"""Dataset formats by name: a reader of one real on-disk layout plus a writer of its synthetic twin.

A format (``register_format(name, obj)``; built-ins load lazily, out-of-tree ones through the
include path or the ``cardiobench.formats`` entry points) provides::

    name, twin_version, index_files, description
    index(root) -> (samples, problems)     one row per usable sample: sample_id, patient_id, split,
                                           path, and the dataset's labels; problems name file and row
    verify(root, decode=True, progress=True, workers=2) -> [Problem]
    preprocess_config(size) -> dict        what a cached sample depends on besides its file
    preprocess(path, config) -> ({name: array}, metadata)    one sample, decoded once
    synthesize(out, n, seed, workers, progress) -> Path      the twin, in exactly the real layout
    normalize_id(text) -> str              sample ids as users write them -> as the index has them
    companions(path) -> [Path]             optional: the other files a sample is decoded from (its
                                           ground truth...); editing one refreshes the cached sample

A format module builds its object with :func:`module_format` (:mod:`cardiobench.data.format`, which
also holds the :class:`Format` protocol); it imports that module, never this registry.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import CardiobenchError
from .format import FUNCTIONS, Format, module_format  # noqa: F401  (module_format: imported from here too)

BUILTIN = {"echonet_dynamic": "cardiobench.data.echonet_dynamic", "acdc": "cardiobench.data.acdc",
           "ct_echo": "cardiobench.data.ct_echo", "ct_rate": "cardiobench.data.ct_rate"}
_FORMATS: dict[str, Any] = {}


def register_format(name: str, fmt: Any) -> Any:
    """Register a format object (anything with the :class:`Format` attributes) under ``name``."""
    missing = [a for a in (*FUNCTIONS, "twin_version", "index_files") if not hasattr(fmt, a)]
    if missing:
        raise TypeError(f"format {name!r} lacks {', '.join(missing)}")
    _FORMATS[name] = fmt
    return fmt


def format_names(plugins_too: bool = True) -> list[str]:
    """Known formats; ``plugins_too=False`` skips importing include-path code (cheap, for --help)."""
    if plugins_too:
        from .. import plugins

        plugins.load_code()
    return sorted({*BUILTIN, *_FORMATS})


def get_format(name: str) -> Format:
    """The format registered as ``name`` (CardiobenchError listing the known ones otherwise)."""
    if name not in _FORMATS and name in BUILTIN:
        register_format(name, importlib.import_module(BUILTIN[name]).FORMAT)
    if name not in _FORMATS:
        from .. import plugins

        plugins.load_code()
    if name not in _FORMATS:
        raise CardiobenchError(f"no reader for format {name!r}; known: {', '.join(format_names())}")
    return _FORMATS[name]
