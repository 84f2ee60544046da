"""fVLM model (ViT + organ queries + BERT) and its WordPiece vocabulary: tiny CPU configs, nothing downloaded."""
from __future__ import annotations

import socket

import pytest
import torch
import torch.nn.functional as F

from cardiobench.errors import CardiobenchError
from cardiobench.models import build
from cardiobench.tasks.ctrate.contrastive import OrganContrastiveLoss
from cardiobench.tasks.ctrate.fvlm import (OrganQueryAttention, default_feature_layers, organ_masks_from_labels,
                                           patch_token_mask, vit_encoder)
from cardiobench.tasks.ctrate.text_encoder import WordPieceTokenizer, bert_text_encoder, text_tokenizer

ORGANS = ["lung", "heart", "aorta"]
IMG, PATCH = (8, 16, 16), (4, 8, 8)  # [Z, X, Y]; a 2 x 2 x 2 patch grid
TINY_TEXT = dict(text_hidden_size=16, text_layers=2, text_heads=2, text_intermediate_size=32, vocab_size=120,
                 max_text_length=32)
TINY = dict(img_size=IMG, patch_size=PATCH, hidden_size=16, mlp_dim=32, num_layers=2, num_heads=2, embed_dim=8,
            **TINY_TEXT)
TEXTS = ["Lung shows no significant abnormalities.", "Bilateral pleural effusion and atelectasis in the lung.",
         "Heart shows no significant abnormalities.", "Mild cardiomegaly with pericardial effusion.",
         "Calcification of the aortic wall.", "Aorta shows no significant abnormalities.",
         "A nodule in the right upper lobe measuring 5 mm."]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("fvlm", organs=ORGANS, **TINY).eval()


def _masks() -> torch.Tensor:
    """[2, 3, *IMG]: sample 0 has lung (one patch) and heart (a single voxel); sample 1 only lung; aorta nowhere."""
    m = torch.zeros(2, len(ORGANS), *IMG, dtype=torch.bool)
    m[0, 0, :4, :8, :8] = True
    m[0, 1, 5, 9, 3] = True
    m[1, 0, 2:7, 4:12, 4:12] = True
    return m


# --- image side ----------------------------------------------------------------------------------

def test_shapes_unit_norms_and_presence(model):
    x = torch.rand(2, 1, *IMG)
    with torch.no_grad():
        organ, present, glob = model.encode_image(x, _masks())
        text = model.encode_text(torch.randint(5, 120, (5, 7)), torch.ones(5, 7, dtype=torch.long))
    assert organ.shape == (2, 3, 8) and present.shape == (2, 3) and present.dtype == torch.bool
    assert glob.shape == (2, 8) and text.shape == (5, 8)
    assert present.tolist() == [[True, True, False], [True, False, False]]
    norms = organ.norm(dim=-1)
    assert torch.allclose(norms[present], torch.ones(3)) and torch.all(norms[~present] == 0)
    assert torch.allclose(glob.norm(dim=-1), torch.ones(2)) and torch.allclose(text.norm(dim=-1), torch.ones(5))


def test_presence_is_pooled_mask_nonempty(model):
    torch.manual_seed(1)
    masks = torch.rand(3, 3, *IMG) > 0.9995  # a few scattered voxels: some organs absent, some in one patch
    masks[0, 2] = False
    masks[1, 1, 0, 0, 0] = True
    with torch.no_grad():
        _, present, _ = model.encode_image(torch.rand(3, 1, *IMG), masks)
    pooled = F.max_pool3d(masks.float(), kernel_size=PATCH, stride=PATCH).flatten(2)  # [3, 3, 8]
    assert torch.equal(present, pooled.amax(-1) > 0)
    assert not present[0, 2] and present[1, 1]
    # the token mask itself, from voxels or from masks already on the patch grid
    token_mask = patch_token_mask(masks, PATCH, model.grid)
    assert torch.equal(token_mask, pooled > 0)
    assert torch.equal(patch_token_mask(pooled.view(3, 3, *model.grid) > 0, PATCH, model.grid), token_mask)


def test_organ_masks_from_label_map():
    labels = torch.tensor([[0, 1, 3], [2, 2, 0]]).view(2, 1, 3, 1, 1)
    masks = organ_masks_from_labels(labels, 3)
    assert masks.shape == (2, 3, 3, 1, 1)
    assert masks[0, :, :, 0, 0].int().tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]


def test_cross_attention_sees_only_its_organ_tokens():
    torch.manual_seed(0)
    attn = OrganQueryAttention(n_organs=2, dim=16, num_heads=4).eval()
    with torch.no_grad():
        attn.queries.normal_()  # zero queries attend uniformly; random ones make the test sharper
    tokens = [torch.randn(1, 6, 16) for _ in range(3)]  # three depths, six tokens each
    mask = torch.tensor([[[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0]]], dtype=torch.bool)  # organ A: 0-1, B: 2-4
    with torch.no_grad():
        base, present = attn(tokens, mask)
        outside = [t.clone() for t in tokens]
        for t in outside:
            t[:, 2:] += torch.randn(1, 4, 16)  # every token outside A, at every depth
        moved_out, _ = attn(outside, mask)
        inside = [t.clone() for t in tokens]
        inside[1][:, 1] += 1.0  # one token inside A, at one depth
        moved_in, _ = attn(inside, mask)
    assert present.tolist() == [[True, True]]
    assert torch.allclose(moved_out[:, 0], base[:, 0], atol=1e-6)
    assert not torch.allclose(moved_out[:, 1], base[:, 1], atol=1e-3)  # B's tokens did change
    assert not torch.allclose(moved_in[:, 0], base[:, 0], atol=1e-3)
    assert torch.allclose(moved_in[:, 1], base[:, 1], atol=1e-6)


def test_absent_organs_give_no_nan_forward_or_backward(model):
    model.train()
    try:
        x = torch.rand(2, 1, *IMG)
        for masks in (_masks(), torch.zeros(2, 3, *IMG, dtype=torch.bool)):
            organ, present, glob = model.encode_image(x, masks)
            assert not present[:, 2].any()
            assert torch.isfinite(organ).all() and torch.isfinite(glob).all()
            assert torch.all(organ[~present] == 0)
            model.zero_grad()
            (organ.sum() + glob.sum()).backward()
            assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    finally:
        model.eval()


def test_gradients_reach_organ_queries_projections_and_text():
    torch.manual_seed(0)
    net = build("fvlm", organs=ORGANS, **TINY)
    out = net(torch.rand(2, 1, *IMG), _masks(), torch.randint(5, 120, (2, 6)), torch.ones(2, 6, dtype=torch.long))
    texts = {"lung": ["Lung shows no significant abnormalities.", "Pleural effusion."]}
    loss, parts = OrganContrastiveLoss()({"lung": out["organ"][:, 0]}, {"lung": out["text"]}, texts,
                                         {"lung": out["present"][:, 0]})
    (loss + out["global"].sum()).backward()
    assert "lung" in parts
    assert net.organ_query.queries.grad[0].abs().sum() > 0
    assert net.organ_projs[0].weight.grad.abs().sum() > 0
    assert net.global_proj.weight.grad.abs().sum() > 0
    assert net.text.proj.weight.grad.abs().sum() > 0
    assert net.vit.patch_embedding.patch_embeddings.weight.grad.abs().sum() > 0
    # every trainable parameter sits in the graph (DDP without find_unused_parameters needs that)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_feature_layers_and_input_checks(model):
    assert default_feature_layers(12) == (3, 6, 9, 11)  # fVLM: blocks 3, 6, 9 and the normed output
    assert default_feature_layers(2) == (0, 1)
    assert model.feature_layers == (0, 1)
    with pytest.raises(CardiobenchError, match="feature_layers"):
        build("fvlm", organs=ORGANS, feature_layers=(0, 2), **TINY)
    with pytest.raises(CardiobenchError, match=r"\[B, 1, Z, X, Y\]"):
        model.encode_image(torch.rand(1, 1, 16, 16, 8))
    with pytest.raises(CardiobenchError, match="organ_masks"):
        model.encode_image(torch.rand(1, 1, *IMG), torch.zeros(1, 2, *IMG))


def test_global_baseline_has_no_organ_queries():
    net = build("ctclip_global", **TINY)
    organ, present, glob = net.encode_image(torch.rand(2, 1, *IMG))
    assert organ.shape == (2, 0, 8) and present.shape == (2, 0) and net.organ_query is None
    assert torch.allclose(glob.norm(dim=-1), torch.ones(2))


def test_paper_image_encoder_is_monai_vit_b():
    from monai.networks.nets import ViT

    with torch.device("meta"):
        ours = vit_encoder()  # paper defaults
        monai_vit = ViT(in_channels=1, img_size=(112, 352, 256), patch_size=(16, 32, 16), qkv_bias=True)
        net = build("fvlm", organs=ORGANS)  # the builder's defaults are the paper's
    h, mlp, layers, tokens = 768, 3072, 12, 7 * 11 * 16
    block = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * mlp + mlp) + (mlp * h + h)  # 2 LN, qkv, out, MLP
    vit_b = (16 * 32 * 16 * h + h) + tokens * h + layers * block + 2 * h  # patch conv, positions, blocks, norm
    unused = layers * 2 * h  # MONAI's cross-attention LayerNorm, frozen here

    def count(m, trainable=False):
        return sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable)

    assert count(ours) == count(monai_vit) == vit_b + unused
    assert count(ours, trainable=True) == vit_b
    assert count(net.vit) == count(monai_vit) and net.grid == (7, 11, 16) and net.feature_layers == (3, 6, 9, 11)


def test_conv_stem_keeps_the_token_grid():
    from cardiobench.tasks.ctrate.vit_stem import stem_grid, stem_strides

    strides, rest = stem_strides((16, 32, 16), 4)  # the paper's patch, four stages: the ViT patchifies 1 x 2 x 1
    assert strides == [(2, 2, 2)] * 4 and rest == (1, 2, 1) and stem_grid((112, 352, 256), strides) == (7, 22, 16)
    assert stem_strides((4, 8, 8), 3) == ([(2, 2, 2), (2, 2, 2), (1, 2, 2)], (1, 1, 1))
    with pytest.raises(CardiobenchError, match="power-of-two"):
        stem_strides((6, 8, 8), 3)
    torch.manual_seed(0)
    net = build("fvlm", organs=ORGANS, stem=[4, 8, 16], **TINY)
    assert net.grid == (2, 2, 2) and net.vit.vit.patch_embedding.n_patches == 8
    masks = _masks()
    organ, present, glob = net.encode_image(torch.rand(2, 1, *IMG), masks)
    assert organ.shape == (2, 3, 8) and torch.equal(present, torch.tensor([[True, True, False], [True, False, False]]))
    assert net.vit.stem(torch.rand(1, 1, *IMG)).shape == (1, 16, 2, 2, 2)  # the token grid, stem[-1] channels


# --- text side -----------------------------------------------------------------------------------

def test_wordpiece_training_is_deterministic(tmp_path):
    # tokenizers' trainer alone gives a different vocabulary almost every time on texts like these
    files = [WordPieceTokenizer.train(TEXTS * 2, tmp_path / f"v{i}", vocab_size=110, min_frequency=1).folder
             / "vocab.txt" for i in range(3)]
    first = files[0].read_bytes()
    assert all(f.read_bytes() == first for f in files[1:])
    assert first.split(b"\n")[:5] == [b"[PAD]", b"[UNK]", b"[CLS]", b"[SEP]", b"[MASK]"]


def test_wordpiece_splits_unknown_words_and_round_trips(tmp_path):
    tok = WordPieceTokenizer.train(TEXTS, tmp_path / "tok", vocab_size=110, min_frequency=1)
    pieces = tok.tokens("Pericardiomegaly")
    assert len(pieces) > 1 and not pieces[0].startswith("##")
    assert all(p.startswith("##") for p in pieces[1:]) and "[UNK]" not in pieces
    batch = tok.tokenize(["Heart shows cardiomegaly.", "Lung."], max_length=6)
    assert batch["input_ids"].dtype == torch.int64 and batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[1] <= 6 and batch["attention_mask"][1].tolist()[-1] == 0
    cls, sep = (tok._tok.token_to_id(t) for t in ("[CLS]", "[SEP]"))
    assert batch["input_ids"][:, 0].tolist() == [cls, cls] and sep in batch["input_ids"][1].tolist()
    assert tok.tokenize(["Lung."], max_length=12, padding="max_length")["input_ids"].shape == (1, 12)
    again = WordPieceTokenizer.load(tmp_path / "tok")
    assert again.vocab_size == tok.vocab_size
    assert torch.equal(again.tokenize(TEXTS, 16)["input_ids"], tok.tokenize(TEXTS, 16)["input_ids"])
    # a run resumed in the same folder reads its vocabulary instead of training another
    assert text_tokenizer(tmp_path / "tok", texts=["other words entirely"]).vocab_size == tok.vocab_size


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1, a bogus Hugging Face cache, and any network connection fails loudly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no_hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no_hf_cache"))

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_bert_builds_offline_and_loads_a_local_folder(offline, tmp_path):
    from transformers import BertModel

    torch.manual_seed(0)
    enc = bert_text_encoder(embed_dim=8, vocab_size=120, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=32)
    assert enc.bert.config.num_hidden_layers == 2 and enc.proj.out_features == 8
    folder = tmp_path / "local_bert"
    enc.bert.save_pretrained(folder)
    WordPieceTokenizer.train(TEXTS, folder, vocab_size=110, min_frequency=1)  # the folder's own vocab.txt
    loaded = bert_text_encoder(embed_dim=8, weights=str(folder))
    assert loaded.bert.load_info == {"missing_keys": [], "unexpected_keys": []}
    assert isinstance(loaded.bert, BertModel)
    assert all(torch.equal(a, b) for a, b in zip(enc.bert.state_dict().values(), loaded.bert.state_dict().values()))
    image_sizes = {k: v for k, v in TINY.items() if k not in TINY_TEXT}
    net = build("fvlm", organs=ORGANS, text_weights=str(folder), **image_sizes)
    assert torch.equal(net.text.bert.embeddings.word_embeddings.weight, enc.bert.embeddings.word_embeddings.weight)
    tok = text_tokenizer(tmp_path / "run_tokenizer", texts=["unused"], pretrained=folder)
    assert tok.folder == folder and not (tmp_path / "run_tokenizer").exists()
    ids = tok.tokenize(TEXTS[:2], 16)
    assert net.encode_text(ids["input_ids"], ids["attention_mask"]).shape == (2, 8)


def test_missing_local_weights_folder_is_an_error(offline, tmp_path):
    with pytest.raises(CardiobenchError, match="nothing is downloaded"):
        bert_text_encoder(weights=str(tmp_path / "nowhere"))
    with pytest.raises(CardiobenchError, match="vocabulary not found"):
        WordPieceTokenizer.load(tmp_path)


def test_fused_attention_equals_monai_einsum_path_and_drops_out_only_in_training():
    from monai.networks.blocks.selfattention import SABlock

    from cardiobench.tasks.ctrate.fvlm import fused_attention

    torch.manual_seed(0)
    plain, fused = SABlock(32, 4, dropout_rate=0.2, qkv_bias=True), SABlock(32, 4, dropout_rate=0.2, qkv_bias=True)
    fused.load_state_dict(plain.state_dict())
    fused_attention(fused)
    x = torch.randn(2, 30, 32)
    plain.eval(), fused.eval()
    assert torch.allclose(plain(x), fused(x), atol=1e-5)
    assert torch.equal(fused(x), fused(x))          # no attention dropout in eval (the kernel would apply it)
    fused.train()
    assert not torch.equal(fused(x), fused(x)) and fused.dropout_rate == 0.2
    net = build("fvlm", organs=ORGANS, **TINY)
    blocks = net.vit.vit.blocks if hasattr(net.vit, "vit") else net.vit.blocks
    assert all(b.attn.use_flash_attention for b in blocks)
