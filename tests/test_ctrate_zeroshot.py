"""Task ctrate_zeroshot's pieces: prompts, which embedding scores a label, organ token masks, batches,
the contrastive step's per-organ parts, and evaluate naming skipped labels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cardiobench.tasks.ctrate import format as ct_rate
from cardiobench.tasks.ctrate import organ_text, organs, zero_shot
from cardiobench.tasks.ctrate.data import REPORT, Collate, CTRateDataset, model_groups, presence, token_masks
from cardiobench.tasks.ctrate.fvlm import patch_token_mask


def test_prompt_families():
    assert zero_shot.prompt_pair("Cardiomegaly", "fvlm") == ("Cardiomegaly.", "Not Cardiomegaly.")
    # fVLM's released eval.py words four labels its own way; CT-CLIP's prompts keep the label names
    assert zero_shot.prompt_pair("Atelectasis", "fvlm") == ("Atelectatic.", "Not Atelectatic.")
    assert zero_shot.prompt_pair("Pulmonary fibrotic sequela", "fvlm") == ("Pulmonary fibrotic.", "Not Pulmonary fibrotic.")
    assert zero_shot.prompt_pair("Lung nodule", "fvlm") == ("Nodule.", "Not Nodule.")
    assert zero_shot.prompt_pair("Lung nodule", "ctclip") == ("Lung nodule is present.", "Lung nodule is not present.")
    assert zero_shot.prompt_pair("Lung nodule", "fvlm", {"Lung nodule": "Pulmonary nodule"})[0] == "Pulmonary nodule."
    with pytest.raises(ValueError):
        zero_shot.prompt_pair("Cardiomegaly", "clip")


def test_every_label_has_an_embedding():
    assert set(zero_shot.LABEL_ORGAN) == set(ct_rate.LABELS)
    released = organs.ORGANS_4
    sources = {label: zero_shot.label_source(label, released) for label in ct_rate.LABELS}
    assert sources["Cardiomegaly"] == "heart" and sources["Hiatal hernia"] == "esophagus"
    assert sources["Medical material"] == sources["Lymphadenopathy"] == zero_shot.GLOBAL
    assert all(zero_shot.label_source(label, ()) == zero_shot.GLOBAL for label in ct_rate.LABELS)


def test_pair_probability_is_the_softmax_over_the_pair():
    img = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    pos, neg = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    p = zero_shot.pair_probability(img, pos, neg, 0.07)
    expected = torch.sigmoid((img @ pos - img @ neg) / 0.07)
    assert torch.allclose(p, expected, atol=1e-6) and ((0 < p) & (p < 1)).all()


def test_token_masks_equal_the_models_pooling():
    rng = np.random.default_rng(0)
    mask = np.zeros((16, 12, 8), np.uint8)             # cache layout (x, y, z)
    mask[2:6, 3:7, 1:5] = 51                           # heart (v2)
    mask[9:15, 1:11, 0:8] = rng.choice([10, 11, 0], size=(6, 10, 8))  # left lung lobes
    table, _ = organs.group_table("4", "v2")
    got = token_masks(mask, table, [4, 4, 4])          # [O, Z/4, X/4, Y/4]
    zxy = torch.from_numpy(mask.transpose(2, 0, 1).astype(np.int64))
    voxel = torch.stack([torch.isin(zxy, torch.tensor(ids)) for ids in table.values()])[None]
    want = patch_token_mask(voxel, (4, 4, 4), got.shape[1:])[0].reshape(got.shape).numpy()
    assert got.shape == (4, 2, 4, 3) and np.array_equal(got, want)
    assert got[list(table).index("heart")].any() and not got[list(table).index("aorta")].any()


def test_presence_follows_the_inside_rule():
    groups, _, table = model_groups("4", "v2", True, "whole_image")
    assert groups.names == ("lung", "heart", "esophagus", "aorta", organ_text.WHOLE_IMAGE)
    code = np.zeros(256, np.uint8)
    code[table["heart"]] = 1                 # whole inside
    code[table["aorta"]] = 2                 # cut by the scan's field of view only
    code[table["lung"][0]] = 3               # one lobe cut by the crop
    code[table["lung"][1]] = 1
    crop = presence([code], 1, groups, table, "crop")[0]
    strict = presence([code], 1, groups, table, "strict")[0]
    assert crop.tolist() == [False, True, False, True, True]
    assert strict.tolist() == [False, True, False, False, True]
    glob, _, _ = model_groups(None, "v2", True, "whole_image")
    assert glob.organs == () and glob.names == (REPORT,)


class _Tok:
    """Whitespace tokenizer standing in for WordPiece: ids are word hashes, padded to the longest."""

    def tokenize(self, texts, max_length):
        rows = [[hash(w) % 97 + 1 for w in t.split()][:max_length] for t in texts]
        n = max(len(r) for r in rows)
        return {"input_ids": torch.tensor([r + [0] * (n - len(r)) for r in rows]),
                "attention_mask": torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])}


def test_collate_encodes_each_text_once_and_keys_normal_organs_alike():
    groups, _, _ = model_groups("4", "v2", True, "whole_image")
    normal_heart = organ_text.normal_text("heart")
    texts = [{g: organ_text.normal_text(g) for g in groups.names} for _ in range(3)]
    texts[1]["heart"] = normal_heart + " Heart size is normal."   # still a normal heart (starts with the template)
    texts[2]["heart"] = "Cardiomegaly is present."
    ds = CTRateDataset([np.zeros((8, 8, 8), np.float16)] * 3, [np.zeros((4, 2, 2, 2), bool)] * 3,
                       np.ones((3, 5), bool), texts, groups)
    batch = Collate(_Tok(), groups, 16)([ds[i] for i in range(3)])
    assert batch["x"].shape == (3, 1, 8, 8, 8) and batch["token_mask"].shape == (3, 4, 2, 2, 2)
    distinct = {t for row in texts for t in row.values()}
    assert batch["input_ids"].shape[0] == len(distinct)           # each distinct text tokenized once
    k = groups.names.index("heart")
    keys = batch["keys"][:, k]
    assert keys[0] == keys[1] != keys[2]                          # the two normal hearts pair up
    assert (batch["text_index"][:, k] != batch["text_index"][0, k]).tolist() == [False, True, True]
    # the encoder reads the normal heart's findings without the template in front, as fVLM's code does
    seen = Collate(_Recorder(), groups, 16)([ds[i] for i in range(3)])["input_ids"]
    assert "Heart size is normal." in _Recorder.last and normal_heart + " Heart size is normal." not in _Recorder.last
    assert normal_heart in _Recorder.last and "Cardiomegaly is present." in _Recorder.last and len(seen) == len(distinct)


class _Recorder(_Tok):
    last: list[str] = []

    def tokenize(self, texts, max_length):
        _Recorder.last = list(texts)
        return super().tokenize(texts, max_length)


@pytest.mark.parametrize("amounts", [None, 3])
def test_contrastive_step_reports_each_contributing_organ(amounts):
    from cardiobench.models import build
    from cardiobench.tasks.ctrate.contrastive import OrganContrastiveLoss
    from cardiobench.tasks.ctrate.ctrate_zeroshot import ContrastiveModel, contrastive_step

    torch.manual_seed(0)
    groups, _, _ = model_groups("4", "v2", True, "whole_image")
    net = build("fvlm", organs=list(groups.organs), img_size=[8, 8, 8], patch_size=[4, 4, 4], hidden_size=16,
                mlp_dim=32, num_layers=2, num_heads=2, query_heads=2, embed_dim=8, text_hidden_size=16, text_layers=1,
                text_heads=2, text_intermediate_size=32, vocab_size=100, max_text_length=32, text_pooling="mean",
                amounts=amounts)
    model = ContrastiveModel(net, OrganContrastiveLoss(), groups)
    texts = [{g: organ_text.normal_text(g) for g in groups.names} for _ in range(4)]
    for i in range(4):
        texts[i]["lung"] = f"Finding {i} in the lung."
        texts[i][organ_text.WHOLE_IMAGE] = f"Node {i}."
    tokens = np.ones((4, 2, 2, 2), bool)
    profiles = None if amounts is None else np.random.rand(4, len(groups.organs), amounts).astype(np.float32)
    ds = CTRateDataset([np.random.rand(8, 8, 8).astype(np.float16) for _ in range(4)], [tokens] * 4,
                       np.ones((4, 5), bool), texts, groups, profiles)
    batch = Collate(_Tok(), groups, 16)([ds[i] for i in range(4)])
    assert ("organ_profile" in batch) == (amounts is not None)
    loss, parts = contrastive_step(model, batch)
    # heart, oesophagus and aorta are normal in every item: no negative pair, so no part
    assert set(parts) == {"lung", organ_text.WHOLE_IMAGE}
    assert loss.item() == pytest.approx(sum(parts.values()), rel=1e-5)
    loss.backward()
    assert model.criterion.temperature.value.grad is not None
    if amounts is not None:  # the organ profile is trained through the loss
        assert net.amounts.proj.weight.grad is not None and net.amounts.proj.weight.grad.abs().sum() > 0


def test_print_metrics_names_skipped_labels(capsys):
    from omegaconf import OmegaConf

    from cardiobench.console import print_metrics

    cfg = OmegaConf.create({"task": {"name": "t"}, "baseline": {"name": "b"}, "profile": {"name": "p"}, "seed": 0})
    print_metrics({"auc_macro": {"value": 0.7, "low": 0.6, "high": 0.8, "level": 0.95, "method": "bca", "n": 9,
                                 "labels_skipped": ["bronchiectasis", "pericardial_effusion"]}}, cfg)
    out = capsys.readouterr().out
    assert "label 'bronchiectasis' skipped" in out and "label 'pericardial_effusion' skipped" in out
