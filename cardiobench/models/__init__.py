"""Architecture builders registered by name: ``build("r2plus1d_18", **cfg)``.

The registry lives in :mod:`cardiobench.models.registry`; importing this package imports every
general builder module here, which registers itself there. A family's own models (fVLM, MedVAE...)
live in its folder and are imported when first named."""
from __future__ import annotations

from . import deeplab, i3resnet, unet, video_resnet, videomae  # noqa: F401  (registers the builders)
from .registry import MODELS, build, names, register  # noqa: F401
