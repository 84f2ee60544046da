"""MedVAE-style 3D KL autoencoder (Varma et al. 2025) and a 3D SE-ResNet that reads its latents.

MedVAE (github StanfordMIMI/MedVAE) compresses a volume into a small latent with a Stable-Diffusion
(LDM) KL autoencoder; downstream models train on the latents instead of the images. The ``medvae``
package is not a dependency (it downloads its weights when built); the design is rebuilt here with
MONAI's ``AutoencoderKL``. ``medvae_4_1_3d`` (4x per axis, 1 latent channel) is, in LDM terms,
``ch=128, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=[]``, ``z_channels = embed_dim = 1``,
``double_z``, GroupNorm(32): here ``channels=(128, 256, 512)``, ``num_res_blocks=2``, ``attention=False``,
``mid_attention=True``. (MedVAE's config file is fetched from its model hub, not in its repository; its
demo notebook's build log shows three levels, a 1-channel latent and self-attention only in the two
512-channel middle blocks; ``ch``/``ch_mult``/``num_res_blocks`` follow LDM's kl-f4 config, which is
consistent with that log.)
Differences from MedVAE's own module: MONAI's decoder has ``num_res_blocks`` residual blocks per level
(LDM's has one more), MONAI's attention uses linear q/k/v (LDM's 1x1 convs), and MedVAE's stage-2
latent projection (``channel_ds``/``channel_proj``) is not part of the autoencoder here. MedVAE's
checkpoints therefore do not load into this module; ``weights`` is a local state dict of *this* module.

Volumes are (B, 1, D, H, W) with D, H, W multiples of ``downsample``; latents are
(B, latent_channels, D/f, H/f, W/f). Nothing is downloaded.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import CardiobenchError
from ...models.registry import register
from ...models.weights import load_local


def _default_channels(levels: int) -> tuple[int, ...]:
    """LDM widths: 128 x ch_mult, ch_mult = (1, 2, 4, 4, ...) (4x: 128/256/512, 8x: 128/256/512/512)."""
    return tuple(128 * min(2 ** i, 4) for i in range(levels))


@register("medvae_autoencoder")
def medvae_autoencoder(downsample: int = 4, latent_channels: int = 1, channels: Sequence[int] | None = None,
                       num_res_blocks: int = 2, attention: bool = False, mid_attention: bool = True,
                       norm_num_groups: int | None = None, checkpointing: bool = False,
                       weights: str | None = None) -> nn.Module:
    """``monai.networks.nets.AutoencoderKL`` (3D, 1 channel in and out) downsampling ``downsample`` per axis.

    ``downsample`` is a power of two; the encoder has log2(downsample) + 1 levels, one stride-2
    downsampling between consecutive levels. ``channels`` (one width per level; default the LDM
    widths, i.e. MedVAE's ``medvae_4_1_3d`` for ``downsample=4``) may be small for the CPU smoke profile,
    e.g. ``(8, 16, 16)``. ``attention`` adds self-attention after every residual block of every level
    (MedVAE: none); ``mid_attention`` is the attention in the lowest-resolution middle block of
    encoder and decoder (MedVAE: yes). ``norm_num_groups`` defaults to 32 or, for narrow widths, the
    largest group count dividing every width. ``checkpointing`` trades compute for activation memory
    (MedVAE checkpoints its blocks too). The module gets a ``downsample_factor`` attribute.
    """
    from monai.networks.nets import AutoencoderKL

    if downsample < 2 or downsample & (downsample - 1):
        raise CardiobenchError(f"medvae_autoencoder: downsample must be a power of two >= 2, got {downsample}")
    levels = int(math.log2(downsample)) + 1
    channels = tuple(int(c) for c in (channels or _default_channels(levels)))
    if len(channels) != levels:
        raise CardiobenchError(f"medvae_autoencoder: downsample={downsample} needs {levels} channel widths "
                               f"(one per level), got {len(channels)}: {channels}")
    groups = norm_num_groups or math.gcd(32, *channels)
    if any(c % groups for c in channels):
        raise CardiobenchError(f"medvae_autoencoder: norm_num_groups={groups} does not divide channels {channels}")
    ae = AutoencoderKL(spatial_dims=3, in_channels=1, out_channels=1, channels=channels,
                       num_res_blocks=(num_res_blocks,) * levels, attention_levels=(attention,) * levels,
                       latent_channels=latent_channels, norm_num_groups=groups, norm_eps=1e-6,
                       with_encoder_nonlocal_attn=mid_attention, with_decoder_nonlocal_attn=mid_attention,
                       use_checkpoint=checkpointing)
    ae.downsample_factor = downsample
    return load_local(ae, weights)


def _check_volume(ae: nn.Module, x: torch.Tensor) -> None:
    f = getattr(getattr(ae, "module", ae), "downsample_factor", 1)  # the module inside a DDP wrapper
    if x.ndim != 5 or any(s % f for s in x.shape[2:]):
        raise CardiobenchError(f"expected a (B, C, D, H, W) volume with D, H, W multiples of {f}, "
                               f"got shape {tuple(x.shape)}")


def posterior_mean(ae: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The latent of ``x``: the posterior mean ``z_mu`` (deterministic; no sample is drawn).

    This is what downstream models are trained on and what is cached (MedVAE's inference also takes
    the posterior mode). Gradients flow unless called under ``torch.no_grad()``.
    """
    _check_volume(ae, x)
    z_mu, _ = ae.encode(x)
    return z_mu


def kl_divergence(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over a sample's latent elements, averaged over the batch."""
    kl = 0.5 * (z_mu.pow(2) + z_sigma.pow(2) - 2 * torch.log(z_sigma) - 1)
    return kl.flatten(1).sum(dim=1).mean()


def vae_loss(ae: nn.Module, x: torch.Tensor, kl_weight: float = 1e-6,
             recon: str = "l1") -> tuple[torch.Tensor, dict[str, float]]:
    """Stage-1 autoencoder loss: reconstruction of a posterior *sample* plus ``kl_weight`` x KL.

    Reconstruction is the voxel-mean L1 (``recon="l1"``, as MedVAE and MONAI's AutoencoderKL tutorials)
    or MSE (``"mse"``); the KL term is summed over latent elements and averaged over the batch, with
    MedVAE's weight 1e-6. MedVAE's full stage-1 criterion (LDM's ``LPIPSWithDiscriminator``) also has a
    learned-log-variance NLL, an LPIPS perceptual term (2D, averaged over slices for 3D) and, after a
    warm-up, a PatchGAN adversarial term with adaptive weight; we keep L1 + KL only (no pretrained
    perceptual network is needed, and it trains deterministically on CPU).

    Returns ``(loss, parts)``, ``parts`` = floats ``recon``, ``kl``, ``loss``.
    """
    if recon not in ("l1", "mse"):
        raise CardiobenchError(f"vae_loss: recon must be 'l1' or 'mse', got {recon!r}")
    _check_volume(ae, x)
    # AutoencoderKL's forward is encode -> sample -> decode; called as a forward so that a DDP wrapper's runs
    reconstruction, z_mu, z_sigma = ae(x)
    rec = F.l1_loss(reconstruction, x) if recon == "l1" else F.mse_loss(reconstruction, x)
    kl = kl_divergence(z_mu, z_sigma)
    loss = rec + kl_weight * kl
    return loss, {"recon": rec.item(), "kl": kl.item(), "loss": loss.item()}


class LatentSEResNet(nn.Module):
    """A MONAI 3D ``SENet`` trunk, global average pooling, dropout and one linear unit per head.

    ``forward(x)`` returns ``{head: (B,) tensor}``; ``features(x)`` the pooled (B, C) embedding.
    """

    def __init__(self, backbone: nn.Module, heads: Sequence[str], dropout: float | None,
                 output_bias: Mapping[str, float] | None = None):
        super().__init__()
        if not heads or len(set(heads)) != len(heads):
            raise CardiobenchError(f"latent_seresnet: heads must be distinct names, got {list(heads)}")
        self.backbone = backbone
        dim = backbone.inplanes  # channels out of the last stage
        backbone.last_linear = nn.Identity()  # replaced by the heads
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.heads = nn.ModuleDict({name: nn.Linear(dim, 1) for name in heads})
        for name, bias in (output_bias or {}).items():
            if name not in self.heads:
                raise CardiobenchError(f"latent_seresnet: output_bias for unknown head {name!r}")
            with torch.no_grad():
                self.heads[name].bias.fill_(float(bias))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.backbone.adaptive_avg_pool(self.backbone.features(x)), 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.dropout(self.features(x))
        return {name: head(f).squeeze(1) for name, head in self.heads.items()}


def _senet(width: int, **kwargs) -> nn.Module:
    """MONAI ``SENet``; ``width`` != 64 scales every stage's planes by width/64 (MONAI fixes 64..512)."""
    from monai.networks.nets import SENet

    if width == 64:
        return SENet(**kwargs)

    class ScaledSENet(SENet):
        def _make_layer(self, block, planes, *args, **kw):
            return super()._make_layer(block, max(1, planes * width // 64), *args, **kw)

    return ScaledSENet(**kwargs)


@register("latent_seresnet")
def latent_seresnet(in_channels: int = 1, layers: Sequence[int] = (3, 8, 36, 3), width: int = 64,
                    reduction: int = 16, dropout: float | None = 0.2, heads: Sequence[str] = ("lvef", "as_logit"),
                    output_bias: Mapping[str, float] | None = None, weights: str | None = None) -> nn.Module:
    """Multitask 3D SE-ResNet on MedVAE latents (B, in_channels, d, h, w) -> ``{head: (B,)}``.

    Defaults are MedVAE's downstream classifier, MONAI ``SEResNet152`` (``layers=(3, 8, 36, 3)``,
    bottleneck SE blocks, reduction 16, 7^3 stem, dropout 0.2), with one linear unit per head instead of
    its single output. ``layers=(3, 4, 6, 3)`` is SEResNet50; ``width`` (stem width and first-stage
    planes, doubling per stage; 64 in SE-ResNet) and ``layers=(1, 1, 1, 1)`` give the CPU smoke size.
    MedVAE trains it with AdamW (lr 1e-4, weight decay 0.05), a per-epoch cosine schedule and
    label-weighted sampling (``WeightedRandomSampler``) -- the training loop's business, not this module's.
    """
    from monai.networks.blocks.squeeze_and_excitation import SEResNetBottleneck

    if len(layers) != 4 or width < 1:
        raise CardiobenchError(f"latent_seresnet: layers needs 4 stage depths and width >= 1, got {layers}, {width}")
    backbone = _senet(width, spatial_dims=3, in_channels=in_channels, block=SEResNetBottleneck,
                      layers=tuple(layers), groups=1, reduction=reduction, dropout_prob=None, inplanes=width,
                      downsample_kernel_size=1, input_3x3=False, num_classes=1)
    model = LatentSEResNet(backbone, tuple(heads), dropout, output_bias)
    return load_local(model, weights)
