"""The CT-RATE report of a scan, written from its measured labels, and each sentence's true organs."""
from __future__ import annotations

import numpy as np

from .findings import Design

# ------------------------------------------------------------------------------ report

Sentence = tuple[str, frozenset]  # text, its true organs (organ_text's organ names and "whole_image")
_W = "whole_image"


def _s(text: str, *organs: str) -> Sentence:
    return text, frozenset(organs)


def _lobe(label: str, design: Design) -> str:
    """Where a lung finding lies: its planted lobes, or for one measured but not planted (the ground-glass
    halo of a consolidation is a lung opacity) the lobes of what made it, else the lungs."""
    source = {"Lung opacity": "Consolidation"}.get(label, "")
    return design.lobes.get(label) or design.lobes.get(source) or "lungs"


def _positive(label: str, q: dict, design: Design, rng: np.random.Generator) -> list[Sentence]:
    c = lambda *opts: opts[int(rng.integers(len(opts)))]  # noqa: E731
    lobe = _lobe(label, design)
    if label == "Medical material":
        return [{"pacemaker": _s("A pacemaker generator is seen in the left pectoral region, with its lead extending "
                                 "into the right heart chambers.", "heart", _W),
                 "port": _s(c("A port catheter is present in the right anterior chest wall.",
                              "A chemoport is seen in the right chest wall."), _W),
                 "sternotomy": _s(c("Sternotomy wires are noted.", "Median sternotomy wires are present."), _W)
                 }.get(design.metal_kind, _s("Metallic medical material is seen.", _W))]
    if label == "Arterial wall calcification":
        return [_s(c("Atherosclerotic calcified plaques are observed in the thoracic aorta.",
                     "Calcific atheromatous plaques are seen in the wall of the aortic arch and descending aorta.",
                     "Arterial wall calcification is present in the thoracic aorta."), "aorta")]
    if label == "Coronary artery wall calcification":
        return [_s(c("Calcified plaques are seen in the coronary arteries.",
                     "Coronary artery wall calcifications are noted.",
                     "There are calcific plaques along the coronary arteries."), "heart")]
    if label == "Cardiomegaly":
        return [_s(c(f"The heart is enlarged, with a cardiothoracic ratio of about {q['ctr']:.2f}.",
                     "Cardiomegaly is present.", "Heart size is increased."), "heart")]
    if label == "Pericardial effusion":
        mm = design.pericardial_mm
        return [_s(c(f"Pericardial effusion reaching {mm:.0f} mm in thickness is observed.",
                     "There is fluid in the pericardial space.", "Pericardial effusion is present."), "heart")]
    if label == "Hiatal hernia":
        return [c(_s("A hiatal hernia is present.", "esophagus"),
                  _s("Sliding hiatal hernia with part of the stomach above the diaphragm.", "esophagus", "stomach"),
                  _s("Hiatal hernia is observed.", "esophagus"))]
    if label == "Lymphadenopathy":
        st = " and ".join(design.node_stations) or "mediastinal"
        return [_s(c(f"Enlarged lymph nodes up to {q['node_mm']:.0f} mm in short axis are seen in the {st} stations.",
                     "Mediastinal lymphadenopathy is present.",
                     f"Lymph nodes of pathological size in the {st} region."), _W)]
    if label == "Emphysema":
        return [_s(c("Centrilobular emphysematous changes are seen, predominantly in the upper lobes.",
                     "Emphysema is noted in both lungs.", "Paraseptal and centrilobular emphysema in both lungs."),
                   "lung")]
    if label == "Atelectasis":
        return [_s(c(f"Subsegmental atelectasis in the {lobe}.", f"Linear atelectasis is seen in the {lobe}.",
                     f"Passive atelectasis in the posterior {lobe}.", f"Atelectatic changes are seen in the {lobe}."),
                   "lung")]
    if label == "Lung nodule":
        return [_s(c(f"A {q['nodule_mm']:.0f} mm solid nodule is seen in the {lobe}.",
                     f"Nodules up to {q['nodule_mm']:.0f} mm in diameter in the {lobe}.",
                     f"Pulmonary nodule measuring {q['nodule_mm']:.0f} mm in the {lobe}.",
                     f"A lung nodule of {q['nodule_mm']:.0f} mm is present in the {lobe}."), "lung")]
    if label == "Lung opacity":
        return [_s(c(f"Ground-glass opacities are seen in the {lobe}.", f"Patchy opacities in the {lobe}.",
                     f"Areas of ground glass density in the {lobe}."), "lung")]
    if label == "Pulmonary fibrotic sequela":
        return [_s(c(f"Fibrotic sequelae in the {lobe}.", f"Linear fibrotic bands are seen in the {lobe}.",
                     f"Parenchymal fibrotic changes in the {lobe}."), "lung")]
    if label == "Pleural effusion":
        side = design.lobes.get(label, "bilateral")
        text = {"right": c("Pleural effusion is seen in the right hemithorax.", "Right pleural effusion is present."),
                "left": c("Pleural effusion is seen in the left hemithorax.", "Left pleural effusion is present."),
                "bilateral": c("Bilateral pleural effusion is present.",
                               "Pleural effusion is seen in both hemithoraces.")}[side]
        return [_s(text, "lung")]
    if label == "Mosaic attenuation pattern":
        return [_s(c("Mosaic attenuation pattern in both lungs.",
                     "Areas of mosaic attenuation are seen in the lung parenchyma."), "lung")]
    if label == "Peribronchial thickening":
        return [_s(c("Peribronchial thickening is observed.", "Bronchial wall thickening is noted in both lungs."),
                   "lung")]
    if label == "Consolidation":
        return [_s(c(f"Consolidation with air bronchograms in the {lobe}.",
                     f"Consolidation is seen in the {lobe}.", f"Consolidated area in the {lobe}."), "lung")]
    if label == "Bronchiectasis":
        return [_s(c(f"Cylindrical bronchiectasis in the {lobe}.", f"Bronchiectatic changes in the {lobe}."), "lung")]
    if label == "Interlobular septal thickening":
        return [_s(c("Interlobular septal thickening is seen, mostly in the lower lobes.",
                     "Smooth interlobular septal thickening in both lungs."), "lung")]
    raise KeyError(label)


NEGATIONS: dict[str, tuple[Sentence, ...]] = {  # CT-RATE states absences both ways: "No X." and "X was not observed."
    # twin v3: an absent device is not stated (radiologists rarely do); v2's "Medical material was not
    # observed in the chest." named the label only in denials, so its prompt matched the denials
    "Medical material": (),
    "Arterial wall calcification": (_s("No calcified plaque was seen in the thoracic aorta.", "aorta"),
                                    _s("The thoracic aorta is of normal calibre without wall calcification.", "aorta"),
                                    _s("Arterial wall calcification was not observed in the thoracic aorta.", "aorta")),
    "Coronary artery wall calcification": (_s("No coronary artery calcification was detected.", "heart"),
                                           _s("Coronary artery wall calcification was not detected.", "heart")),
    "Cardiomegaly": (_s("Heart size is normal.", "heart"),
                     _s("Heart contour and size are within normal limits.", "heart"),
                     _s("Cardiomegaly is not present.", "heart")),
    "Pericardial effusion": (_s("No pericardial effusion was observed.", "heart"),
                             _s("No pericardial thickening or effusion.", "heart"),
                             _s("Pericardial effusion-thickening was not observed.", "heart")),
    "Hiatal hernia": (_s("No hiatal hernia.", "esophagus"),
                      _s("The esophagus is of normal calibre and there is no hiatal hernia.", "esophagus"),
                      _s("Hiatal hernia was not detected.", "esophagus")),
    "Lymphadenopathy": (_s("No mediastinal or hilar lymphadenopathy.", _W),
                        _s("No lymph nodes of pathological size were detected in the mediastinum.", _W),
                        _s("Lymph nodes in pathological size were not detected in the mediastinum.", _W)),
    "Emphysema": (_s("No emphysema.", "lung"), _s("There are no emphysematous changes in the lungs.", "lung"),
                  _s("Emphysema was not observed.", "lung")),
    "Atelectasis": (_s("No atelectasis was observed.", "lung"), _s("Atelectasis was not detected in the lungs.", "lung")),
    "Lung nodule": (_s("No pulmonary nodule was detected.", "lung"),
                    _s("No mass or nodule was seen in the lung parenchyma.", "lung"),
                    _s("A lung nodule was not detected.", "lung")),
    "Lung opacity": (_s("No ground-glass opacity.", "lung"), _s("Lung opacity was not observed.", "lung")),
    "Pulmonary fibrotic sequela": (_s("No fibrotic changes in the lungs.", "lung"),
                                   _s("Pulmonary fibrotic sequelae were not observed.", "lung")),
    "Pleural effusion": (_s("No pleural effusion was observed.", "lung"),
                         _s("No pleural thickening or effusion.", "lung"),
                         _s("Pleural effusion-thickening was not detected.", "lung")),
    "Mosaic attenuation pattern": (_s("No mosaic attenuation pattern.", "lung"),
                                   _s("Mosaic attenuation pattern was not observed.", "lung")),
    "Peribronchial thickening": (_s("No bronchial wall thickening.", "lung"),
                                 _s("Peribronchial thickening was not observed.", "lung")),
    "Consolidation": (_s("No consolidation.", "lung"),
                      _s("No infiltration or consolidation was seen in the lung parenchyma.", "lung"),
                      _s("Consolidation was not detected in the lung parenchyma.", "lung")),
    "Bronchiectasis": (_s("No bronchiectasis.", "lung"), _s("Bronchiectasis was not observed.", "lung")),
    "Interlobular septal thickening": (_s("No interlobular septal thickening.", "lung"),
                                       _s("Interlobular septal thickening is not seen.", "lung")),
}
NORMALS = (
    (_s("Trachea and both main bronchi are open.", "trachea"), _s("Trachea and main bronchi are patent.", "trachea")),
    (_s("Thoracic aorta diameter is normal.", "aorta"), _s("The calibre of the thoracic aorta is normal.", "aorta")),
    (_s("The liver is of normal size in the sections included.", "liver"),
     _s("No focal lesion was seen in the liver within the scan area.", "liver")),
    (_s("The spleen and the visible parts of the stomach are unremarkable.", "spleen", "stomach"),),
    (_s("No lytic or destructive lesion was seen in the bones within the scan area.", _W),
     _s("Degenerative changes are seen in the thoracic vertebrae.", _W)),
    (_s("Both hemithoraces are symmetrical.", "lung"), _s("Thyroid gland is normal in size.", _W)),
)
ORDER = ["Medical material", "Cardiomegaly", "Pericardial effusion", "Coronary artery wall calcification",
         "Arterial wall calcification", "Lymphadenopathy", "Hiatal hernia", "Pleural effusion", "Emphysema",
         "Lung nodule", "Lung opacity", "Consolidation", "Atelectasis", "Pulmonary fibrotic sequela",
         "Mosaic attenuation pattern", "Peribronchial thickening", "Bronchiectasis", "Interlobular septal thickening"]
SHORT = {"Medical material": "Medical device in the chest", "Arterial wall calcification": "Aortic atherosclerosis",
         "Coronary artery wall calcification": "Coronary artery calcification", "Lung nodule": "Pulmonary nodule",
         "Pulmonary fibrotic sequela": "Fibrotic sequelae in the lung"}


def report(labels: dict[str, int], q: dict, design: Design, rng: np.random.Generator, slice_mm: float
           ) -> tuple[dict[str, str], list[dict]]:
    """CT-RATE report sections written from the measured labels (positives described, a random half of the
    negatives stated), and each findings/impressions sentence with its true organs."""
    c = lambda opts: opts[int(rng.integers(len(opts)))]  # noqa: E731
    findings: list[Sentence] = []
    if not design.contrast and rng.random() < 0.5:
        findings.append(_s("Mediastinal structures were evaluated as suboptimal because the examination was "
                           "without contrast.", _W))
    normals = [c(group) for group in NORMALS if rng.random() < 0.6]
    for label in ORDER:
        if labels[label]:
            findings += _positive(label, q, design, rng)
        elif NEGATIONS[label] and rng.random() < 0.55:
            findings.append(c(NEGATIONS[label]))
        if label == "Hiatal hernia":
            findings += normals[:3]
    findings += normals[3:]
    pos = [lab for lab in ORDER if labels[lab]]
    impressions: list[Sentence] = []
    organ = {"Medical material": (_W,), "Arterial wall calcification": ("aorta",), "Cardiomegaly": ("heart",),
             "Pericardial effusion": ("heart",), "Coronary artery wall calcification": ("heart",),
             "Hiatal hernia": ("esophagus",), "Lymphadenopathy": (_W,)}
    for lab in pos[:5]:
        impressions.append(_s(SHORT.get(lab, lab) + ".", *organ.get(lab, ("lung",))))
    if not pos:
        impressions.append(c((_s("No significant abnormality was detected.", ), _s("Normal chest CT."))))
    contrast = "with intravenous contrast" if design.contrast else "without contrast"
    sections = {
        "ClinicalInformation_EN": c(("Not given.", "Cough.", "Shortness of breath.", "Fever and cough.",
                                     "Chest pain.", "Follow-up.")),
        "Technique_EN": f"Thorax CT was performed {contrast} with {slice_mm:g} mm slice thickness.",
        "Findings_EN": " ".join(t for t, _ in findings),
        "Impressions_EN": " ".join(t for t, _ in impressions),
    }
    truth = [{"section": sec, "sentence": t, "organs": sorted(o)}
             for sec, items in (("Findings_EN", findings), ("Impressions_EN", impressions)) for t, o in items]
    return sections, truth
