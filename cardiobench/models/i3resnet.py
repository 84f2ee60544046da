"""Inflated 3D ResNet (I3D, Merlin's image encoder) with a multitask head: LVEF and aortic stenosis.

``build("i3resnet")`` inflates torchvision's ResNet-152 (built offline, ``weights=None``) to 3D with
Merlin's scheme (see :mod:`cardiobench.models.inflate`), global-average-pools the last stage to a
2048-d feature (512-d for ResNet-18/34) and puts one linear unit per head on it: by default
``"lvef"`` (regression, %) and ``"as_logit"`` (aortic stenosis, a logit). ``forward`` returns
``{"lvef": [B], "as_logit": [B]}``; ``features`` the pooled [B, F] feature.

Input: [B, C, D, H, W] with C = ``in_channels`` (3) or 1; a 1-channel volume is repeated to 3
channels, as Merlin does. Merlin itself takes MONAI's [B, 1, H, W, D] (RAS, 1.5 x 1.5 x 3 mm, CT
HU -1000..1000 scaled to 0..1, 224 x 224 x 160) and permutes it to [B, 1, D, H, W] before its
stem: to use its weights, put the cranio-caudal axis in D and scale intensities the same way.

``weights=`` is an optional *local* file, never downloaded: a Merlin checkpoint (e.g.
``i3_resnet_clinical_longformer_best_clip_04-02-2024_23-21-36_epoch_99.pt``, a raw state dict of the
whole CLIP model whose image-encoder keys are ``encode_image.i3_resnet.*``) or a state dict of this
model; see :func:`load_merlin`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn as nn
from torchvision import models as tvm
from torchvision.models import resnet as tvr

from ..errors import CardiobenchError
from .registry import register
from .inflate import MERLIN_TIME_STRIDES, InflatedResNet, inflate_resnet
from .weights import LoadReport, load_local, load_state
from .weights_file import read_weights

#: Key prefix of Merlin's image encoder in its CLIP checkpoints (``MerlinArchitecture.encode_image.i3_resnet``).
MERLIN_PREFIX = "encode_image.i3_resnet."
#: Merlin's report-generation checkpoint wraps the same trunk as ``encode_image.vision_model.features``,
#: an ``nn.Sequential(conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4)``.
_REPORTGEN_PREFIX = "encode_image.vision_model.features."
_REPORTGEN_INDEX = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_BLOCKS = {"resnet18": tvr.BasicBlock, "resnet34": tvr.BasicBlock, "resnet50": tvr.Bottleneck,
           "resnet101": tvr.Bottleneck, "resnet152": tvr.Bottleneck}


class I3ResNet(nn.Module):
    """An :class:`InflatedResNet` trunk (``backbone``) and a linear multitask head (``head``)."""

    def __init__(self, backbone: InflatedResNet, heads: Sequence[str] = ("lvef", "as_logit"), in_channels: int = 3,
                 dropout: float = 0.0, checkpointing: bool = True):
        super().__init__()
        if not heads or len(set(heads)) != len(heads):
            raise CardiobenchError(f"heads must be distinct names, got {list(heads)}")
        self.backbone = backbone
        self.heads = tuple(heads)
        self.in_channels = int(in_channels)
        self.checkpointing = bool(checkpointing)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = nn.Linear(backbone.num_features, len(self.heads))

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"expected a [B, C, D, H, W] volume, got shape {tuple(x.shape)}")
        if x.shape[1] == 1 and self.in_channels > 1:
            return x.expand(-1, self.in_channels, -1, -1, -1)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected 1 or {self.in_channels} input channels, got {x.shape[1]}")
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled [B, F] feature; the four stages are checkpointed when training with ``checkpointing``."""
        ckpt = self.checkpointing and self.training and torch.is_grad_enabled()
        return self.backbone(self._prepare(x), checkpoint_stages=ckpt)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.dropout(self.features(x)))
        return {name: out[:, i] for i, name in enumerate(self.heads)}


def _resnet2d(arch: str, layers: Sequence[int] | None) -> tvr.ResNet:
    if layers is None:
        ctor = getattr(tvm, arch, None)
        if ctor is None or not arch.startswith(("resnet", "resnext", "wide_resnet")):
            raise CardiobenchError(f"unknown torchvision ResNet {arch!r}")
        return ctor(weights=None)
    if arch not in _BLOCKS:
        raise CardiobenchError(f"layers= needs arch in {', '.join(_BLOCKS)} (it picks the block type), got {arch!r}")
    layers = [int(n) for n in layers]
    if len(layers) != 4 or min(layers) < 1:
        raise CardiobenchError(f"layers must be 4 positive block counts, got {layers}")
    return tvr.ResNet(_BLOCKS[arch], layers)


@register("i3resnet")
def i3resnet(arch: str = "resnet152", layers: Sequence[int] | None = None, in_channels: int = 3,
             heads: Sequence[str] = ("lvef", "as_logit"), head_bias: Mapping[str, float] | None = None,
             dropout: float = 0.0, checkpointing: bool = True, weights: str | None = None,
             weights_2d: str | None = None, scheme: str = "center",
             time_strides: Sequence[int] = MERLIN_TIME_STRIDES, time_padding_mode: str = "zeros") -> I3ResNet:
    """An inflated torchvision ResNet with one linear output per name in ``heads``, built offline.

    ``arch`` names a torchvision ResNet (``resnet152`` as in Merlin); ``layers`` (4 block counts)
    builds a reduced-depth one of the same block type (``[1, 1, 1, 1]``: the CPU smoke model).
    ``in_channels`` other than 3 replaces the stem (randomly initialised). ``weights_2d`` is an
    optional local torchvision 2D state dict loaded *before* inflation (e.g. ImageNet weights, as
    Merlin starts from); ``weights`` an optional local Merlin or cardiobench checkpoint loaded
    *after* it (:func:`load_merlin`, strict; its report is kept as ``model.weights_report``). ``head_bias``
    sets initial output biases (e.g. ``{"lvef": 55.0}``). ``scheme``, ``time_strides`` (stem,
    max-pool, layer1..4) and ``time_padding_mode``: see :mod:`cardiobench.models.inflate`.
    """
    net2d = _resnet2d(arch, layers)
    load_local(net2d, weights_2d, fresh=())  # model.fresh names parts of the 3D model, not of this 2D one
    if in_channels != 3:
        c = net2d.conv1
        net2d.conv1 = nn.Conv2d(in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, bias=False)
    backbone = inflate_resnet(net2d, scheme=scheme, time_strides=time_strides, time_padding_mode=time_padding_mode)
    model = I3ResNet(backbone, heads=heads, in_channels=in_channels, dropout=dropout, checkpointing=checkpointing)
    if head_bias:
        unknown = sorted(set(head_bias) - set(model.heads))
        if unknown:
            raise CardiobenchError(f"head_bias names unknown heads {unknown}; heads are {list(model.heads)}")
        with torch.no_grad():
            for name, value in head_bias.items():
                model.head.bias[model.heads.index(name)] = float(value)
    if weights:
        model.weights_report = load_merlin(model, weights)
    return model


def merlin_key(key: str) -> str:
    """This model's name for a checkpoint key: Merlin's CLIP, report-generation or bare-trunk layout, or ours.

    ``encode_image.i3_resnet.layer1.0.conv1.weight`` -> ``backbone.layer1.0.conv1.weight``;
    ``encode_image.vision_model.features.4.0.conv1.weight`` -> the same; a bare ``conv1.weight``
    (Merlin's five-year-prediction checkpoint holds the trunk alone) -> ``backbone.conv1.weight``;
    ``backbone.*``/``head.*`` (a cardiobench checkpoint) stay. Keys of other components
    (``encode_text.*``, ``logit_scale``, Merlin's ``classifier``/``contrastive_head``) map to names
    this model lacks, and are reported as unexpected.
    """
    k = key.removeprefix("module.")
    if k.startswith(("backbone.", "head.")):
        return k
    if k.startswith(MERLIN_PREFIX):
        return "backbone." + k[len(MERLIN_PREFIX):]
    if k.startswith(_REPORTGEN_PREFIX):
        idx, _, rest = k[len(_REPORTGEN_PREFIX):].partition(".")
        if idx in _REPORTGEN_INDEX:
            return f"backbone.{_REPORTGEN_INDEX[idx]}.{rest}"
        return k
    if k.startswith(("encode_", "logit_scale")):
        return k
    return "backbone." + k


#: Keys of a Merlin CLIP checkpoint that are other components of the release, not this model's: the text
#: encoder, the CLIP temperature and Merlin's own heads on the image encoder (phenotypes, contrastive).
MERLIN_OTHER = ("encode_text.", "logit_scale", MERLIN_PREFIX + "classifier.", MERLIN_PREFIX + "contrastive_head.")


def load_merlin(model: I3ResNet, path: str | Path, fresh: Sequence[str] | None = None) -> LoadReport:
    """Load a local Merlin (or cardiobench) checkpoint into ``model``, strictly; return the report.

    Merlin saves a raw ``state_dict()`` with ``torch.save`` (``merlin/models/load.py`` loads it with
    ``model.load_state_dict(torch.load(path))``); ``{"state_dict"|"model": ...}`` wrappers and
    ``module.`` prefixes are unwrapped too. Keys are renamed by :func:`merlin_key`; the release's other
    components (:data:`MERLIN_OTHER`) are left unused and reported as ignored. Every other tensor must
    fit, as in :func:`cardiobench.models.weights.load_state`: Merlin has no LVEF/AS head, so a recipe on
    its weights declares ``fresh=["head"]`` (``model.fresh``). A file that holds no tensor of this trunk
    raises :class:`CardiobenchError` naming the file. Nothing is downloaded.
    """
    wf = read_weights(path)
    if not wf.state:
        raise CardiobenchError(f"{wf.path}: holds no tensors")
    ignore = {k for k in wf.state if k.removeprefix("module.").startswith(MERLIN_OTHER)}  # reported as in the file
    renamed = {k if k in ignore else merlin_key(k): v for k, v in wf.state.items()}
    trunk = {k for k in model.state_dict() if k.startswith("backbone.") and not k.endswith("num_batches_tracked")}
    if not trunk & (renamed.keys() - ignore):
        raise CardiobenchError(f"{wf.path}: no image-encoder weights match this model (expected Merlin's "
                               f"{MERLIN_PREFIX}* keys, e.g. {MERLIN_PREFIX}conv1.weight)")
    wf.state = renamed
    return load_state(model, wf, fresh, ignore=ignore, strip=False)
