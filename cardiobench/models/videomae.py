"""VideoMAE EF regressor: a ``transformers`` VideoMAE backbone, attention pooling over its tokens,
and an MLP head whose dropout doubles as MC-dropout at test time.

The backbone is built from a ``VideoMAEConfig`` (never ``from_pretrained``: nothing is downloaded);
pretrained weights are an optional local state dict. Input is (B, T, C, H, W), ImageNet-normalised.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register
from .weights import load_local


class AttentionPool(nn.Module):
    """Softmax-weighted mean of the tokens, scores from a small tanh MLP (hidden -> 128 -> 1)."""

    def __init__(self, hidden: int, inner: int = 128):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(hidden, inner), nn.Tanh(), nn.Linear(inner, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(tokens).float(), dim=1).to(tokens.dtype)  # (B, N, 1)
        return (tokens * weights).sum(dim=1)


class VideoMAERegressor(nn.Module):
    def __init__(self, config, output_bias: float = 55.0, dropout: float = 0.1):
        from transformers import VideoMAEModel

        super().__init__()
        self.backbone = VideoMAEModel(config)
        h = config.hidden_size
        self.pool = AttentionPool(h)
        self.head = nn.Sequential(nn.LayerNorm(h), nn.Dropout(dropout), nn.Linear(h, 256), nn.GELU(),
                                  nn.Dropout(dropout), nn.Linear(256, 64), nn.GELU(), nn.Linear(64, 1))
        with torch.no_grad():
            self.head[-1].bias.fill_(float(output_bias))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(pixel_values=pixel_values).last_hidden_state
        return self.head(self.pool(tokens))

    def param_groups(self, lr_backbone: float, lr_head: float) -> list[dict]:
        """Two learning rates: a small one for the (pretrained) backbone, a large one for pool + head."""
        head = [*self.pool.parameters(), *self.head.parameters()]
        return [{"params": list(self.backbone.parameters()), "lr": lr_backbone, "name": "backbone"},
                {"params": head, "lr": lr_head, "name": "head"}]


@register("videomae")
def videomae(image_size: int = 224, num_frames: int = 16, tubelet_size: int = 2, patch_size: int = 16,
             hidden_size: int = 768, num_hidden_layers: int = 12, num_attention_heads: int = 12,
             intermediate_size: int = 3072, dropout: float = 0.1, backbone_dropout: float = 0.0,
             weights: str | None = None,
             output_bias: float | None = 55.0, use_mean_pooling: bool = False) -> nn.Module:
    """VideoMAE regressor; defaults are VideoMAE-base (16 frames, tubelet 2, 16 px patches, 224 px).

    ``backbone_dropout`` (VideoMAE's hidden and attention dropout, 0 in VideoMAE-base) regularises
    small backbones trained from scratch; MC-dropout then samples it too.
    """
    from transformers import VideoMAEConfig

    config = VideoMAEConfig(image_size=image_size, num_frames=num_frames, tubelet_size=tubelet_size,
                            patch_size=patch_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                            num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                            use_mean_pooling=use_mean_pooling, hidden_dropout_prob=backbone_dropout,
                            attention_probs_dropout_prob=backbone_dropout)
    model = VideoMAERegressor(config, output_bias=55.0 if output_bias is None else output_bias, dropout=dropout)
    load_local(model, weights)
    return model
