"""Organ-level report texts: fVLM's decomposed files, the rule-based decomposer (sentences, organ
lexicon, normal template) and its precision/recall."""
from __future__ import annotations

import json
import math

import pytest

from cardiobench.errors import DataError
from cardiobench.tasks.ctrate import organ_text as ot
from cardiobench.tasks.ctrate.organs import ORGANS_4, ORGANS_24

# ----------------------------------------------------------------------------- sentences


def test_split_keeps_decimals_and_abbreviations():
    text = ("A nodule of 3.5 mm is seen, e.g. in the right upper lobe, approx. 4.2 x 3.1 cm in size. "
            "Aorta diameter is 3.8 cm. No. 12 series shows it. Heart is normal")
    assert ot.split_sentences(text) == [
        "A nodule of 3.5 mm is seen, e.g. in the right upper lobe, approx. 4.2 x 3.1 cm in size.",
        "Aorta diameter is 3.8 cm.", "No. 12 series shows it.", "Heart is normal"]


def test_split_brackets_lists_and_missing_spaces():
    text = ("1. Cardiomegaly. 2. Widespread nodules (Metastasis? Lymphangitic spread?) in both lungs.\n"
            "Infective process? Hepatosteatosis.The spleen is normal.")
    assert ot.split_sentences(text) == [
        "Cardiomegaly.", "Widespread nodules (Metastasis? Lymphangitic spread?) in both lungs.",
        "Infective process?", "Hepatosteatosis.", "The spleen is normal."]
    assert ot.split_sentences("Nodule (unclosed bracket. Heart is normal.") == [
        "Nodule (unclosed bracket.", "Heart is normal."]
    assert ot.split_sentences(None) == [] and ot.split_sentences(float("nan")) == []
    assert ot.split_sentences("  ") == []


# ----------------------------------------------------------------------------- organ lexicon

SENTENCES = [
    ("Trachea and both main bronchi are open.", {"trachea"}),
    ("No occlusive pathology was detected in the trachea and both main bronchi.", {"trachea"}),
    ("Heart contour and size are normal.", {"heart"}),
    ("Minimal pericardial effusion is observed.", {"heart"}),
    ("No pathologically enlarged lymph nodes were detected in the mediastinum.", {ot.WHOLE_IMAGE}),
    ("Atelectasis is seen in the lower lobe of the left lung.", {"lung"}),
    ("No pleural effusion.", {"lung"}),
    ("Thoracic esophagus calibration was normal and no significant tumoral wall thickening was detected.",
     {"esophagus"}),
    ("Calcific atheroma plaques are observed in the aortic arch.", {"aorta"}),
    ("Thoracic aorta diameter is normal.", {"aorta"}),
    ("Coronary artery wall calcifications are present.", {"heart"}),
    ("Aortic valve calcification is noted.", {"heart"}),
    ("Sliding type hiatal hernia is observed.", {"esophagus"}),
    ("A 3.5 mm nonspecific nodule is seen in the upper lobe of the right lung.", {"lung"}),
    ("Millimetric nonspecific nodules.", {"lung"}),
    ("A 15 mm nodule is observed in the left adrenal gland.", {ot.WHOLE_IMAGE}),
    ("Hypodense nodule in the right lobe of the thyroid gland.", {ot.WHOLE_IMAGE}),
    ("Degenerative changes are observed in the thoracic vertebrae.", {ot.WHOLE_IMAGE}),
    ("Mosaic attenuation pattern is present in both lungs.", {"lung"}),
    ("Interlobular septal thickening is observed.", {"lung"}),
    ("Bronchiectasis and peribronchial thickening in both lower lobes.", {"lung"}),
    ("Ground-glass opacities in both lungs, compatible with viral pneumonia.", {"lung"}),
    ("A small amount of pleural and a small amount of pericardial effusion.", {"lung", "heart"}),
    ("Liver and spleen sizes are normal.", {"liver", "spleen"}),
    ("Cholelithiasis.", {"gallbladder"}),
    ("Bilateral renal cysts.", {"kidney"}),
    ("Atherosclerosis.", {"aorta"}),
    ("Coronary atherosclerosis.", {"heart"}),
    ("Old fracture of the 7th rib on the right.", {"rib"}),
    ("Pulmonary artery diameter is 32 mm.", {ot.WHOLE_IMAGE}),
    ("Examination within normal limits.", set()),
]


@pytest.mark.parametrize("sentence,expected", SENTENCES)
def test_sentence_organs(sentence, expected):
    assert ot.sentence_organs(sentence) == expected


def test_lexicon_names_only_known_organs():
    known = set(ORGANS_24) | {ot.WHOLE_IMAGE}
    for rule in (*ot.PHRASES, *ot.TERMS, *ot.WEAK):
        assert set(rule.organs) <= known, rule


# ----------------------------------------------------------------------------- decompose

FINDINGS = ("Trachea and both main bronchi are open. Heart contour and size are normal. "
            "No pleural effusion. Atelectasis is seen in the lower lobe of the left lung.")
IMPRESSIONS = "Atelectasis in the left lower lobe. Hiatal hernia."


def test_decompose_orders_impression_then_findings_and_keeps_negations():
    texts = ot.decompose(FINDINGS, IMPRESSIONS, ORGANS_4)
    assert list(texts) == list(ORGANS_4)
    assert texts["lung"] == ("Atelectasis in the left lower lobe. No pleural effusion. "
                             "Atelectasis is seen in the lower lobe of the left lung.")
    assert texts["heart"] == "heart shows no significant abnormalities. Heart contour and size are normal."
    assert texts["esophagus"] == "Hiatal hernia."
    assert texts["aorta"] == "aorta shows no significant abnormalities."
    assert not ot.is_normal("lung", texts["lung"]) and ot.is_normal("heart", texts["heart"])


def test_normal_template_for_organs_without_sentences():
    texts = ot.decompose(FINDINGS, IMPRESSIONS)
    assert list(texts) == list(ORGANS_24)
    for organ in ("liver", "face", "autochthon", "aorta"):
        assert texts[organ] == f"{organ} shows no significant abnormalities."
    assert ot.decompose(None, None, ["lung"]) == {"lung": "lung shows no significant abnormalities."}
    assert ot.normal_text("lung") == "lung shows no significant abnormalities."


def test_decompose_is_deterministic_and_whole_image_on_request():
    report = (FINDINGS + " No pathologically enlarged lymph nodes were detected in the mediastinum.",
              IMPRESSIONS + " Mediastinal lymphadenopathy.")
    first = ot.decompose(*report, [*ORGANS_24, ot.WHOLE_IMAGE])
    assert all(ot.decompose(*report, [*ORGANS_24, ot.WHOLE_IMAGE]) == first for _ in range(3))
    assert first[ot.WHOLE_IMAGE] == ("Mediastinal lymphadenopathy. No pathologically enlarged lymph nodes "
                                     "were detected in the mediastinum.")
    assert "lymph" not in " ".join(v for k, v in first.items() if k != ot.WHOLE_IMAGE)


def test_compose_follows_the_release():
    assert ot.compose("lung", "Nodule (5 mm)", 'Lung "normal"') == "Nodule 5 mm. Lung normal."
    assert ot.compose("lung", None, "Nodule.") == "lung shows no significant abnormalities. Nodule."
    assert ot.compose("lung") == "lung shows no significant abnormalities."


# ----------------------------------------------------------------------------- scores


def test_decomposer_scores():
    predicted = [{"lung"}, {"heart", "aorta"}, set(), {"lung"}]
    truth = [{"lung"}, {"heart"}, {"liver"}, {"lung", "heart"}]
    precision, recall = ot.decomposer_scores(predicted, truth)
    assert precision == pytest.approx(3 / 4) and recall == pytest.approx(3 / 5)
    assert ot.decomposer_scores(predicted, truth, organs=["lung"]) == (1.0, 1.0)
    p, r = ot.decomposer_scores([set()], [{"lung"}])
    assert math.isnan(p) and r == 0.0
    with pytest.raises(ValueError, match="predicted"):
        ot.decomposer_scores(predicted, truth[:2])


def test_scores_of_the_lexicon_on_labelled_sentences():
    precision, recall = ot.decomposer_scores([ot.sentence_organs(s) for s, _ in SENTENCES],
                                             [t for _, t in SENTENCES])
    assert precision == 1.0 and recall == 1.0


# ----------------------------------------------------------------------------- fVLM's files


def _write(path, obj):
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def test_load_decomposed_by_scan_or_volume_name(tmp_path):
    desc = _write(tmp_path / "desc_info.json", {"train_1_a": {"lung": "Nodule in the right lung",
                                                              "heart": None, "Conclusion": "ignored"}})
    conc = _write(tmp_path / "conc_info.json", {"train_1_a_2.nii.gz": {"heart": "Cardiomegaly."}})
    info = ot.load_decomposed(desc, conc)
    assert info.desc["train_1_a"] == {"lung": "Nodule in the right lung", "Conclusion": "ignored"}
    assert info.texts("train_1_a_1.nii.gz", ORGANS_4) == {
        "lung": "lung shows no significant abnormalities. Nodule in the right lung.",
        "heart": "heart shows no significant abnormalities.",
        "esophagus": "esophagus shows no significant abnormalities.",
        "aorta": "aorta shows no significant abnormalities."}
    assert info.texts("train_1_a_2.nii.gz", ["heart"]) == {"heart": "Cardiomegaly."}
    assert ot.scan_keys("valid_3_b_1.nii.gz") == ["valid_3_b_1.nii.gz", "valid_3_b_1", "valid_3_b"]
    with pytest.raises(DataError, match="in neither .*desc_info.json.*conc_info.json"):
        info.texts("train_9_a_1.nii.gz")


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ('["a"]', "top level is a list"),
    ('{"train_1_a": "lung ok"}', "entry 'train_1_a' is a str"),
    ('{"train_1_a": {"lung": 3}}', "text of 'lung' is not a string"),
])
def test_load_info_errors_name_the_file(tmp_path, content, message):
    path = _write(tmp_path / "conc_info.json", content)
    with pytest.raises(DataError, match=message) as err:
        ot.load_info(path)
    assert str(path) in str(err.value)


def test_load_info_missing_file(tmp_path):
    with pytest.raises(DataError, match="desc_info.json: missing"):
        ot.load_info(tmp_path / "desc_info.json")


def test_encoder_text_drops_the_template_of_a_normal_organ_with_findings():
    t = ot.normal_text("heart")
    assert ot.encoder_text("heart", t) == t                                    # the template alone stays
    assert ot.encoder_text("heart", t + " Heart size is normal.") == "Heart size is normal."
    assert ot.encoder_text("heart", "Cardiomegaly. Heart size is increased.") == "Cardiomegaly. Heart size is increased."
    assert ot.encoder_text("lung", t + " Heart size is normal.") == t + " Heart size is normal."  # another organ's
