"""Report-text side of the CT vision-language models: a BERT encoder and a WordPiece vocabulary, both offline.

fVLM (Shui et al., ICLR 2025) encodes each organ's report text with CXR-BERT-specialized (BERT-base
sizes, vocabulary 30522) and projects its ``[CLS]`` state to the shared embedding (BLIP's ``text_proj``).
Here the BERT is ``transformers.BertModel`` built from a ``BertConfig`` (random init), or loaded from a
local Hugging Face folder (``weights=/path``, ``local_files_only=True``): nothing is downloaded.

Without a pretrained folder the vocabulary is trained on the run's own texts with ``tokenizers``
(:meth:`WordPieceTokenizer.train`) and saved to a folder; with one, the folder's ``vocab.txt`` is used
(:meth:`WordPieceTokenizer.load` reads either).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import CardiobenchError
from ...io import staging_dir
from ...models.registry import register

log = logging.getLogger("cardiobench")

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG = "tokenizer_config.json"  # Hugging Face's name; we read/write only ``do_lower_case``

# CXR-BERT-specialized (microsoft/BiomedVLP-CXR-BERT-specialized) is BERT-base with BERT's vocabulary size.
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512)


# --- tokenizer -----------------------------------------------------------------------------------

class WordPieceTokenizer:
    """A BERT WordPiece tokenizer (``tokenizers.BertWordPieceTokenizer``) read from a folder's ``vocab.txt``.

    ``tokenize(texts, max_length)`` gives ``[CLS] ... [SEP]`` id tensors, truncated to ``max_length``
    and padded with ``[PAD]`` to the longest text (or to ``max_length`` with ``padding="max_length"``,
    as fVLM does).
    """

    def __init__(self, folder: str | Path):
        from tokenizers import BertWordPieceTokenizer

        self.folder = Path(folder).expanduser()
        vocab = self.folder / VOCAB_FILE
        if not vocab.is_file():
            raise CardiobenchError(f"{vocab}: WordPiece vocabulary not found")
        self.lowercase = _read_lowercase(self.folder)
        self._tok = BertWordPieceTokenizer(str(vocab), lowercase=self.lowercase)
        missing = [t for t in SPECIAL_TOKENS[:4] if self._tok.token_to_id(t) is None]
        if missing:
            raise CardiobenchError(f"{vocab}: lacks the special tokens {missing}")
        self.pad_id = self._tok.token_to_id("[PAD]")

    @classmethod
    def load(cls, folder: str | Path) -> "WordPieceTokenizer":
        """The tokenizer saved in ``folder`` (by :meth:`train`, or a pretrained model's ``vocab.txt``)."""
        return cls(folder)

    @classmethod
    def train(cls, texts: Iterable[str], folder: str | Path, vocab_size: int = BERT_BASE["vocab_size"],
              min_frequency: int = 2, lowercase: bool = True, limit_alphabet: int = 1000) -> "WordPieceTokenizer":
        """Train a vocabulary on ``texts``, write it to ``folder`` and return it read back from there.

        Deterministic: the same texts and arguments write a byte-identical ``vocab.txt`` (see
        :func:`_deterministic_trainer_inputs`). Nothing is downloaded.
        """
        from tokenizers import BertWordPieceTokenizer

        texts = list(texts)
        tok = BertWordPieceTokenizer(lowercase=lowercase)
        alphabet, continuing = _deterministic_trainer_inputs(tok, texts, limit_alphabet)
        tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency,
                                limit_alphabet=len(alphabet), initial_alphabet=alphabet,
                                special_tokens=[*SPECIAL_TOKENS, *continuing], show_progress=False)
        folder = Path(folder).expanduser()
        _publish_folder(folder, lambda tmp: (tok.save_model(str(tmp)), (tmp / TOKENIZER_CONFIG).write_text(
            json.dumps({"do_lower_case": lowercase}) + "\n")))
        # read back: only a tokenizer built from a vocab file gets BERT's [CLS]/[SEP] post-processor
        return cls(folder)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def tokens(self, text: str) -> list[str]:
        """The WordPiece tokens of one text, without ``[CLS]``/``[SEP]``."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    def tokenize(self, texts: Sequence[str], max_length: int, padding: str = "longest") -> dict[str, torch.Tensor]:
        """``{"input_ids", "attention_mask"}``: int64 tensors [N, T], T <= ``max_length``."""
        if padding not in ("longest", "max_length"):
            raise CardiobenchError(f"tokenize: padding must be 'longest' or 'max_length', got {padding!r}")
        if max_length < 2:
            raise CardiobenchError(f"tokenize: max_length must leave room for [CLS] and [SEP], got {max_length}")
        self._tok.enable_truncation(max_length)
        self._tok.enable_padding(pad_id=self.pad_id, pad_token="[PAD]",
                                 length=max_length if padding == "max_length" else None)
        enc = self._tok.encode_batch(list(texts))
        return {"input_ids": _rows([e.ids for e in enc]), "attention_mask": _rows([e.attention_mask for e in enc])}


def _rows(rows: list[list[int]]) -> torch.Tensor:
    """Equal-length id rows as int64 [N, T] (also for N = 0)."""
    return torch.tensor(rows, dtype=torch.int64) if rows else torch.zeros(0, 0, dtype=torch.int64)


def text_tokenizer(folder: str | Path, texts: Iterable[str] = (), pretrained: str | Path | None = None,
                   **train_kwargs) -> WordPieceTokenizer:
    """A run's tokenizer: the ``vocab.txt`` of the pretrained text encoder folder when given; else the
    vocabulary already in ``folder`` (a resumed run); else one trained on ``texts`` into ``folder``."""
    if pretrained:
        return WordPieceTokenizer.load(pretrained)
    if (Path(folder).expanduser() / VOCAB_FILE).is_file():
        return WordPieceTokenizer.load(folder)
    return WordPieceTokenizer.train(texts, folder, **train_kwargs)


def _publish_folder(folder: Path, write: Callable[[Path], object]) -> None:
    """Write files into a staging folder beside ``folder`` with ``write``, then rename each into
    ``folder``, ``vocab.txt`` last: a run killed while its vocabulary is written never leaves a
    half-written ``vocab.txt`` for its resume to read (other files already in ``folder`` stay)."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(folder)  # named as a temporary: a killed run's is swept when it resumes
    try:
        write(staging)
        for f in sorted(staging.iterdir(), key=lambda f: f.name == VOCAB_FILE):
            os.replace(f, folder / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read_lowercase(folder: Path) -> bool:
    """``do_lower_case`` of a Hugging Face tokenizer folder; BERT's uncased default when not stated."""
    cfg = folder / TOKENIZER_CONFIG
    if not cfg.is_file():
        return True
    try:
        return bool(json.loads(cfg.read_text()).get("do_lower_case", True))
    except (OSError, ValueError) as exc:
        raise CardiobenchError(f"{cfg}: unreadable tokenizer config ({exc})") from None


def _deterministic_trainer_inputs(tok, texts: Sequence[str], limit_alphabet: int) -> tuple[list[str], list[str]]:
    """The alphabet and the ``##``-continuation tokens, fixed in advance so that training is deterministic.

    ``tokenizers``' BPE/WordPiece trainer gives the ``##c`` tokens ids in hash-map order, and breaks
    ties between equally frequent merges by id, so the same texts can give different vocabularies
    (huggingface/tokenizers issues 1794, PR 2066). Passed as special tokens, ``##c`` get fixed ids;
    the alphabet (most frequent characters, ties by character) is passed as ``initial_alphabet`` so the
    trainer's own unstable cut at ``limit_alphabet`` never applies. Words are the tokenizer's own
    normalised, pre-tokenised words, as the trainer sees them.
    """
    normalizer, pre = tok._tokenizer.normalizer, tok._tokenizer.pre_tokenizer
    words = Counter(w for text in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars: Counter[str] = Counter()
    for word, n in words.items():
        for c in word:
            chars[c] += n
    alphabet = sorted(chars, key=lambda c: (-chars[c], c))[:limit_alphabet]
    kept = set(alphabet)
    continuing = sorted({"##" + c for word in words for c in word[1:] if c in kept})
    return alphabet, continuing


# --- BERT ----------------------------------------------------------------------------------------

def bert_config(**sizes):
    """A ``BertConfig``: BERT-base (CXR-BERT) sizes unless overridden, e.g. ``num_hidden_layers=2``."""
    from transformers import BertConfig

    return BertConfig(**{**BERT_BASE, **sizes})


def load_bert(folder: str | Path):
    """A ``BertModel`` (no pooler) from a local Hugging Face folder, never the Hub.

    Checkpoints of a BERT with heads (``bert.``-prefixed keys, e.g. CXR-BERT) load too. Missing and
    unexpected keys are logged; a folder whose weights match nothing is an error.
    """
    from transformers import BertModel

    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise CardiobenchError(f"{path}: not a local Hugging Face model folder (no config.json); "
                               "weights are local folders, nothing is downloaded")
    try:
        model, info = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False,
                                                output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise CardiobenchError(f"{path}: cannot load a BERT model ({exc})") from None
    missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    if len(missing) == len(model.state_dict()):
        raise CardiobenchError(f"{path}: no parameter names match a BertModel")
    if missing or unexpected:
        log.warning("%s: %d missing keys %s, %d unexpected keys %s", path, len(missing), missing[:5],
                    len(unexpected), unexpected[:5])
    model.load_info = {"missing_keys": missing, "unexpected_keys": unexpected}
    return model


POOLINGS = ("cls", "mean")


class TextEncoder(nn.Module):
    """BERT, its ``[CLS]`` state (fVLM) or the mean of its token states projected to ``embed_dim``,
    L2-normalised (fVLM's ``text_proj``).

    ``pooling="mean"`` is for BERTs trained from random initialisation: there the ``[CLS]`` state hardly
    depends on the text (cosine similarity 1.000 between unrelated reports at init, measured with a
    2-layer BERT), so a contrastive loss has nothing to start from and the text side collapses.
    """

    def __init__(self, bert: nn.Module, embed_dim: int, pooling: str = "cls"):
        super().__init__()
        if pooling not in POOLINGS:
            raise CardiobenchError(f"text pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.bert, self.pooling = bert, pooling
        self.proj = nn.Linear(bert.config.hidden_size, embed_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            m = attention_mask[..., None].to(states.dtype)
            pooled = (states * m).sum(1) / m.sum(1).clamp_min(1)
        return F.normalize(self.proj(pooled), dim=-1)


@register("bert_text_encoder")
def bert_text_encoder(embed_dim: int = 256, weights: str | None = None, pooling: str = "cls",
                      **sizes) -> TextEncoder:
    """:class:`TextEncoder` from a ``BertConfig`` (``sizes``: its fields, BERT-base by default), or from
    the local Hugging Face folder ``weights`` (its own config; ``sizes`` must then be empty);
    ``pooling``: ``cls`` (fVLM) or ``mean`` (see :class:`TextEncoder`)."""
    from transformers import BertModel

    if weights:
        if sizes:
            raise CardiobenchError(f"bert_text_encoder: sizes {sorted(sizes)} conflict with the config of {weights}")
        return TextEncoder(load_bert(weights), embed_dim, pooling)
    return TextEncoder(BertModel(bert_config(**sizes), add_pooling_layer=False), embed_dim, pooling)
