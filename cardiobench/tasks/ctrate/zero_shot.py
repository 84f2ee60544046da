"""Zero-shot scoring of CT-RATE's 18 labels by prompts: which embedding carries a label, and its prompts.

fVLM (Shui et al., ICLR 2025) scores a disease on the embedding of the organ it belongs to with the
prompt pair ("X.", "Not X."); CT-CLIP (Hamamci et al. 2024) scores every label on the whole-image
embedding with ("X is present.", "X is not present."). fVLM's X is not always the label's name: its
released evaluation (``eval.py``, ``DataFolder.test_items``, authors' last commit d768ec1, 2025-04-07, read
in the fork github.com/gktpmuhammed/fvlm) prompts "Atelectatic.", "Nodule.", "Opacity." and "Pulmonary
fibrotic." for four labels (:data:`FVLM_PHRASES`), keeps the phrase's capital after "Not" ("Not
Emphysema.") and uses the label names elsewhere. The probability is the softmax over the pair
of the image's similarities to the two prompts (at the model's temperature; AUROC does not depend on
it). fVLM's evaluation code leaves out Medical material and Lymphadenopathy (no organ carries them);
here they are scored on the whole-image embedding and the run says so (``zero_shot.json``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

GLOBAL = "global"
LABEL_ORGAN = {  # fVLM's organ per CT-RATE label; the two absent ones go to the whole image
    "Medical material": GLOBAL, "Lymphadenopathy": GLOBAL,
    "Arterial wall calcification": "aorta", "Cardiomegaly": "heart", "Pericardial effusion": "heart",
    "Coronary artery wall calcification": "heart", "Hiatal hernia": "esophagus",
    **{label: "lung" for label in ("Emphysema", "Atelectasis", "Lung nodule", "Lung opacity",
                                   "Pulmonary fibrotic sequela", "Pleural effusion", "Mosaic attenuation pattern",
                                   "Peribronchial thickening", "Consolidation", "Bronchiectasis",
                                   "Interlobular septal thickening")}}
PROMPTS = {"fvlm": ("{X}.", "Not {X}."), "ctclip": ("{X} is present.", "{X} is not present.")}
# fVLM's own phrase where it is not the label's name (released eval.py test items, see the module docstring)
FVLM_PHRASES = {"Atelectasis": "Atelectatic", "Lung nodule": "Nodule", "Lung opacity": "Opacity",
                "Pulmonary fibrotic sequela": "Pulmonary fibrotic"}
FAMILY_PHRASES = {"fvlm": FVLM_PHRASES, "ctclip": {}}


def phrase(label: str, phrases: Mapping[str, str] | None = None, family: str | None = None) -> str:
    """The words X that name ``label`` in its prompts: ``phrases`` (a run's own) first, then the family's
    (:data:`FAMILY_PHRASES`), else the label itself."""
    return (phrases or {}).get(label) or FAMILY_PHRASES.get(family or "", {}).get(label, label)


def prompt_pair(label: str, family: str, phrases: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(positive, negative) prompt of ``label`` in a family: ``fvlm`` or ``ctclip``."""
    if family not in PROMPTS:
        raise ValueError(f"prompt family must be one of {', '.join(PROMPTS)}, not {family!r}")
    x = phrase(label, phrases, family)
    pos, neg = PROMPTS[family]
    return pos.format(X=x), neg.format(X=x)


def label_source(label: str, organs: Sequence[str]) -> str:
    """The embedding that scores ``label``: its organ when the model has that organ, else ``global``."""
    organ = LABEL_ORGAN.get(label, GLOBAL)
    return organ if organ in organs else GLOBAL


def pair_probability(image: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """softmax over (positive, negative) of the unit image embeddings' similarities, [N] -> P(positive)."""
    logits = torch.stack([image @ positive, image @ negative], dim=-1) / temperature
    return torch.softmax(logits.float(), dim=-1)[..., 0]
