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

A format module builds its object ``FORMAT`` with :func:`module_format` (:mod:`cardiobench.data.format`,
which also holds the :class:`Format` protocol); a family declares the module (``FORMATS`` in its
``__init__.py``) and the registry imports and registers it on first lookup.
"""
from __future__ import annotations

from typing import Any

from .. import families
from ..registry import Registry
from .format import FUNCTIONS, Format, module_format  # noqa: F401  (module_format: imported from here too)

FORMATS: Registry[Any] = Registry("format", lambda: families.formats(),
                                  hint="out-of-tree formats: CARDIOBENCH_INCLUDE=folder",
                                  on_import=lambda name, module: register_format(name, module.FORMAT))


def register_format(name: str, fmt: Any) -> Any:
    """Register a format object (anything with the :class:`Format` attributes) under ``name``."""
    missing = [a for a in (*FUNCTIONS, "twin_version", "index_files") if not hasattr(fmt, a)]
    if missing:
        raise TypeError(f"format {name!r} lacks {', '.join(missing)}")
    return FORMATS.register(name, fmt, origin=getattr(fmt, "origin", None))


def format_names(plugins_too: bool = True) -> list[str]:
    """Known formats; ``plugins_too=False`` skips importing include-path code (cheap, for --help)."""
    return FORMATS.names(plugins_too)


def get_format(name: str) -> Format:
    """The format registered as ``name`` (CardiobenchError listing the known ones otherwise)."""
    return FORMATS.get(name)
