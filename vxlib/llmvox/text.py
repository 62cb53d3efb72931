"""Text side of LLMVoX: byte-level ids and the frozen text-embedding table.

Ids (the reference's scheme, ``src/data.py`` + ``inference/model_handler.py``):

- transformers' ``ByT5Tokenizer`` (byte-level, builds offline): a byte b has id ``b + 3``;
  0 = ``<pad>``, 1 = ``</s>``, 2 = ``<unk>``; 384 ids in all.
- Two special tokens are added as the reference adds them: ``"[PAD]"`` -> :data:`PAD_ID` (384) and
  ``"EOS"`` -> :data:`EOS_ID` (385). Like the reference, the literal strings ``[PAD]``, ``EOS``,
  ``</s>``, ``<pad>``, ``<unk>`` inside the text are read as those special ids.
- Word-wise: the text is split on single spaces (``str.split(" ")``, so two spaces give an empty
  word, i.e. a lone ``</s>``), each word is tokenised separately and ends with ``</s>`` (1), and
  :data:`EOS_ID` closes the utterance. During decoding :data:`PAD_ID` is fed after the text runs out.

Embedding tables (``(386, D)``, frozen; rows 384 and 385 are identical, as in the reference where
both added rows were set to the mean embedding):

- :func:`load_byt5_embedding`: the input embedding of the ByT5 G2P model the release was trained
  with (``charsiu/g2p_multilingual_byT5_tiny_16_layers_100``, 256-d) from a local HF directory;
- :func:`default_byte_embedding`: an embedded, download-free table for offline training. It is a
  fixed random table, not the paper's embedding, and models trained on it only work with it.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import torch

__all__ = [
    "PAD_ID",
    "EOS_ID",
    "WORD_END_ID",
    "TEXT_VOCAB_SIZE",
    "encode_text",
    "encode_words",
    "load_byt5_embedding",
    "default_byte_embedding",
]

WORD_END_ID = 1  # ByT5 "</s>", appended after every word
N_BYT5_IDS = 384  # 3 specials + 256 bytes + 125 sentinel ids
PAD_ID = 384  # "[PAD]": fed once the text is exhausted
EOS_ID = 385  # "EOS": end of the utterance's text
TEXT_VOCAB_SIZE = 386


@lru_cache(maxsize=1)
def _tokenizer():
    from transformers import ByT5Tokenizer  # heavy import, only when text is tokenised

    tok = ByT5Tokenizer()  # byte-level: no vocabulary file, nothing to download
    # same order as the reference, so the added ids are 384 and 385
    tok.add_special_tokens({"pad_token": "[PAD]"})
    tok.add_special_tokens({"pad_token": "EOS"})
    assert tok.convert_tokens_to_ids(["[PAD]", "EOS"]) == [PAD_ID, EOS_ID]
    return tok


def encode_words(words: list[str]) -> list[int]:
    """Ids of a list of words, each tokenised separately and ended by ``</s>`` (no final EOS)."""
    out: list[int] = []
    for ids in _tokenizer()(list(words))["input_ids"]:
        out.extend(ids)
    return out


def encode_text(text: str, add_eos: bool = True) -> list[int]:
    """The reference ids of ``text``: words split on ``" "``, each + ``</s>``, then :data:`EOS_ID`."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    ids = encode_words(text.split(" "))
    return ids + [EOS_ID] if add_eos else ids


def _with_special_rows(table: torch.Tensor) -> torch.Tensor:
    """Append rows 384 and 385 as the reference's smart resize does: each new row is the mean of the
    rows before it, so both equal the mean of the 384 ByT5 rows."""
    base = table[:N_BYT5_IDS].float()
    mean = base.mean(dim=0, keepdim=True)
    return torch.cat([base, mean, mean]).contiguous()


_EMBEDDING_KEYS = ("shared.weight", "encoder.embed_tokens.weight")


def load_byt5_embedding(model_dir: str | os.PathLike) -> torch.Tensor:
    """The ``(386, d_model)`` text table from a local Hugging Face T5/ByT5 directory
    (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), e.g. a download of
    ``charsiu/g2p_multilingual_byT5_tiny_16_layers_100`` (256-d). Only the input embedding is read.
    """
    d = Path(model_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a directory (expected a local HF model directory)")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: missing (expected a T5/ByT5 model directory)")
    d_model = json.loads(cfg_path.read_text()).get("d_model")
    st, pt = d / "model.safetensors", d / "pytorch_model.bin"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            names = set(f.keys())
            key = next((k for k in _EMBEDDING_KEYS if k in names), None)
            table = f.get_tensor(key) if key else None
        src = st
    elif pt.is_file():
        sd = torch.load(pt, map_location="cpu", weights_only=True)
        key = next((k for k in _EMBEDDING_KEYS if k in sd), None)
        table = sd[key] if key else None
        src = pt
    else:
        raise FileNotFoundError(f"{d}: no model.safetensors or pytorch_model.bin")
    if table is None:
        raise KeyError(f"{src}: no input embedding (looked for {', '.join(_EMBEDDING_KEYS)})")
    if table.dim() != 2 or table.shape[0] < N_BYT5_IDS or (d_model and table.shape[1] != d_model):
        raise ValueError(
            f"{src}: '{key}' has shape {tuple(table.shape)}; expected (>= {N_BYT5_IDS}, d_model={d_model})"
        )
    return _with_special_rows(table)


def default_byte_embedding(dim: int = 256, seed: int = 0) -> torch.Tensor:
    """An embedded ``(386, dim)`` text table for offline training (NOT the paper's ByT5 table).

    Rows are independent Gaussian directions scaled to unit length (seeded ``torch.Generator``),
    so distinct bytes are nearly orthogonal, which is all a frozen lookup needs to be told apart;
    rows 384/385 are the mean row as in the reference layout.
    """
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(N_BYT5_IDS, dim, generator=g, dtype=torch.float32)
    rows = rows / rows.norm(dim=1, keepdim=True)
    return _with_special_rows(rows)
