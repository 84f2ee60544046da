"""Architecture builders registered by name: ``build("r2plus1d_18", **cfg)``.

The registry lives in :mod:`cardiobench.models.registry`; importing this package imports every
built-in builder module, which registers itself there."""
from __future__ import annotations

from . import deeplab, fvlm, i3resnet, medvae, text_encoder, unet, video_resnet, videomae  # noqa: F401  (registers the builders)
from .registry import _REGISTRY, build, names, register  # noqa: F401
