"""EchoNet EF losses: the clinically weighted MSE of the VideoMAE EF regressor, as intended and as its
code runs it (registered as ``train.loss`` names when the family's task is imported)."""
from __future__ import annotations

import torch

from ...losses import register_loss

# Clinically weighted MSE (VideoMAE EF regressor): errors matter most where decisions are made.
# EF < 30: severe dysfunction; 30-40: reduced EF (HFrEF threshold); > 70: hyperdynamic.
EF_WEIGHT_BANDS = ((30.0, 3.0), (40.0, 2.0))  # (upper bound, weight), lower bands first
EF_WEIGHT_HIGH = (70.0, 2.5)                 # strictly above 70


def clinical_weights(ef: torch.Tensor) -> torch.Tensor:
    """Piecewise weights of the true EF: 3.0 below 30, 2.0 in [30, 40), 2.5 above 70, else 1.0."""
    w = torch.ones_like(ef)
    w = torch.where(ef > EF_WEIGHT_HIGH[0], torch.full_like(ef, EF_WEIGHT_HIGH[1]), w)
    w = torch.where(ef < EF_WEIGHT_BANDS[1][0], torch.full_like(ef, EF_WEIGHT_BANDS[1][1]), w)
    w = torch.where(ef < EF_WEIGHT_BANDS[0][0], torch.full_like(ef, EF_WEIGHT_BANDS[0][1]), w)
    return w


def weighted_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of clinical_weights(target) * (pred - target)^2 (a weighted mean, not normalised by sum(w))."""
    return (clinical_weights(target) * (pred - target) ** 2).mean()


def clinical_weights_as_written(ef: torch.Tensor) -> torch.Tensor:
    """The seed's weights as its code runs them: it assigns 3.0 where EF < 30 and then 2.0 where EF < 40,
    which overwrites the first, so EF < 30 gets 2.0 (2.5 above 70, else 1.0)."""
    w = torch.ones_like(ef)
    w = torch.where(ef < EF_WEIGHT_BANDS[0][0], torch.full_like(ef, EF_WEIGHT_BANDS[0][1]), w)
    w = torch.where(ef < EF_WEIGHT_BANDS[1][0], torch.full_like(ef, EF_WEIGHT_BANDS[1][1]), w)
    w = torch.where(ef > EF_WEIGHT_HIGH[0], torch.full_like(ef, EF_WEIGHT_HIGH[1]), w)
    return w


def weighted_mse_as_written(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """weighted_mse with :func:`clinical_weights_as_written`: the seed's loss reproduced as published."""
    return (clinical_weights_as_written(target) * (pred - target) ** 2).mean()


register_loss("weighted_mse", weighted_mse)
register_loss("weighted_mse_as_written", weighted_mse_as_written)
