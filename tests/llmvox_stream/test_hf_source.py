"""HFChatSource on a tiny, randomly initialised Llama saved to a local directory (byte-level
tokenizer with a chat template, built here: nothing is downloaded), and its eos-string handling
with a scripted stand-in for ``generate``."""

from __future__ import annotations

import threading

import pytest
import torch

from vxlib.llmvox.sources import HFChatSource
from vxlib.stream.workers import CancelToken, Cancelled

EOT = "<|eot_id|>"


def byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT)
    fast.add_special_tokens({"additional_special_tokens": [EOT]})
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}assistant: {% endif %}")
    return fast


@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("tiny_llama")
    tok = byte_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      eos_token_id=tok.convert_tokens_to_ids(EOT), pad_token_id=0)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def hf_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "hf-generate"]


@pytest.mark.slow
def test_tiny_local_llm_streams_and_cleans_up(tiny_llm_dir):
    src = HFChatSource(tiny_llm_dir, max_new_tokens=12)
    pieces = list(src.pieces("Hello?"))
    text = "".join(pieces)
    assert isinstance(text, str) and text  # random weights: random bytes, at most 12 tokens of them
    assert hf_threads() == []


class ScriptedGenerate(torch.nn.Module):
    """Stands in for a causal LM: ``generate`` streams a fixed answer token by token (after the
    prompt, which TextIteratorStreamer skips), honouring the stopping criteria."""

    def __init__(self, tokenizer, answer: str):
        super().__init__()
        self.ids = tokenizer(answer)["input_ids"]

    def generate(self, input_ids, streamer, stopping_criteria, max_new_tokens, **_):
        streamer.put(input_ids)
        for i in self.ids[:max_new_tokens]:
            if any(c(input_ids, None) for c in stopping_criteria):
                break
            streamer.put(torch.tensor([i]))
            threading.Event().wait(0.002)
        streamer.end()


def test_answer_is_cut_at_the_eos_string():
    tok = byte_tokenizer()
    src = HFChatSource("", EOT, model=ScriptedGenerate(tok, f"The end. Good end{EOT}junk after"), tokenizer=tok)
    assert "".join(src.pieces("Hi")) == "The end. Good end"
    assert hf_threads() == []


def test_cancel_stops_generation():
    tok = byte_tokenizer()
    src = HFChatSource("", EOT, model=ScriptedGenerate(tok, "word " * 200), tokenizer=tok, max_new_tokens=1000)
    token = CancelToken()
    it = src.pieces("Hi", token)
    next(it)
    token.cancel("client gone")
    with pytest.raises(Cancelled):
        list(it)
    assert hf_threads() == []
