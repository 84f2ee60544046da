"""Statistics: bootstrap CIs, DeLong, Bland-Altman, paired comparisons (numpy/scipy only)."""
from .agreement import BlandAltman, BlandAltmanRepeated, bland_altman, bland_altman_repeated
from .bootstrap import BootstrapCI, PairedDiff, bootstrap_ci, paired_bootstrap_diff, paired_bootstrap_diff_rows
from .delong import DelongAUC, DelongTest, DelongUnpairedTest, delong_auc, delong_test, delong_test_unpaired
from .hypothesis import ICC, TestResult, holm, icc, mcnemar, wilcoxon_signed_rank
from .inversion import Inversion, format_p, invert
from .metrics import SUM_STATISTICS, auc, mae, pearson_r, r2, r2_lm, rmse

__all__ = ["BlandAltman", "BlandAltmanRepeated", "bland_altman", "bland_altman_repeated", "BootstrapCI",
           "PairedDiff", "bootstrap_ci", "paired_bootstrap_diff", "paired_bootstrap_diff_rows", "DelongAUC", "DelongTest", "DelongUnpairedTest",
           "delong_auc", "delong_test", "delong_test_unpaired", "ICC", "TestResult", "holm", "icc", "mcnemar",
           "wilcoxon_signed_rank", "auc", "mae", "pearson_r", "r2", "r2_lm", "rmse", "SUM_STATISTICS",
           "Inversion", "format_p", "invert"]
