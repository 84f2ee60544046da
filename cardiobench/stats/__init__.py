"""Statistics: bootstrap CIs, DeLong, Bland-Altman, paired comparisons (numpy/scipy only)."""
from .bootstrap import BootstrapCI, bootstrap_ci
from .delong import DelongAUC, DelongTest, DelongUnpairedTest, delong_auc, delong_test, delong_test_unpaired
from .metrics import auc, mae, pearson_r, r2, rmse

__all__ = ["BootstrapCI", "bootstrap_ci", "DelongAUC", "DelongTest", "DelongUnpairedTest", "delong_auc",
           "delong_test", "delong_test_unpaired", "auc", "mae", "pearson_r", "r2", "rmse"]
