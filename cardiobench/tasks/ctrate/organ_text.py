"""Organ-level texts of a CT report, the text side of fVLM's per-anatomy contrastive learning.

fVLM (Shui et al., ICLR 2025) has an LLM decompose each CT-RATE report into one text per anatomy and
publishes the result as ``desc_info.json`` (from the findings) and ``conc_info.json`` (from the
impressions), each ``{scan: {organ: text}}``. :func:`load_decomposed` reads them. The released code
keys them by scan folder (``train_1_a``); keys by VolumeName (``train_1_a_1.nii.gz``) work too.

Without those files, :func:`decompose` is a deterministic rule-based stand-in: it splits findings and
impressions into sentences and gives each sentence to every organ that an organ lexicon finds in it.
It is weaker than the paper's LLM decomposition: it works per sentence (a sentence naming two organs
goes whole to both; a clause is never split off), knows only the words listed here, and does not
resolve references ("the nodule described above") or spelling errors. :func:`decomposer_scores`
measures it on reports whose sentences know their organ (the synthetic twin).

Both paths build an organ's text as the released code does (:func:`compose`): its impression text, or
``"{organ} shows no significant abnormalities."`` when the impressions say nothing of it, followed by
its findings text; an organ no sentence names gets exactly that template. The released code treats an
organ whose text starts with the template as normal (:func:`is_normal`) and encodes a normal organ's
findings without the template in front (:func:`encoder_text`).

Lexicon decisions (the reasons are with the rules below): hiatal hernia -> esophagus (fVLM's zero-shot
evaluation tests "Hiatal hernia" on the esophagus); coronary arteries, aortic valve, pericardium ->
heart; pleura, bronchi (not the main bronchi), effusion without a site -> lung; main bronchi -> trachea;
lymph nodes, mediastinum, vertebrae and other bones or structures without an organ group -> the
pseudo-organ ``whole_image`` (``WHOLE_IMAGE``), which no organ text receives unless asked for.
Negations stay in the sentence: "No pleural effusion." is a lung sentence as written.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ...errors import DataError
from .organs import ORGANS_24

NORMAL = "{organ} shows no significant abnormalities."
WHOLE_IMAGE = "whole_image"  # findings with no organ group: lymph nodes, mediastinum, vertebrae, ...
_DROPPED = str.maketrans("", "", "\"'()")  # the released code strips quotes and brackets from texts


def normal_text(organ: str) -> str:
    """The released code's text of an organ the impressions do not mention."""
    return NORMAL.format(organ=organ)


def is_normal(organ: str, text: str) -> bool:
    """Whether an organ text counts as normal in the released code (it starts with the template)."""
    return text.startswith(normal_text(organ))


def encoder_text(organ: str, text: str) -> str:
    """What the released code hands the text encoder for an organ text: a normal organ's findings without
    its template in front (``text.replace(template, '')`` in ``blip_pretrain.py``), the template alone when
    there are no findings, any other text as it is. Normal organs still pair by the template
    (:func:`is_normal` on the text before this)."""
    template = normal_text(organ)
    rest = text[len(template):].strip() if text.startswith(template) else ""
    return rest or text


def _ended(text: str | None) -> str:
    text = " ".join(str(text or "").split())
    return text if not text or text[-1] in ".!?" else text + "."


def compose(organ: str, conclusion: str | None = None, description: str | None = None) -> str:
    """One organ's text as the released code builds it: the impression text (or the normal template)
    then the findings text, quotes and brackets removed. The release joins the two with no space; a
    space is kept here so that the two sentences stay two words apart for the tokenizer."""
    parts = [_ended(conclusion) or normal_text(organ), _ended(description)]
    return " ".join(p for p in parts if p).translate(_DROPPED)


# ----------------------------------------------------------------------------- decomposed files


def load_info(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """A ``desc_info.json`` / ``conc_info.json``: scan -> organ -> text (null texts are dropped);
    DataError naming the file and the entry when it is missing, not JSON or not of that shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing (fVLM's decomposed texts: {{scan: {{organ: text}}}})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: top level is a {type(raw).__name__}, expected an object {{scan: {{organ: text}}}}")
    info = {}
    for scan, organs in raw.items():
        if not isinstance(organs, dict):
            raise DataError(f"{path}: entry {scan!r} is a {type(organs).__name__}, expected an object {{organ: text}}")
        bad = [k for k, v in organs.items() if v is not None and not isinstance(v, str)]
        if bad:
            raise DataError(f"{path}: entry {scan!r}: text of {bad[0]!r} is not a string")
        info[scan] = {k: v for k, v in organs.items() if v is not None}
    return info


def scan_keys(volume: str) -> list[str]:
    """The keys a volume may have in the decomposed files, most specific first: the VolumeName as
    given, without ``.nii(.gz)``, and its scan (``train_1_a_1.nii.gz`` -> ``train_1_a``)."""
    stem = re.sub(r"\.nii(\.gz)?$", "", Path(volume).name)
    keys = [volume, stem]
    if re.fullmatch(r"(train|valid)_\d+_[a-z]+_\d+", stem):
        keys.append(stem.rsplit("_", 1)[0])
    return list(dict.fromkeys(keys))


@dataclass(frozen=True)
class Decomposed:
    """fVLM's decomposed texts, read from its two files."""

    desc: dict[str, dict[str, str]]
    conc: dict[str, dict[str, str]]
    desc_path: str
    conc_path: str

    def _entry(self, info: Mapping[str, Mapping[str, str]], volume: str) -> Mapping[str, str] | None:
        return next((info[k] for k in scan_keys(volume) if k in info), None)

    def texts(self, volume: str, organs: Sequence[str] = ORGANS_24) -> dict[str, str]:
        """Organ -> text of one volume (:func:`compose`); DataError when neither file has the volume,
        which would otherwise turn a key mismatch into all-normal texts."""
        desc, conc = self._entry(self.desc, volume), self._entry(self.conc, volume)
        if desc is None and conc is None:
            raise DataError(f"{volume}: in neither {self.desc_path} nor {self.conc_path} (looked up as "
                            f"{', '.join(scan_keys(volume))})")
        return {o: compose(o, (conc or {}).get(o), (desc or {}).get(o)) for o in organs}


def load_decomposed(desc_path: str | os.PathLike, conc_path: str | os.PathLike) -> Decomposed:
    """fVLM's ``desc_info.json`` (findings) and ``conc_info.json`` (impressions), validated."""
    return Decomposed(load_info(desc_path), load_info(conc_path), str(desc_path), str(conc_path))


# ----------------------------------------------------------------------------- sentences

# Words after which a period does not end a sentence (lower case, without the final period). "etc",
# "ca" (carcinoma) and units end sentences often enough in CT-RATE that they are left out.
_ABBREVIATIONS = {"e.g", "i.e", "eg", "ie", "approx", "vs", "cf", "dr", "mr", "mrs", "ms", "prof", "fig",
                  "no", "nos", "nr", "max", "min", "st", "resp", "incl", "al"}
_CANDIDATE = re.compile(r"[.!?]+(?=\s)|[.!?]+$|(?<=[a-z]{2})\.(?=[A-Z][a-z])")  # the last: "normal.The"
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_ENUMERATOR = re.compile(r"^(?:\(?\d{1,2}[.)-]|[-*\u2022])\s+")


def _is_boundary(text: str, start: int, end: int) -> bool:
    nxt = text[end:].lstrip()[:1]
    if nxt and nxt.islower():
        return False  # "e.g. the", "approx. similar", a lowercase continuation
    if text[start] == "." and not text[start:end].strip(".") and start > 0:
        word = re.search(r"[\w.]*$", text[:start]).group(0).lower().strip(".")
        if word in _ABBREVIATIONS:
            return False
    return True


def split_sentences(text: str | None) -> list[str]:
    """The sentences of a report section. A period ends a sentence when followed by space and an
    upper-case letter, digit or the end, and not after an abbreviation; decimals ("3.5 mm") have no
    space after the point; text in closed brackets is never split; list numbers ("2.") are dropped."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    text = " ".join(str(text).split())
    bracketed = [m.span() for m in _BRACKETED.finditer(text)]  # an unclosed bracket protects nothing
    cuts = [m.end() for m in _CANDIDATE.finditer(text)
            if not any(a < m.start() < b for a, b in bracketed) and _is_boundary(text, m.start(), m.end())]
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    out = []
    for p in pieces:
        p = _ENUMERATOR.sub("", p.strip())
        if re.search(r"[A-Za-z]", p):
            out.append(p)
    return out


# ----------------------------------------------------------------------------- organ lexicon


@dataclass(frozen=True)
class Rule:
    """Words (a regular expression over the lower-cased sentence) that give a sentence to organs."""

    pattern: str
    organs: tuple[str, ...]


def _r(pattern: str, *organs: str) -> Rule:
    return Rule(pattern, organs)


# Phrases first: a phrase consumes its words, so a later single word no longer fires on them.
PHRASES = (
    _r(r"aortic valves?|(?:mitral|tricuspid) and aortic valves?", "heart"),  # a cardiac valve, not the aorta
    _r(r"left atrial appendage", "heart"),
    _r(r"inter(?:atrial|ventricular) sept\w*", "heart"),
    # The main pulmonary artery and veins lie in the mediastinum, outside every organ mask.
    _r(r"pulmonary (?:arter\w*|trunk|veins?|venous)", WHOLE_IMAGE),
    # The central airway, reported with the trachea ("Trachea and both main bronchi are open."), not lung.
    _r(r"main bronch\w*|carina\w*", "trachea"),
    _r(r"(?:interlobular )?septal thickening\w*", "lung"),
    _r(r"lymphangit\w*", "lung"),  # lymphangitic spread is parenchymal
    _r(r"subcutaneous emphysema|pneumomediastin\w*|mediastinal emphysema", WHOLE_IMAGE),
    _r(r"(?:hepatic|splenic) flexure", "colon"),
    _r(r"(?:iliac|femoral|subclavian|carotid) (?:arter\w*|vein\w*|vessels?)", WHOLE_IMAGE),
    _r(r"liver hil\w*|hepatic hil\w*", "liver"),
    _r(r"gastro ?o?esophageal|esophagogastric|cardioesophageal|nasogastric", "esophagus", "stomach"),
    _r(r"hepatosplenomegal\w*", "liver", "spleen"),
    _r(r"sternoclavicular|acromioclavicular", "clavicula"),
    _r(r"acromion\w*|glenoid", "scapula"),
    _r(r"glenohumeral", "humerus", "scapula"),
    # fVLM's zero-shot evaluation tests "Hiatal hernia" on the esophagus, so it is an esophagus finding.
    _r(r"hiat(?:al|us) hernia\w*|hiatal", "esophagus"),
    _r(r"sacroiliac", "sacrum", "hip"),
    _r(r"(?:back|paraspinal|paravertebral|erector spinae) muscles?|erector spinae", "autochthon"),
    _r(r"large bowel|large intestin\w*", "colon"),
    _r(r"(?:arterial wall|vascular) calcif\w*", "aorta"),  # CT-RATE's "Arterial wall calcification" label
)

# Single words, each firing wherever a phrase did not consume it.
TERMS = (
    _r(r"heart|cardi\w*|pericardi\w*|myocardi\w*|epicardi\w*|coronar\w*|atri(?:um|al|a)|ventric\w*|"
       r"valv\w*|mitral|tricuspid|pacemaker\w*|cabg|lad", "heart"),
    _r(r"aort\w*", "aorta"),
    _r(r"\w*esophag\w*|\w*oesophag\w*", "esophagus"),
    _r(r"\w*trache\w*", "trachea"),
    _r(r"lungs?|\w*pulmon\w*|pleur\w*|hemithora\w*|\w*bronch\w*|alveol\w*|atelecta\w*|emphysem\w*|"
       r"pneumon\w*|pneumothora\w*|ground.glass|consolidat\w*|mosaic|interstiti\w*|fissur\w*|"
       r"bull(?:a|ae|ous)|blebs?|covid\w*|tree.in.bud|air trapping|costophrenic|costodiaphragmatic", "lung"),
    _r(r"liver|\w*hepat\w*|biliary|choledoch\w*", "liver"),
    _r(r"gall ?bladder\w*|cholelith\w*|cholecyst\w*|gallstones?", "gallbladder"),
    _r(r"spleen|splen\w*", "spleen"),
    _r(r"pancrea\w*", "pancreas"),
    _r(r"kidneys?|(?:peri|para)?renal|nephr\w*|hydronephr\w*|pelvicalyc\w*|pelvicalic\w*", "kidney"),
    _r(r"stomach|gastr\w*", "stomach"),
    _r(r"colon\w*|cecum|caecum|sigmoid\w*|rectum|rectal", "colon"),
    _r(r"ribs?|costochondral|costovertebral|costal", "rib"),
    _r(r"humer\w*", "humerus"),
    _r(r"scapul\w*", "scapula"),
    _r(r"clavic\w*", "clavicula"),
    _r(r"femur\w*|femor\w*", "femur"),
    _r(r"hips?|acetabul\w*|ilium|iliac|ischi\w*|pubi\w*|pelvic bones?", "hip"),
    _r(r"sacr\w*", "sacrum"),
    _r(r"glute\w*", "gluteus"),
    _r(r"psoas|iliopsoas|iliacus", "iliopsoas"),
    _r(r"autochthon\w*|paraspinal|paravertebral", "autochthon"),
    _r(r"brain|cerebr\w*|cerebell\w*|intracranial", "brain"),
    _r(r"face|facial|orbit\w*|maxill\w*|mandib\w*|paranasal|nasal", "face"),
    # No organ group: they go to the whole image so they neither pollute an organ text nor get lost.
    # Vertebrae are bone, not the autochthon (paraspinal muscle) group beside them.
    _r(r"lymph\w*|mediastin\w*|thyroid\w*|axill\w*|breasts?|adrenal\w*|stern\w*|vertebr\w*|spine|spinal|"
       r"spondyl\w*|scolio\w*|kyphos\w*|osteophyt\w*|bones?|osseous|bony|osteo\w*|chest wall|"
       r"soft tissues?|subcutaneous|catheter\w*|chemoport|bowel|intestin\w*|duoden\w*|bladder|"
       r"prostat\w*|hernia\w*", WHOLE_IMAGE),
)

# Words that name an organ only when nothing else in the sentence does: "nodule" alone is a lung
# nodule in a chest CT report, but not in "left adrenal nodule" or "thyroid nodule".
WEAK = (
    _r(r"nodul\w*|opacit\w*|infiltrat\w*|effusion\w*|parenchym\w*|fibro\w*|sequela\w*|reticul\w*|"
       r"cavit\w*|segment\w*|subsegment\w*|apical|apex|hil(?:ar|um|a)|embol\w*|airways?|densit\w*|"
       r"lobes?|lobar", "lung"),  # "lobe" alone: the thyroid and the liver have lobes too
    _r(r"atheroscl\w*|atherom\w*|calcific plaques?|calcified plaques?|aneurysm\w*|dissection", "aorta"),
    _r(r"steatosis|cirrho\w*", "liver"),
    _r(r"diverticul\w*", "colon"),
    _r(r"degenerativ\w*|fractur\w*|stents?", WHOLE_IMAGE),
    # devices without an organ (CT-RATE's "Medical material"): the whole image carries them
    _r(r"medical (?:devices?|materials?)|foreign bod(?:y|ies)|metallic|catheters?|chemoports?|ports?|"
       r"sternotomy|wires?|clips?", WHOLE_IMAGE),
)


def _compile(rules: Sequence[Rule]) -> list[tuple[re.Pattern, tuple[str, ...]]]:
    return [(re.compile(rf"\b(?:{r.pattern})\b"), r.organs) for r in rules]


_PHRASES, _TERMS, _WEAK = _compile(PHRASES), _compile(TERMS), _compile(WEAK)


def _apply(rules: list[tuple[re.Pattern, tuple[str, ...]]], text: str, found: set[str]) -> str:
    """Add the organs of every rule matching ``text``; return it with the matches blanked out."""
    for pattern, organs in rules:
        if pattern.search(text):
            found.update(organs)
            text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def sentence_organs(sentence: str) -> set[str]:
    """The organs (and :data:`WHOLE_IMAGE`) a sentence is about; empty when it names none
    ("Examination within normal limits.")."""
    text, found = sentence.lower().replace("-", " ").replace("/", " "), set()
    text = _apply(_TERMS, _apply(_PHRASES, text, found), found)
    if not found:
        _apply(_WEAK, text, found)
    return found


def assign(text: str | None) -> list[tuple[str, set[str]]]:
    """Each sentence of a report section with its organs."""
    return [(s, sentence_organs(s)) for s in split_sentences(text)]


def decompose(findings: str | None, impressions: str | None,
              organs: Sequence[str] = ORGANS_24) -> dict[str, str]:
    """Organ -> text of one report (:func:`compose` of the organ's impression and findings sentences,
    each in report order); include :data:`WHOLE_IMAGE` in ``organs`` to get its text too."""
    parts: dict[str, dict[str, list[str]]] = {o: {"conc": [], "desc": []} for o in organs}
    for section, text in (("desc", findings), ("conc", impressions)):
        for sentence, names in assign(text):
            for o in names & parts.keys():
                parts[o][section].append(_ended(sentence))
    return {o: compose(o, " ".join(p["conc"]), " ".join(p["desc"])) for o, p in parts.items()}


def decomposer_scores(predicted: Sequence[set[str]], truth: Sequence[set[str]],
                      organs: Sequence[str] | None = None) -> tuple[float, float]:
    """Micro precision and recall of sentence -> organ assignments: correct (sentence, organ) pairs over
    predicted pairs and over true pairs; ``organs`` restricts both to those organs. NaN where the
    denominator is 0 (nothing predicted, or nothing to find)."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predicted sets for {len(truth)} true sets")
    keep = set(organs) if organs is not None else None
    hit = n_pred = n_true = 0
    for p, t in zip(predicted, truth):
        p, t = set(p), set(t)
        if keep is not None:
            p, t = p & keep, t & keep
        hit += len(p & t)
        n_pred += len(p)
        n_true += len(t)
    return (hit / n_pred if n_pred else math.nan, hit / n_true if n_true else math.nan)
