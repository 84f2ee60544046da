"""Local weights files, loaded strictly: never downloaded, only from a path the user gives.

Every tensor of the model must come from the file, and every tensor of the file must go into the
model, with the same shape. Otherwise the run stops with one line naming the file and the first keys,
because a partly loaded model trains and scores like any other and nothing downstream would show it.
Exceptions, each reported:

* parts the recipe trains fresh: ``model.fresh=[head]`` names module prefixes (``head``,
  ``classifier.4``) whose tensors may be missing from the file or differ in shape there; they keep
  their initialisation, and keys of the file under them are left unused;
* a prefix on every key (``module.``: DataParallel/DDP, ``model.``: PyTorch Lightning) is stripped only
  when that makes every key match;
* BatchNorm's ``num_batches_tracked`` counters may be absent (files saved before torch 0.4.1, e.g.
  torchvision's ImageNet ResNets): they are step counters, not weights, and torch sets them to 0.

What was loaded (matched / missing / unexpected per top-level module, the file's sha256) goes to the
log and, through :func:`recording`, into the run's manifest.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..errors import CardiobenchError
from .weights_file import WeightsFile, read_weights

log = logging.getLogger("cardiobench")

#: Prefixes that wrappers put on every key, and who puts them there.
PREFIXES = {"module.": "DataParallel/DDP", "model.": "PyTorch Lightning"}
COUNTER = "num_batches_tracked"
SHOWN = 3  # keys named in an error line

_fresh: ContextVar[tuple[str, ...]] = ContextVar("cardiobench_fresh", default=())
# (the reports so far, the callback) of the enclosing ``recording``
_recording: ContextVar[tuple[list[dict], Callable[[list[dict]], None]] | None] = ContextVar(
    "cardiobench_weights_recording", default=None)


@contextmanager
def fresh_parts(parts: Sequence[str] | None) -> Iterator[None]:
    """Within: loads whose caller gives no ``fresh`` treat ``parts`` as trained fresh (``build`` sets it
    from ``model.fresh``, so that no builder needs the option)."""
    token = _fresh.set(tuple(str(p) for p in parts or ()))
    try:
        yield
    finally:
        _fresh.reset(token)


@contextmanager
def recording(on_load: Callable[[list[dict]], None]) -> Iterator[list[dict]]:
    """Within: every load (refused ones too) appends its report to the yielded list and calls
    ``on_load(list)``; the pipeline writes it into the manifest as it happens, so a refused file is
    there as well."""
    records: list[dict] = []
    token = _recording.set((records, on_load))
    try:
        yield records
    finally:
        _recording.reset(token)


def top(key: str) -> str:
    return key.split(".", 1)[0]


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _shape(t: Any) -> tuple | str:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


@dataclass
class LoadReport:
    """What loading one file did. Keys are the model's names (after any stripped prefix)."""

    path: str
    sha256: str
    entry: str | None = None
    other_entries: list[str] = field(default_factory=list)
    stripped: str | None = None
    fresh_parts: list[str] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)      # loaded from the file
    missing: list[str] = field(default_factory=list)      # the model's, not in the file (an error)
    unexpected: list[str] = field(default_factory=list)   # the file's, not in the model (an error)
    mismatched: list[str] = field(default_factory=list)   # "key: file (..), model (..)" (an error)
    fresh: list[str] = field(default_factory=list)        # the model's, in a fresh part, not loaded
    ignored: list[str] = field(default_factory=list)      # the file's, unused by declaration (fresh, adapter)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def parts(self) -> dict[str, dict[str, int]]:
        """Counts per top-level module: matched, missing, unexpected (and mismatched, fresh, ignored when any)."""
        out: dict[str, dict[str, int]] = {}
        for kind in ("matched", "missing", "unexpected", "mismatched", "fresh", "ignored"):
            for key in getattr(self, kind):
                part = out.setdefault(top(key), dict(matched=0, missing=0, unexpected=0))
                part[kind] = part.get(kind, 0) + 1
        return out

    def as_manifest(self) -> dict[str, Any]:
        counts = {k: len(getattr(self, k)) for k in ("matched", "missing", "unexpected", "mismatched", "fresh",
                                                     "ignored")}
        return dict(path=self.path, sha256=self.sha256, status="loaded" if self.ok else "refused",
                    entry=self.entry, other_entries=self.other_entries, stripped=self.stripped,
                    fresh_parts=self.fresh_parts, **counts, parts=self.parts())

    def line(self) -> str:
        """The log line of a successful load."""
        text = (f"weights {self.path} (sha256 {self.sha256[:16]}): {len(self.matched)} tensors loaded, "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected")
        if self.stripped:
            text += f"; prefix {self.stripped!r} ({PREFIXES.get(self.stripped, '')}) stripped from every key, " \
                    "then every key matches"
        if self.fresh_parts:
            text += f"; fresh parts {', '.join(self.fresh_parts)}: {len(self.fresh)} tensors left at initialisation"
        if self.ignored:
            text += f"; {len(self.ignored)} keys of the file unused by declaration ({', '.join(self.ignored[:SHOWN])}"
            text += ", ...)" if len(self.ignored) > SHOWN else ")"
        if self.entry:
            text += f"; state dict from entry {self.entry!r}"
            if self.other_entries:
                text += f", other entries not weights, unused: {', '.join(self.other_entries)}"
        return text

    def parts_line(self) -> str:
        def one(name: str, c: dict[str, int]) -> str:
            return f"{name} {c['matched']}/{c['missing']}/{c['unexpected']}" + (
                f" (+{c['fresh']} fresh)" if c.get("fresh") else "")

        return "weights per module (matched/missing/unexpected): " + ", ".join(
            one(name, c) for name, c in self.parts().items())


def _match(ours: Mapping[str, torch.Tensor], state: Mapping[str, Any], fresh: Sequence[str],
           ignore: Collection[str]) -> LoadReport:
    """Sort the keys of ``state`` against the model's (``ours``); path and sha are filled in by the caller."""
    r = LoadReport(path="", sha256="", fresh_parts=list(fresh))
    ignore = set(ignore)
    for key, value in state.items():
        if key in ignore:
            r.ignored.append(key)
        elif key not in ours or not isinstance(value, torch.Tensor):
            (r.ignored if _under(key, fresh) else r.unexpected).append(key)
        elif value.shape != ours[key].shape:
            if _under(key, fresh):
                r.fresh.append(key)
            else:
                r.mismatched.append(f"{key}: {_shape(value)} in the file, {_shape(ours[key])} in the model")
        else:
            r.matched.append(key)
    for key in ours:
        if key not in state:
            if _under(key, fresh):
                r.fresh.append(key)
            elif not key.endswith("." + COUNTER):  # torch sets an absent counter to 0 (see the module doc)
                r.missing.append(key)
    return r


def _choose(ours: Mapping[str, torch.Tensor], state: Mapping[str, Any], fresh: Sequence[str],
            ignore: Collection[str], strip: bool) -> tuple[LoadReport, dict[str, Any], str | None]:
    """The keys as they are, or with a wrapper's prefix stripped from every one of them, whichever makes
    every name match (shapes are checked after); if none does, the reading that matches the most."""
    readings = [(None, dict(state))]
    for prefix in PREFIXES if strip else ():
        if state and all(k.startswith(prefix) for k in state):
            readings.append((prefix, {k[len(prefix):]: v for k, v in state.items()}))
    tried = []
    for prefix, st in readings:
        r = _match(ours, st, fresh, ignore)
        if not (r.missing or r.unexpected):
            return r, st, prefix
        tried.append((r, st, prefix))
    return max(tried, key=lambda t: len(t[0].matched))  # the first of equals: the keys as in the file


def _refusal(r: LoadReport, model: nn.Module, total: int, tried_prefixes: list[str]) -> str:
    """One line: what does not fit, the first keys of each kind."""
    def some(keys: list[str]) -> str:
        return ", ".join(keys[:SHOWN]) + (", ..." if len(keys) > SHOWN else "")

    name = type(model).__name__
    if r.missing or r.unexpected:
        bits = []
        if r.missing:
            parts = ", ".join(dict.fromkeys(map(top, r.missing)))
            bits.append(f"{len(r.missing)} of its {total} tensors are missing from the file (in {parts}; "
                        f"{some(r.missing)})")
        if r.unexpected:
            bits.append(f"{len(r.unexpected)} keys of the file are not in the model ({some(r.unexpected)})")
        text = f"{r.path}: does not fit this {name}: " + " and ".join(bits)
        if r.stripped:
            text += f", after stripping {r.stripped!r} from every key"
        elif tried_prefixes:
            tried = " or ".join(map(repr, tried_prefixes))
            text += f"; stripping {tried} from every key does not make them match either"
        if r.missing:
            text += "; parts a recipe trains fresh are declared with model.fresh=[...]"
        return text
    return (f"{r.path}: {len(r.mismatched)} tensors have other shapes than this {name}'s: "
            f"{'; '.join(r.mismatched[:SHOWN])}")


def load_state(model: nn.Module, wf: WeightsFile, fresh: Sequence[str] | None = None,
               ignore: Collection[str] = (), strip: bool = True) -> LoadReport:
    """Load ``wf``'s state dict into ``model`` strictly (see the module doc) and return the report.

    ``fresh``: module prefixes trained fresh (None: those of the enclosing :func:`fresh_parts`);
    ``ignore``: keys a release adapter declares unused (e.g. a CLIP checkpoint's text encoder); ``strip``:
    try the wrappers' prefixes. Anything else that does not fit raises :class:`CardiobenchError` (one line).
    """
    fresh = list(_fresh.get() if fresh is None else fresh)
    ours = model.state_dict()
    unknown = [p for p in fresh if not any(_under(k, [p]) for k in ours)]
    if unknown:
        raise CardiobenchError(f"model.fresh names {unknown[0]!r}, which is no part of this "
                               f"{type(model).__name__} (its top-level modules: "
                               f"{', '.join(dict.fromkeys(map(top, ours)))})")
    r, state, prefix = _choose(ours, wf.state, fresh, ignore, strip)
    r.path, r.sha256, r.stripped = str(wf.path), wf.sha256, prefix
    r.entry, r.other_entries = wf.entry, wf.other_entries
    if (recorder := _recording.get()) is not None:
        recorder[0].append(r.as_manifest())
        recorder[1](recorder[0])
    if not r.ok:
        tried = [p for p in PREFIXES if strip and wf.state and all(k.startswith(p) for k in wf.state)]
        total = sum(not k.endswith("." + COUNTER) for k in ours)
        raise CardiobenchError(_refusal(r, model, total, tried))
    result = model.load_state_dict({k: state[k] for k in r.matched}, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys  # _match kept only the model's own keys
    log.info("%s", r.line())
    log.info("%s", r.parts_line())
    return r


def load_local(model: nn.Module, path: str | None, fresh: Sequence[str] | None = None) -> nn.Module:
    """Load the local weights file ``path`` (if given) into ``model`` strictly; return the model.

    The file may be a state dict or a checkpoint wrapping one (``state_dict``, ``model_state_dict`` or
    ``model`` entry; its other entries, such as epoch and optimizer state, are unused); see the module doc
    for what may differ. The report is kept as ``model.weights_report``."""
    if not path:
        return model
    model.weights_report = load_state(model, read_weights(path), fresh)
    return model
