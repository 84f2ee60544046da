"""Statistics: bootstrap CIs, DeLong, Bland-Altman, paired comparisons (numpy/scipy only)."""
from .bootstrap import BootstrapCI, bootstrap_ci
from .metrics import auc, mae, pearson_r, r2, rmse

__all__ = ["BootstrapCI", "bootstrap_ci", "auc", "mae", "pearson_r", "r2", "rmse"]
