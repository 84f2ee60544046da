"""2D -> 3D inflation of torchvision ResNets (I3D; the scheme of Merlin's image encoder).

Carreira & Zisserman (2017, "Quo vadis, action recognition?") turn an ImageNet 2D network into a
3D one by giving each 2D kernel a time extent. Merlin (Blankemeier et al. 2024, "Merlin: a vision
language foundation model for 3D computed tomography"; code github.com/StanfordMIMI/Merlin, files
``merlin/models/inflate.py`` and ``merlin/models/i3res.py``, themselves adapted from
github.com/hassony2/inflated_convnets_pytorch) inflates a torchvision ResNet-152 this way. What it
does, read from those two files, and what this module reproduces by default:

* **Weights: "center" inflation** (``center=True`` throughout Merlin). The 2D kernel goes into the
  middle time slice (index ``t // 2``) of a ``t``-deep kernel, zeros elsewhere, so that at
  initialisation each output slice sees only its own input slice. The alternative (``center=False``
  there, ``scheme="mean"`` here) repeats the 2D kernel ``t`` times and divides by ``t``.
* **Stem** ``conv1`` (7x7, stride 2, pad 3) -> kernel (3, 7, 7), stride (1, 2, 2), padding (1, 3, 3):
  no time stride.
* **Max-pool** (3x3, stride 2, pad 1) -> kernel (3, 3, 3), stride (2, 2, 2), padding (1, 1, 1): it
  *does* halve time.
* **Bottleneck**: ``conv1`` and ``conv3`` (1x1) -> (1, 1, 1); ``conv2`` (3x3, carries the stage's
  spatial stride) -> kernel (3, 3, 3), padding (1, 1, 1), time stride = spatial stride;
  ``downsample.0`` (1x1) -> (1, 1, 1) with the same time stride. So layer1 keeps time and layer2-4
  halve it: time is reduced 16x in all (stem 1, pool 2, layers 1/2/2/2), space 32x.
* **BatchNorm2d** modules are kept as they are (Merlin only swaps their input-dimension check), so
  their parameters, running statistics and state-dict names are unchanged; here they become
  ``BatchNorm3d`` modules with the same tensors and names. **AdaptiveAvgPool2d** -> (1, 1, 1).
* Time padding is zeros (the PyTorch default). With "center" weights this is harmless (the padded
  slices meet zero weights); with "mean" weights the border slices differ from the 2D network
  (Merlin's source notes that "padding should be by continuity and not zero"): ``time_padding_mode=
  "replicate"`` pads time by repeating the border slice and makes "mean" inflation exact too.

Deviations, none of which change Merlin's ResNet-152: torchvision's ``BasicBlock`` (ResNet-18/34;
Merlin handles only bottlenecks) inflates its first, strided 3x3 conv to (3, 3, 3) with time stride
= the stage's time stride and its second to (1, 3, 3), mirroring the bottleneck (one time-extended,
strided conv per block); grouped convolutions keep their groups (ResNeXt); non-square spatial strides
are kept as they are (Merlin repeats ``stride[0]``); time strides are configurable (``time_strides``).

With either scheme, a volume whose slices all equal one image gives the 2D network's features on that
image at every time position (exactly for "center"; for "mean" with replicate padding). The tests
check this.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from torchvision.models import resnet as tvr

from ..errors import CardiobenchError

SCHEMES = ("center", "mean")
#: Time strides of (stem conv, max-pool, layer1, layer2, layer3, layer4), as in Merlin.
MERLIN_TIME_STRIDES = (1, 2, 1, 2, 2, 2)


class TimeReplicateConv3d(nn.Conv3d):
    """A ``Conv3d`` that pads time by repeating the border slices (space: zeros, as usual).

    The module's parameters and state-dict names are those of ``nn.Conv3d``.
    """

    def __init__(self, *args, time_padding: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_padding = int(time_padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_padding:
            p = self.time_padding
            x = F.pad(x, (0, 0, 0, 0, p, p), mode="replicate")
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, time_padding={self.time_padding} (replicate)"


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise CardiobenchError(f"unknown inflation scheme {scheme!r}; use one of {', '.join(SCHEMES)}")


def inflate_conv(conv2d: nn.Conv2d, time_dim: int = 1, time_stride: int = 1, time_padding: int | None = None,
                 time_dilation: int = 1, scheme: str = "center", time_padding_mode: str = "zeros") -> nn.Conv3d:
    """A ``Conv3d`` with kernel (``time_dim``, kh, kw) whose weights come from ``conv2d``.

    ``scheme="center"`` puts the 2D kernel in time slice ``time_dim // 2`` and zeros elsewhere;
    ``"mean"`` repeats it along time and divides by ``time_dim``. ``time_padding`` defaults to
    ``time_dim // 2``; ``time_padding_mode`` is ``"zeros"`` (Merlin) or ``"replicate"``.
    """
    _check_scheme(scheme)
    if time_padding_mode not in ("zeros", "replicate"):
        raise CardiobenchError(f"unknown time_padding_mode {time_padding_mode!r}; use 'zeros' or 'replicate'")
    if conv2d.padding_mode != "zeros" or isinstance(conv2d.padding, str):
        raise CardiobenchError(f"cannot inflate {conv2d}: only numeric zero padding is supported")
    pt = time_dim // 2 if time_padding is None else int(time_padding)
    kw = dict(in_channels=conv2d.in_channels, out_channels=conv2d.out_channels,
              kernel_size=(time_dim, *conv2d.kernel_size), stride=(time_stride, *conv2d.stride),
              dilation=(time_dilation, *conv2d.dilation), groups=conv2d.groups, bias=conv2d.bias is not None,
              device=conv2d.weight.device, dtype=conv2d.weight.dtype)
    if time_padding_mode == "replicate" and pt:
        conv3d: nn.Conv3d = TimeReplicateConv3d(padding=(0, *conv2d.padding), time_padding=pt, **kw)
    else:
        conv3d = nn.Conv3d(padding=(pt, *conv2d.padding), **kw)
    w2 = conv2d.weight.detach()
    with torch.no_grad():
        if scheme == "center":
            w3 = torch.zeros_like(conv3d.weight)
            w3[:, :, time_dim // 2] = w2
        else:
            w3 = w2.unsqueeze(2).expand_as(conv3d.weight) / time_dim
        conv3d.weight.copy_(w3)
        if conv2d.bias is not None:
            conv3d.bias.copy_(conv2d.bias.detach())
    return conv3d


def inflate_batch_norm(bn2d: nn.BatchNorm2d) -> nn.BatchNorm3d:
    """A ``BatchNorm3d`` with the same hyper-parameters, affine parameters and running statistics."""
    ref = bn2d.weight if bn2d.affine else bn2d.running_mean
    where = {} if ref is None else dict(device=ref.device, dtype=ref.dtype)
    bn3d = nn.BatchNorm3d(bn2d.num_features, eps=bn2d.eps, momentum=bn2d.momentum, affine=bn2d.affine,
                          track_running_stats=bn2d.track_running_stats, **where)
    bn3d.load_state_dict(bn2d.state_dict())
    return bn3d


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def inflate_pool(pool2d: nn.Module, time_dim: int = 1, time_stride: int | None = None,
                 time_padding: int = 0) -> nn.Module:
    """``MaxPool2d``/``AvgPool2d`` -> 3D with a ``time_dim`` window; adaptive average/max -> (1, 1, 1).

    ``time_stride`` defaults to ``time_dim``. Max-pooling pads with -inf, so a time window that runs
    past the border never changes the maximum of identical slices.
    """
    if isinstance(pool2d, nn.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool3d((1, 1, 1))
    if isinstance(pool2d, nn.AdaptiveMaxPool2d):
        return nn.AdaptiveMaxPool3d((1, 1, 1))
    ts = time_dim if time_stride is None else time_stride
    kernel = (time_dim, *_pair(pool2d.kernel_size))
    stride = (ts, *_pair(pool2d.stride if pool2d.stride is not None else pool2d.kernel_size))
    padding = (time_padding, *_pair(pool2d.padding))
    if isinstance(pool2d, nn.MaxPool2d):
        return nn.MaxPool3d(kernel, stride=stride, padding=padding, dilation=(1, *_pair(pool2d.dilation)),
                            ceil_mode=pool2d.ceil_mode)
    if isinstance(pool2d, nn.AvgPool2d):
        return nn.AvgPool3d(kernel, stride=stride, padding=padding, ceil_mode=pool2d.ceil_mode,
                            count_include_pad=pool2d.count_include_pad)
    raise CardiobenchError(f"cannot inflate pooling layer {type(pool2d).__name__}")


class Bottleneck3d(nn.Module):
    """An inflated torchvision ``Bottleneck``: 1x1x1, 3x3x3 (strided in time and space), 1x1x1."""

    def __init__(self, block: tvr.Bottleneck, time_stride: int = 1, scheme: str = "center",
                 time_padding_mode: str = "zeros"):
        super().__init__()
        kw = dict(scheme=scheme, time_padding_mode=time_padding_mode)
        self.conv1 = inflate_conv(block.conv1, time_dim=1, **kw)
        self.bn1 = inflate_batch_norm(block.bn1)
        self.conv2 = inflate_conv(block.conv2, time_dim=3, time_stride=time_stride, **kw)
        self.bn2 = inflate_batch_norm(block.bn2)
        self.conv3 = inflate_conv(block.conv3, time_dim=1, **kw)
        self.bn3 = inflate_batch_norm(block.bn3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _inflate_downsample(block, time_stride, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class BasicBlock3d(nn.Module):
    """An inflated torchvision ``BasicBlock``: 3x3x3 (strided in time and space), then 1x3x3."""

    def __init__(self, block: tvr.BasicBlock, time_stride: int = 1, scheme: str = "center",
                 time_padding_mode: str = "zeros"):
        super().__init__()
        kw = dict(scheme=scheme, time_padding_mode=time_padding_mode)
        self.conv1 = inflate_conv(block.conv1, time_dim=3, time_stride=time_stride, **kw)
        self.bn1 = inflate_batch_norm(block.bn1)
        self.conv2 = inflate_conv(block.conv2, time_dim=1, **kw)
        self.bn2 = inflate_batch_norm(block.bn2)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _inflate_downsample(block, time_stride, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _inflate_downsample(block: nn.Module, time_stride: int, **kw) -> nn.Sequential | None:
    ds = block.downsample
    if ds is None:
        if time_stride != 1:
            raise CardiobenchError(f"a time stride of {time_stride} needs a downsampling shortcut, and this block "
                                   "has none (its stage keeps the spatial size and width): use time stride 1 there")
        return None
    if not (isinstance(ds, nn.Sequential) and len(ds) == 2 and isinstance(ds[0], nn.Conv2d)
            and isinstance(ds[1], nn.BatchNorm2d)):
        raise CardiobenchError(f"cannot inflate downsample shortcut {ds}: expected Sequential(Conv2d, BatchNorm2d)")
    return nn.Sequential(inflate_conv(ds[0], time_dim=1, time_stride=time_stride, **kw), inflate_batch_norm(ds[1]))


def inflate_block(block: nn.Module, time_stride: int = 1, scheme: str = "center",
                  time_padding_mode: str = "zeros") -> nn.Module:
    if isinstance(block, tvr.Bottleneck):
        return Bottleneck3d(block, time_stride, scheme, time_padding_mode)
    if isinstance(block, tvr.BasicBlock):
        return BasicBlock3d(block, time_stride, scheme, time_padding_mode)
    raise CardiobenchError(f"cannot inflate residual block {type(block).__name__}")


def inflate_layer(layer: nn.Sequential, time_stride: int = 1, scheme: str = "center",
                  time_padding_mode: str = "zeros") -> nn.Sequential:
    """A ResNet stage: the first block carries the time stride, as it carries the spatial one."""
    return nn.Sequential(*(inflate_block(b, time_stride if i == 0 else 1, scheme, time_padding_mode)
                           for i, b in enumerate(layer)))


@contextlib.contextmanager
def _bn_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Restore every BatchNorm's running statistics on exit (for the recomputation of a checkpoint)."""
    saved = [(m, {k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None})
             for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, bufs in saved:
                for k, b in bufs.items():
                    getattr(m, k).copy_(b)


def checkpoint_stage(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``stage(x)`` under non-reentrant gradient checkpointing, BatchNorm statistics updated once.

    The backward pass re-runs the stage's forward; in training mode that would update every
    BatchNorm's running mean/variance (and batch counter) a second time with the same batch. The
    recomputation here restores them afterwards, so the statistics equal those of a plain forward.
    """
    calls = [0]

    def run(inp: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 1:
            return stage(inp)
        with _bn_stats_frozen(stage):
            return stage(inp)

    return checkpoint(run, x, use_reentrant=False)


class InflatedResNet(nn.Module):
    """The 3D trunk of an inflated ResNet: stem, max-pool, four stages, global average pool (no ``fc``).

    Module names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv2``, ``layer2.0.downsample.0``,
    ...), which are also those of Merlin's ``I3ResNet``. Input [B, C, D, H, W]; ``forward`` returns the
    pooled [B, F] feature (F = 512 for BasicBlock ResNets, 2048 for bottleneck ones).
    """

    def __init__(self, resnet2d: tvr.ResNet, scheme: str = "center",
                 time_strides: Sequence[int] = MERLIN_TIME_STRIDES, time_padding_mode: str = "zeros"):
        super().__init__()
        _check_scheme(scheme)
        ts = tuple(int(t) for t in time_strides)
        if len(ts) != 6 or min(ts) < 1:
            raise CardiobenchError(f"time_strides must be 6 positive integers (stem, maxpool, layer1..layer4), "
                                   f"got {tuple(time_strides)}")
        self.scheme, self.time_strides = scheme, ts
        kw = dict(scheme=scheme, time_padding_mode=time_padding_mode)
        self.conv1 = inflate_conv(resnet2d.conv1, time_dim=3, time_stride=ts[0], **kw)
        self.bn1 = inflate_batch_norm(resnet2d.bn1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = inflate_pool(resnet2d.maxpool, time_dim=3, time_stride=ts[1], time_padding=1)
        self.layer1 = inflate_layer(resnet2d.layer1, ts[2], **kw)
        self.layer2 = inflate_layer(resnet2d.layer2, ts[3], **kw)
        self.layer3 = inflate_layer(resnet2d.layer3, ts[4], **kw)
        self.layer4 = inflate_layer(resnet2d.layer4, ts[5], **kw)
        self.avgpool = inflate_pool(resnet2d.avgpool)
        last = resnet2d.layer4[-1]
        self.num_features = (last.bn3 if isinstance(last, tvr.Bottleneck) else last.bn2).num_features

    def stages(self) -> tuple[nn.Sequential, ...]:
        return self.layer1, self.layer2, self.layer3, self.layer4

    def forward(self, x: torch.Tensor, checkpoint_stages: bool = False) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = checkpoint_stage(stage, x) if checkpoint_stages else stage(x)
        return torch.flatten(self.avgpool(x), 1)


def inflate_resnet(resnet2d: tvr.ResNet, scheme: str = "center", time_strides: Sequence[int] = MERLIN_TIME_STRIDES,
                   time_padding_mode: str = "zeros") -> InflatedResNet:
    """Inflate a torchvision ``ResNet`` (any depth, BasicBlock or Bottleneck) to an ``InflatedResNet``."""
    if not isinstance(resnet2d, tvr.ResNet):
        raise CardiobenchError(f"inflate_resnet expects a torchvision ResNet, got {type(resnet2d).__name__}")
    return InflatedResNet(resnet2d, scheme=scheme, time_strides=time_strides, time_padding_mode=time_padding_mode)
