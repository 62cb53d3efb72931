"""Text ids (reference word-wise ByT5 scheme) and the text-embedding tables."""

from __future__ import annotations

import json

import pytest
import torch

from vxlib.llmvox.text import (
    EOS_ID,
    PAD_ID,
    TEXT_VOCAB_SIZE,
    default_byte_embedding,
    encode_text,
    encode_words,
    load_byt5_embedding,
)


def _bytes(word: str) -> list[int]:
    return [b + 3 for b in word.encode("utf-8")]


def test_word_wise_ids_with_word_ends_and_eos():
    assert encode_text("Hi there") == _bytes("Hi") + [1] + _bytes("there") + [1] + [EOS_ID]
    assert encode_text("Hi there", add_eos=False) == _bytes("Hi") + [1] + _bytes("there") + [1]


def test_reference_quirks_are_reproduced():
    # split(" "): a double space is an empty word, i.e. a lone </s>
    assert encode_text("a  b") == _bytes("a") + [1, 1] + _bytes("b") + [1, EOS_ID]
    # multi-byte UTF-8 is one id per byte
    assert encode_words(["wörld"]) == _bytes("wörld") + [1]
    assert len(_bytes("wörld")) == 6
    # the added special strings are read as their ids, as the reference tokenizer does
    assert encode_words(["EOS", "[PAD]"]) == [EOS_ID, 1, PAD_ID, 1]
    assert max(encode_text("ÿ")) < TEXT_VOCAB_SIZE


def test_text_must_be_str():
    with pytest.raises(TypeError, match="str"):
        encode_text(["a", "b"])


def test_default_table_layout_and_determinism():
    t = default_byte_embedding()
    assert t.shape == (TEXT_VOCAB_SIZE, 256) and t.dtype == torch.float32
    assert torch.allclose(t[:384].norm(dim=1), torch.ones(384))
    assert torch.equal(t[PAD_ID], t[EOS_ID])
    assert torch.allclose(t[PAD_ID], t[:384].mean(0))
    assert torch.equal(t, default_byte_embedding())
    assert not torch.equal(t, default_byte_embedding(seed=1))
    off_diag = (t[:384] @ t[:384].T - torch.eye(384)).abs().max()
    assert off_diag < 0.35  # bytes are told apart: nearly orthogonal rows


def _write_t5_dir(d, table: torch.Tensor, fmt: str, key: str = "shared.weight"):
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": table.shape[1]}))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({key: table, "lm_head.weight": torch.zeros(2, 2)}, str(d / "model.safetensors"))
    else:
        torch.save({key: table}, d / "pytorch_model.bin")


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_load_byt5_embedding_appends_mean_rows(tmp_path, fmt):
    table = torch.randn(384, 16, generator=torch.Generator().manual_seed(0))
    _write_t5_dir(tmp_path / "m", table, fmt)
    got = load_byt5_embedding(tmp_path / "m")
    assert got.shape == (386, 16)
    assert torch.equal(got[:384], table)
    assert torch.allclose(got[384], table.mean(0)) and torch.equal(got[384], got[385])


def test_load_byt5_embedding_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_byt5_embedding(tmp_path / "missing")
    _write_t5_dir(tmp_path / "wrongkey", torch.zeros(384, 8), "bin", key="decoder.embed_tokens.weight")
    with pytest.raises(KeyError, match="pytorch_model.bin.*no input embedding"):
        load_byt5_embedding(tmp_path / "wrongkey")
    _write_t5_dir(tmp_path / "short", torch.zeros(100, 8), "bin")
    with pytest.raises(ValueError, match=r"shape \(100, 8\)"):
        load_byt5_embedding(tmp_path / "short")
