"""Chest CT with echo labels (format ``ct_echo``): non-contrast chest CT volumes paired with the LVEF
and aortic-stenosis grade of a nearby echo (``ct_cardiac``). See README.md."""

FORMATS = {"ct_echo": "format"}
TASKS = {"ct_cardiac": "ct_cardiac"}
MODELS = {"medvae_autoencoder": "medvae", "latent_seresnet": "medvae"}
LOSSES: dict[str, str] = {}
METRICS: dict[str, str] = {}
FIGURES: dict[str, str] = {}
