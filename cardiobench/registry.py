"""One kind of registry for every named thing a spec or recipe refers to: formats, tasks, models,
metrics, losses and figure kinds.

Each name is registered once. A name registered a second time from another place is refused, with
both origins named (two plugins defining ``unet`` would otherwise silently replace one another,
and which one ran would depend on import order). Built-in entries are found lazily through the
dataset families' declarations (:mod:`cardiobench.families`), out-of-tree ones through the include
path and entry points (:mod:`cardiobench.plugins`), so looking up one name imports only its module.
"""
from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Callable, Generic, Iterator, TypeVar

from .errors import CardiobenchError

T = TypeVar("T")


class DuplicateName(CardiobenchError):
    """A name registered twice from two places."""


def origin_of(obj: object) -> str:
    """Where ``obj`` was defined, in words: ``module.qualname (file:line)`` as far as Python knows."""
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(obj).__name__)}"
    try:
        return f"{name} ({inspect.getsourcefile(target)}:{inspect.getsourcelines(target)[1]})"
    except (OSError, TypeError):
        return name


class Registry(Generic[T]):
    """Named entries of one ``kind``; ``builtin()`` gives ``{name: module}`` to import on first lookup."""

    def __init__(self, kind: str, builtin: Callable[[], dict[str, str]] | None = None,
                 hint: str = "out-of-tree code: CARDIOBENCH_INCLUDE=folder or an entry point",
                 on_import: Callable[[str, ModuleType], None] | None = None) -> None:
        """``on_import(name, module)``: registers ``name`` from its built-in module when importing the
        module did not (a format module only defines ``FORMAT``)."""
        self.kind = kind
        self._builtin = builtin or (lambda: {})
        self._on_import = on_import
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self.hint = hint

    def register(self, name: str, obj: T, origin: str | None = None) -> T:
        """Add ``obj`` as ``name``; the same definition again (a module imported twice) is a no-op."""
        origin = origin or origin_of(obj)
        if name in self._items and self._origins[name] != origin:
            raise DuplicateName(f"{self.kind} {name!r} is defined twice: by {self._origins[name]} and by {origin}; "
                                f"rename one of them")
        self._items[name] = obj
        self._origins[name] = origin
        return obj

    def decorator(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            return self.register(name, obj)
        return deco

    def origin(self, name: str) -> str:
        return self._origins[name]

    def _import_builtin(self, name: str) -> None:
        module = self._builtin().get(name)
        if module is not None and name not in self._items:
            imported = importlib.import_module(module)
            if name not in self._items and self._on_import is not None:
                self._on_import(name, imported)

    def find(self, name: str) -> T | None:
        """The entry called ``name`` (importing its built-in module, then the plugins), or None."""
        self._import_builtin(name)
        if name not in self._items:
            from . import plugins

            plugins.load_code()
        return self._items.get(name)

    def get(self, name: str) -> T:
        """The entry called ``name``; CardiobenchError listing the known names otherwise."""
        obj = self.find(name)
        if obj is None:
            raise CardiobenchError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'} "
                                   f"({self.hint})")
        return obj

    def names(self, plugins_too: bool = True) -> list[str]:
        """Every known name; ``plugins_too=False`` skips importing out-of-tree code (cheap, for --help)."""
        if plugins_too:
            from . import plugins

            plugins.load_code()
        return sorted({*self._builtin(), *self._items})

    def loaded(self) -> dict[str, T]:
        """The entries imported so far (no import happens)."""
        return dict(self._items)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
