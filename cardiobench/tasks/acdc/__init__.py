"""ACDC: cine-MRI short-axis volumes with LV, RV and myocardium labelled at end-diastole and
end-systole (``acdc_seg``: segmentation, clinical indices, robustness to MR artifacts). See README.md."""

FORMATS = {"acdc": "format"}
TASKS = {"acdc_seg": "acdc_seg"}
MODELS: dict[str, str] = {}
LOSSES: dict[str, str] = {}
METRICS = {"clinical_agreement": "metrics"}
FIGURES = {"bland_altman": "figures", "mask_overlay": "figures"}
