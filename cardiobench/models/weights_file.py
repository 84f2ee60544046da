"""Reading a local weights file safely: tensors, numbers and plain containers, never code.

``torch.load(weights_only=True)`` refuses any pickled global it does not know. Released checkpoints
also hold numpy numbers next to the weights (EchoNet-Dynamic's ``r2`` is a ``numpy.float64``), which
it refuses with a long message; the numpy scalar, array and numeric dtype types are allowed here, as
the safe globals they are (they rebuild numbers from bytes and run nothing). Anything else (a pickled
class, a function) is still refused, in one line naming the file and the first object found.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CardiobenchError

#: Entries that wrap the state dict in known checkpoint formats (EchoNet-Dynamic and PyTorch Lightning:
#: ``state_dict``; common training scripts: ``model_state_dict``, ``model``). The other entries of such a
#: file (epoch, optimizer and scheduler state, losses) are not weights and are left unused.
WRAPPERS = ("state_dict", "model_state_dict", "model")


def _numpy_globals() -> list:
    """numpy's number types under both names of their module: files saved under numpy 1 say
    ``numpy.core.multiarray``, under numpy 2 ``numpy._core.multiarray`` (torch matches the name in the file)."""
    core = (np._core if hasattr(np, "_core") else np.core).multiarray
    dtypes = {type(np.dtype(c)) for c in "?" + np.typecodes["AllInteger"] + np.typecodes["AllFloat"]}
    named = [(fn, f"numpy.{m}.multiarray.{fn.__name__}") for fn in (core.scalar, core._reconstruct)
             for m in ("core", "_core")]
    return [np.ndarray, np.dtype, *sorted(dtypes, key=str), *named]


@dataclass
class WeightsFile:
    """A weights file as read: its state dict and where in the file it came from."""

    path: Path
    sha256: str
    state: dict[str, Any]
    entry: str | None = None  # e.g. "state_dict": the wrapper entry holding the state dict (None: the file is one)
    other_entries: list[str] = field(default_factory=list)  # the wrapper's other entries, unused (epoch, opt_dict...)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load(p: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            first = str(exc).splitlines()[0]
            raise CardiobenchError(f"{p}: cannot be read as a torch weights file ({first})") from None
        found = re.search(r"GLOBAL (\S+)|but got <class '([^']+)'>", str(exc))
        what = f" (first: {found.group(1) or found.group(2)})" if found else ""
        raise CardiobenchError(f"{p}: holds objects other than tensors and numbers{what}; it is not loaded, since "
                               "unpickling them could run code from the file. Save the state dict alone: "
                               "torch.save(model.state_dict(), path)") from None
    except Exception as exc:  # not a torch file at all: truncated, text, another format
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise CardiobenchError(f"{p}: cannot be read as a torch weights file ({type(exc).__name__}: {text})") from None


def read_weights(path: str | Path) -> WeightsFile:
    """The state dict of a local ``.pt``/``.pth`` file (unwrapped from a known checkpoint format) and the
    file's sha256. A missing file, one that is not a torch file, or one that holds pickled objects raises
    :class:`CardiobenchError` naming the file. Nothing is downloaded."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CardiobenchError(f"{p}: weights file not found (weights are local files; nothing is downloaded)")
    obj = _load(p)
    if not isinstance(obj, Mapping):
        raise CardiobenchError(f"{p}: holds a {type(obj).__name__}, not a state dict")
    entry, others = None, []
    for key in WRAPPERS:  # the first wrapper found; a file of tensors only is a state dict itself
        if isinstance(obj.get(key), Mapping):
            entry, others = key, [str(k) for k in obj if k != key]
            obj = obj[key]
            break
    return WeightsFile(p.resolve(), sha256_of(p), {str(k): v for k, v in obj.items()}, entry, others)
