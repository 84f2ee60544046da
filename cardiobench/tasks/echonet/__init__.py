"""EchoNet-Dynamic: apical-4-chamber echo videos with traced end-diastolic and end-systolic frames
(``echonet_ef``: ejection fraction; ``echonet_seg``: left-ventricle segmentation). See README.md."""

FORMATS = {"echonet_dynamic": "format"}
TASKS = {"echonet_ef": "echonet_ef", "echonet_seg": "echonet_seg"}
MODELS: dict[str, str] = {}
LOSSES = {"weighted_mse": "losses", "weighted_mse_as_written": "losses"}
METRICS: dict[str, str] = {}
FIGURES = {"area_curves": "figures"}
# ci.mode=echonet: the original EchoNet-Dynamic code's interval, the 5th-95th percentiles of 10 000
# bootstrap resamples (a 90 % interval), for reproducing its tables exactly
CI_MODES = {"echonet": dict(level=0.90, method="percentile", n_resamples=10000,
                            label="echonet: 5th-95th bootstrap percentiles, 10 000 resamples (a 90 % interval, "
                                  "as the original code)")}
