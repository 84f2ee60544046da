"""Optional local weights: never downloaded, loaded only from a path the user gives."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..errors import CardiobenchError


def load_local(model: nn.Module, path: str | None, strict: bool = False) -> nn.Module:
    """Load a state dict from ``path`` (a .pt/.pth file; ``state_dict``/``model`` keys unwrapped)."""
    if not path:
        return model
    p = Path(path).expanduser()
    if not p.is_file():
        raise CardiobenchError(f"{p}: weights file not found (weights are local files; nothing is downloaded)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CardiobenchError(f"{p}: cannot be loaded as a torch state dict ({exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=strict)
    if strict is False and len(missing) == len(model.state_dict()):
        raise CardiobenchError(f"{p}: no parameter names match the model")
    return model
