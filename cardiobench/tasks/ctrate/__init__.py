"""CT-RATE: chest CT volumes with radiology reports and 18 abnormality labels, plus organ masks
(``ctrate_zeroshot``: fVLM / CT-CLIP zero-shot classification). See README.md."""

FORMATS = {"ct_rate": "format"}
TASKS = {"ctrate_zeroshot": "ctrate_zeroshot"}
MODELS = {"fvlm": "fvlm", "ctclip_global": "fvlm", "bert_text_encoder": "text_encoder"}
LOSSES: dict[str, str] = {}
METRICS: dict[str, str] = {}
FIGURES = {"loss_curves": "figures", "organ_overlays": "figures"}
