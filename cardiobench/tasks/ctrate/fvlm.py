"""fVLM (Shui et al., ICLR 2025, arXiv 2501.14548): anatomy-level CT vision-language embeddings.

A 3D ViT encodes the CT; one learnable query per organ cross-attends to the ViT tokens that lie inside
that organ's mask, taken from several depths; an organ-specific projection maps the result to the
shared embedding space, where the loss (``cardiobench.tasks.ctrate.contrastive``) meets the organ's report text
(:mod:`.text_encoder`). A global embedding (mean of the final tokens, projected) serves the
CT-CLIP-style global baseline (Hamamci et al.) and the labels that have no organ.

As fVLM's released code (BLIP-based ``blip_pretrain.py``, its ``vit.py`` a MONAI ViT; read in the fork
github.com/gktpmuhammed/fvlm), with MONAI's ``ViT`` here:

* ViT-B: hidden 768, 12 blocks, 12 heads, MLP 3072, qkv bias, dropout 0.1, learnable positions, no
  class token; patches of 16 x 16 x 32 voxels on 112 x 256 x 352 crops at 3 x 1 x 1 mm, HU window
  [-1150, 350] -> [0, 1] (the window is the data pipeline's business).
* Axis order. fVLM loads (x, y, z) arrays and transposes them to (z, y, x): its 112 x 256 x 352 crop
  is 112 slices x 256 mm antero-posterior x 352 mm left-right, patches 48 mm (z) x 16 mm (y) x 32 mm (x).
  This repository's volumes enter depth-first as [B, 1, Z, X, Y] (``tasks/chest_ct/volumes.py``), so the same
  crop and patches here are ``img_size=(112, 352, 256)``, ``patch_size=(16, 32, 16)``: the same 7 x 11 x 16
  = 1232 tokens and the same parameter count, each token covering the same tissue. (An fVLM checkpoint
  would need its patch kernel and position grid permuted from (z, y, x) to (z, x, y).)
* Token depths: fVLM's ViT returns blocks 3, 6 and 9 (0-based, before the final norm) and the final,
  normed output, and its organ queries attend to the organ's tokens of all four, concatenated.
  ``feature_layers`` are block indices; the last block's entry is its output after the final norm.
  The default scales fVLM's depths (4, 7, 10, 12 of 12) to ``num_layers``.
* One ``nn.MultiheadAttention`` (4 heads, dropout 0.1) shared by the organs, zero-initialised queries
  (so a fresh query averages its organ's tokens), one ``Linear(768, embed_dim)`` per organ, embed_dim
  256 (BLIP's contrastive width in the released code).
* Organ tokens: the organ's voxel mask max-pooled to the patch grid (kernel = stride = patch size), so a
  token belongs to an organ when any of its voxels does. fVLM gathers each organ's tokens one sample at
  a time; here all organs of a batch attend at once, each query masked to its own tokens, which gives
  the same result. An organ whose pooled mask is empty is absent: its query sees no token, its
  embedding is zero and ``present`` says False (never a NaN from a softmax over nothing). Which organs
  count for the loss (fVLM: fully inside the crop, ``data.organs.inside_crop``) is decided by the task.

Not kept: fVLM initialises its ViT from an ImageNet MAE ViT-B (2D weights inflated to 3D) and
interpolates the position grid for other input sizes; here the input must be ``img_size`` and the
weights are random or a local state dict (``weights=``). The text encoder's local Hugging Face folder
is ``text_weights=``. Nothing is downloaded.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import CardiobenchError
from ...models.registry import register
from ...models.weights import load_local
from .organ_amounts import OrganAmounts, profile_channels
from .text_encoder import TextEncoder, bert_text_encoder
from .vit_stem import StemViT, conv_stem, stem_grid, stem_strides

PAPER_IMG_SIZE = (112, 352, 256)    # [Z, X, Y] voxels at 3 x 1 x 1 mm (fVLM's 112 x 256 x 352 in [Z, Y, X])
PAPER_PATCH_SIZE = (16, 32, 16)     # fVLM's 16 x 16 x 32 in [Z, Y, X]
FVLM_DEPTHS = (4, 7, 10, 12)        # 1-based blocks of fVLM's 12 whose tokens the organ queries read


def default_feature_layers(num_layers: int) -> tuple[int, ...]:
    """fVLM's token depths scaled to ``num_layers`` blocks (0-based): (3, 6, 9, 11) for 12, (0, 1) for 2."""
    return tuple(sorted({max(round(num_layers * d / 12), 1) - 1 for d in FVLM_DEPTHS}))


def _feature_layers(feature_layers: Sequence[int] | None, num_layers: int) -> tuple[int, ...]:
    """Validated, sorted 0-based block indices (negative ones count from the end)."""
    if feature_layers is None:
        return default_feature_layers(num_layers)
    layers = [int(i) for i in feature_layers]
    if not layers or any(not -num_layers <= i < num_layers for i in layers) or \
            len({i % num_layers for i in layers}) != len(layers):
        raise CardiobenchError(f"fvlm: feature_layers {layers} must be distinct blocks of {num_layers} (0-based)")
    return tuple(sorted(i % num_layers for i in layers))


def organ_masks_from_labels(labels: torch.Tensor, n_organs: int) -> torch.Tensor:
    """A merged organ label map [B, *spatial] (or [B, 1, *spatial]) with ids 1..n_organs (0 background,
    fVLM's convention) as bool masks [B, n_organs, *spatial]."""
    if labels.ndim == 5:
        labels = labels[:, 0]
    ids = torch.arange(1, n_organs + 1, device=labels.device).view(1, -1, *([1] * (labels.ndim - 1)))
    return labels.unsqueeze(1) == ids


def patch_token_mask(masks: torch.Tensor, patch_size: Sequence[int], grid: Sequence[int]) -> torch.Tensor:
    """Organ masks [B, O, *spatial] as bool [B, O, N]: which of the ViT's N tokens (row-major over the
    patch grid, the order of MONAI's patch embedding) each organ touches.

    Voxel masks (spatial = grid x patch) are max-pooled with kernel = stride = patch; masks already on
    the patch grid (spatial = grid) are used as they are.
    """
    b, o, spatial = masks.shape[0], masks.shape[1], tuple(masks.shape[2:])
    grid, patch = tuple(grid), tuple(patch_size)
    if spatial == grid:
        pooled = masks != 0
    elif spatial == tuple(g * p for g, p in zip(grid, patch)):
        # one sample at a time, in float16 (exact for 0/1): 24 paper-size organ masks are 240 M voxels
        pooled = torch.cat([F.max_pool3d((m != 0).to(torch.float16)[:, None], kernel_size=patch, stride=patch) > 0
                            for m in masks])
    else:
        raise CardiobenchError(f"organ masks of spatial shape {spatial} fit neither the image "
                               f"{tuple(g * p for g, p in zip(grid, patch))} nor the patch grid {grid}")
    return pooled.reshape(b, o, -1)


class OrganQueryAttention(nn.Module):
    """One learnable query per organ; a shared ``nn.MultiheadAttention`` lets each query attend only to
    the tokens inside its organ, over several token sets (depths) at once.

    ``forward(tokens, token_mask)``: tokens, one [B, N, C] per depth; token_mask bool [B, O, N] (the
    same tokens at every depth). Returns ``(out [B, O, C], present [B, O])``; absent organs give zeros.
    """

    def __init__(self, n_organs: int, dim: int, num_heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(n_organs, dim))  # fVLM's zero init: a fresh query averages
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)

    def forward(self, tokens: Sequence[torch.Tensor], token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.cat(list(tokens), dim=1)                      # [B, L*N, C], depth-major
        allowed = token_mask.bool().repeat(1, 1, len(tokens))      # [B, O, L*N], same order as keys
        if allowed.shape[:2] != (keys.shape[0], len(self.queries)) or allowed.shape[2] != keys.shape[1]:
            raise CardiobenchError(f"token mask {tuple(token_mask.shape)} does not fit {len(tokens)} x "
                                   f"{tuple(tokens[0].shape)} tokens and {len(self.queries)} organs")
        present = allowed.any(-1)
        # an absent organ would softmax over nothing, NaN with some attention kernels (torch's CPU path
        # happens to give 0): let it see every token, then zero its output
        allowed = allowed | ~present[..., None]
        blocked = (~allowed).repeat_interleave(self.attn.num_heads, dim=0)  # [B*heads, O, L*N], MHA's layout
        query = self.queries.unsqueeze(0).expand(keys.shape[0], -1, -1).to(keys.dtype)
        out, _ = self.attn(query, keys, keys, attn_mask=blocked, need_weights=False)
        return out * present[..., None].to(out.dtype), present


class FVLM(nn.Module):
    """Image side (ViT + organ queries + global projection) and text side of fVLM; see the module docstring.

    ``encode_image(x, organ_masks)`` -> ``(organ_emb [B, O, D], present [B, O], global_emb [B, D])``;
    ``encode_text(input_ids, attention_mask)`` -> ``[N, D]``; all unit-norm (absent organs zero).
    ``forward`` runs both (what DDP needs to see).
    """

    def __init__(self, vit: nn.Module, organs: Sequence[str], img_size: Sequence[int], patch_size: Sequence[int],
                 feature_layers: Sequence[int], embed_dim: int, text: TextEncoder, query_heads: int = 4,
                 query_dropout: float = 0.1, amounts: OrganAmounts | None = None):
        super().__init__()
        self.vit, self.text, self.organs = vit, text, tuple(organs)
        self.img_size, self.patch_size = tuple(img_size), tuple(patch_size)
        self.grid = tuple(s // p for s, p in zip(self.img_size, self.patch_size))
        self.feature_layers = tuple(feature_layers)
        hidden = vit.norm.normalized_shape[0]
        # no organs (the global baseline): no query module, so DDP never waits for its gradients
        self.organ_query = OrganQueryAttention(len(self.organs), hidden, query_heads, query_dropout) \
            if self.organs else None
        self.organ_projs = nn.ModuleList(nn.Linear(hidden, embed_dim) for _ in self.organs)
        self.global_proj = nn.Linear(hidden, embed_dim)
        self.embed_dim = embed_dim
        self.amounts = amounts if self.organs else None

    def tokens(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """ViT tokens [B, N, C] at each of ``feature_layers`` and the final (normed) tokens."""
        expected = (1, *self.img_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise CardiobenchError(f"fvlm expects volumes [B, 1, Z, X, Y] = [B, {', '.join(map(str, expected))}], "
                                   f"got {tuple(x.shape)}")
        final, blocks = self.vit(x)
        last = len(blocks) - 1
        return [final if i == last else blocks[i] for i in self.feature_layers], final

    def encode_image(self, x: torch.Tensor, organ_masks: torch.Tensor | None = None,
                     organ_profile: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Organ embeddings [B, O, D] (zero where absent), presence bool [B, O] (pooled mask non-empty)
        and the global embedding [B, D].

        ``organ_masks``: [B, O, Z, X, Y] voxel masks in the order of ``organs`` (or already on the
        patch grid, [B, O, *grid]); None counts every organ absent. ``organ_profile``: [B, O, C], each
        organ's fraction of voxels above its levels on each view (:func:`~.organ_amounts.organ_profile`), required
        when the model has the organ-amounts branch.
        """
        levels, final = self.tokens(x)
        b, n_organs = x.shape[0], len(self.organs)
        amounts = None
        if self.amounts is not None:
            if organ_profile is None:
                raise CardiobenchError("this fvlm has the organ-amounts branch (model.amounts): it needs each "
                                       "volume's organ profile")
            amounts = self.amounts(organ_profile.to(x.device)).to(final.dtype)  # [B, O (+1 outside), C]
        pooled_all = final.mean(dim=1)
        if amounts is not None and amounts.shape[1] > n_organs:  # the outside row feeds the whole-image embedding
            pooled_all = pooled_all + amounts[:, n_organs]
        global_emb = F.normalize(self.global_proj(pooled_all), dim=-1)
        if organ_masks is None or n_organs == 0:
            present = torch.zeros(b, n_organs, dtype=torch.bool, device=x.device)
            return global_emb.new_zeros(b, n_organs, self.embed_dim), present, global_emb
        if organ_masks.ndim != 5 or tuple(organ_masks.shape[:2]) != (b, n_organs):
            raise CardiobenchError(f"organ_masks must be [B, O, Z, X, Y] with B={b}, O={n_organs} "
                                   f"({', '.join(self.organs)}), got {tuple(organ_masks.shape)}")
        token_mask = patch_token_mask(organ_masks.to(x.device), self.patch_size, self.grid)
        pooled, present = self.organ_query(levels, token_mask)
        if amounts is not None:
            pooled = pooled + amounts[:, :n_organs].to(pooled.dtype)
        organ_emb = torch.stack([proj(pooled[:, k]) for k, proj in enumerate(self.organ_projs)], dim=1)
        organ_emb = F.normalize(organ_emb, dim=-1) * present[..., None].to(organ_emb.dtype)
        return organ_emb, present, global_emb

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-norm text embeddings [N, D] from token ids [N, T]."""
        return self.text(input_ids, attention_mask)

    def forward(self, x: torch.Tensor, organ_masks: torch.Tensor | None = None,
                input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """``{"organ", "present", "global"}`` of ``encode_image`` and, with ids, ``"text"``."""
        organ_emb, present, global_emb = self.encode_image(x, organ_masks)
        out = {"organ": organ_emb, "present": present, "global": global_emb}
        if input_ids is not None:
            out["text"] = self.encode_text(input_ids, attention_mask if attention_mask is not None
                                           else torch.ones_like(input_ids))
        return out


def vit_encoder(img_size: Sequence[int] = PAPER_IMG_SIZE, patch_size: Sequence[int] = PAPER_PATCH_SIZE,
                hidden_size: int = 768, mlp_dim: int = 3072, num_layers: int = 12, num_heads: int = 12,
                dropout: float = 0.1, stem: Sequence[int] | None = None) -> nn.Module:
    """MONAI's 3D ``ViT`` as fVLM configures it (qkv bias, learnable positions, no class token).

    ``stem``: channels of a convolutional stem that replaces the patchify projection (one stride-2 stage
    per entry, :mod:`.vit_stem`); None is fVLM's patchify.

    MONAI's blocks carry a cross-attention LayerNorm (``norm_cross_attn``) that a ViT without cross
    attention never uses; it is frozen so DDP does not wait for its gradients (it stays in the state
    dict, so MONAI checkpoints still load).
    """
    from monai.networks.nets import ViT

    if len(img_size) != 3 or len(patch_size) != 3 or any(s % p for s, p in zip(img_size, patch_size)):
        raise CardiobenchError(f"fvlm: img_size {tuple(img_size)} must be 3 multiples of "
                               f"patch_size {tuple(patch_size)}")
    strides, rest = stem_strides(patch_size, len(stem)) if stem else ([], tuple(patch_size))
    vit = ViT(in_channels=int(stem[-1]) if stem else 1, img_size=stem_grid(img_size, strides), patch_size=rest,
              hidden_size=hidden_size, mlp_dim=mlp_dim, num_layers=num_layers, num_heads=num_heads, proj_type="conv",
              pos_embed_type="learnable", classification=False, dropout_rate=dropout, spatial_dims=3, qkv_bias=True)
    for block in vit.blocks:
        if not block.with_cross_attention:
            block.norm_cross_attn.requires_grad_(False)
        fused_attention(block.attn)
    return StemViT(conv_stem(stem, strides), vit) if stem else vit


def fused_attention(attn: nn.Module) -> None:
    """Route a MONAI ``SABlock`` through ``torch.nn.functional.scaled_dot_product_attention`` (its
    ``use_flash_attention`` path: flash / memory-efficient kernels on GPUs, 1.4x faster training steps
    than its einsum path for the smoke ViT on 2 CPU cores). That path hands its ``dropout_rate`` to the
    kernel in eval mode too, so a pre-hook sets the rate to 0 outside training."""
    rate = float(attn.dropout_rate)
    attn.use_flash_attention = True
    attn.register_forward_pre_hook(lambda module, args: setattr(module, "dropout_rate", rate if module.training else 0.0))


@register("fvlm")
def fvlm(organs: Sequence[str], img_size: Sequence[int] = PAPER_IMG_SIZE, patch_size: Sequence[int] = PAPER_PATCH_SIZE,
         hidden_size: int = 768, mlp_dim: int = 3072, num_layers: int = 12, num_heads: int = 12, dropout: float = 0.1,
         feature_layers: Sequence[int] | None = None, query_heads: int = 4, query_dropout: float = 0.1,
         embed_dim: int = 256, text_hidden_size: int = 768, text_layers: int = 12, text_heads: int = 12,
         text_intermediate_size: int = 3072, vocab_size: int = 30522, max_text_length: int = 512,
         text_pooling: str = "cls", text_weights: str | None = None, weights: str | None = None,
         stem: Sequence[int] | None = None, amounts: int | None = None,
         amount_views: Sequence[str] | None = None, amount_outside: bool = False) -> FVLM:
    """fVLM with one query per organ of ``organs`` (e.g. ``data.organs`` groups "24" or "4").

    Defaults are the paper's (ViT-B on [1, 112, 352, 256] volumes in [Z, X, Y] order, BERT-base text);
    the smoke profile passes small sizes. ``feature_layers``: 0-based ViT blocks whose tokens the organ
    queries read (default :func:`default_feature_layers`). ``vocab_size`` must cover the tokenizer's
    vocabulary. ``text_weights``: a local Hugging Face BERT folder (its own config; the ``text_*`` sizes and
    ``vocab_size`` are then ignored). ``text_pooling``: ``cls`` (fVLM) or ``mean`` (a text encoder
    trained from random init, see :class:`~cardiobench.tasks.ctrate.text_encoder.TextEncoder`). ``stem``: channels
    of a convolutional stem before the ViT (:mod:`.vit_stem`; None: fVLM's patchify). ``amounts``: levels
    of the organ-amounts branch (:mod:`.organ_amounts`, a cardiobench option; None: fVLM's organ queries
    alone), counted on each of ``amount_views`` (default ``["raw"]``); ``amount_outside``: one more profile
    row, the unlabelled body tissue outside every organ (:func:`~.organ_amounts.outside_region`), added to
    the whole-image embedding. ``weights``: a local state dict of the whole model.
    """
    organs = [str(o) for o in organs]
    if len(set(organs)) != len(organs):
        raise CardiobenchError(f"fvlm: organ names must be distinct, got {organs}")
    if hidden_size % query_heads:
        raise CardiobenchError(f"fvlm: query_heads={query_heads} must divide hidden_size={hidden_size}")
    layers = _feature_layers(feature_layers, num_layers)
    vit = vit_encoder(img_size, patch_size, hidden_size, mlp_dim, num_layers, num_heads, dropout,
                      list(stem) if stem else None)
    text_sizes = {} if text_weights else dict(
        hidden_size=text_hidden_size, num_hidden_layers=text_layers, num_attention_heads=text_heads,
        intermediate_size=text_intermediate_size, vocab_size=vocab_size, max_position_embeddings=max_text_length)
    text = bert_text_encoder(embed_dim=embed_dim, weights=text_weights, pooling=text_pooling, **text_sizes)
    branch = None
    if amounts and organs:
        channels = profile_channels(amount_views or ("raw",), int(amounts))
        branch = OrganAmounts(len(organs) + bool(amount_outside), hidden_size, channels)
    model = FVLM(vit, organs, img_size, patch_size, layers, embed_dim, text, query_heads, query_dropout, branch)
    return load_local(model, weights)


@register("ctclip_global")
def ctclip_global(**kwargs) -> FVLM:
    """The CT-CLIP-style global baseline: :func:`fvlm` without organ queries (only ``global_emb``)."""
    return fvlm(organs=(), **kwargs)
