"""What a dataset format is: the :class:`Format` protocol (see :mod:`cardiobench.data`) and
:func:`module_format`, which makes the format object of a format module.

Format modules import this module, not the registry in :mod:`cardiobench.data`, which imports
the built-in formats by name."""
from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any, Protocol


class Format(Protocol):
    name: str
    twin_version: int
    index_files: tuple[str, ...]
    description: str

    def index(self, root): ...
    def verify(self, root, decode: bool = True, progress: bool = True, workers: int = 2): ...
    def preprocess_config(self, size: int) -> dict: ...
    def preprocess(self, path, config: dict): ...
    def synthesize(self, out, n: int, seed: int, workers: int = 2, progress: bool = True): ...
    def normalize_id(self, text: str) -> str: ...


FUNCTIONS = ("index", "verify", "preprocess_config", "preprocess", "synthesize", "normalize_id")


def module_format(module: ModuleType, description: str, index_files: tuple[str, ...] = (),
                  extras: tuple[str, ...] = (), **attrs: Any) -> SimpleNamespace:
    """The format object of a format module: its ``NAME``, ``TWIN_VERSION`` and the :data:`FUNCTIONS`,
    plus the named ``extras`` (format-specific readers such as ``read_case``) and plain ``attrs``
    (e.g. ``default_twin_n``, the size ``data synth`` writes when no ``--n`` is given)."""
    fmt = SimpleNamespace(name=module.NAME, twin_version=module.TWIN_VERSION, index_files=tuple(index_files),
                          description=description, origin=f"{module.__name__} ({module.__file__})", **attrs)
    for fn in (*FUNCTIONS, *extras):
        setattr(fmt, fn, getattr(module, fn))
    return fmt
