"""Text sources for streaming TTS: where the text pieces come from.

A :class:`TextSource` turns a prompt into an iterator of text pieces, as they are written:

- :class:`ScriptedSource` streams a given text word by word at a set rate: offline, deterministic,
  the default for demos, tests and benchmarks (a stand-in for an LLM's token stream);
- :class:`HFChatSource` runs any Hugging Face causal LM from a local directory through
  ``TextIteratorStreamer`` with its chat template, stopping at a configurable eos string
  (``<|eot_id|>`` Llama 3, ``<|im_end|>`` Qwen, ``<|end|>`` Phi);
- :class:`VisionChatSource`: image + text prompts for a local vision-language model
  (``AutoModelForImageTextToText``); it refuses to start without weights.

Every source honours a :class:`~vxlib.stream.workers.CancelToken`: a cancelled request stops
generating and leaves no thread behind.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator

from vxlib.stream.workers import CancelToken, Cancelled

__all__ = ["TextSource", "ScriptedSource", "HFChatSource", "VisionChatSource", "strip_eos"]

_PIECES = re.compile(r"\s*\S+")  # a word with its leading whitespace: how LLM tokenizers cut text


def strip_eos(piece: str, eos: str) -> tuple[str, bool]:
    """Cut ``piece`` at the eos *string* (not a character set: the reference's ``rstrip(eos)`` ate
    trailing letters of the last word, e.g. "<|end|>" stripped "d", "e", "n" from "Good end")."""
    if eos and eos in piece:
        return piece[:piece.index(eos)], True
    return piece, False


class TextSource(ABC):
    """``pieces(prompt, token) -> Iterator[str]``: text pieces in the order they are written."""

    @abstractmethod
    def pieces(self, prompt: str, token: CancelToken | None = None) -> Iterator[str]: ...


class ScriptedSource(TextSource):
    """Streams the prompt itself, one word (with its leading whitespace) every ``1 / words_per_s``
    seconds, the first at once. ``words_per_s=None`` streams without waiting. 20 words/s is a
    typical LLM decoding speed (~25 tokens/s) and faster than speech (~2.5 words/s)."""

    def __init__(self, words_per_s: float | None = 20.0):
        if words_per_s is not None and words_per_s <= 0:
            raise ValueError(f"words_per_s must be positive or None, got {words_per_s}")
        self.words_per_s = words_per_s

    def pieces(self, prompt: str, token: CancelToken | None = None) -> Iterator[str]:
        token = token or CancelToken()
        for i, piece in enumerate(_PIECES.findall(prompt)):
            if i and self.words_per_s is not None and token.wait(1.0 / self.words_per_s):
                raise Cancelled(token.reason)
            token.raise_if_cancelled()
            yield piece


class _StreamedGeneration:
    """Runs ``model.generate(**inputs, streamer=TextIteratorStreamer)`` in a thread and yields the
    streamer's pieces; a stopping criterion watches the cancel token, and the thread is joined
    before the iterator finishes (normally, on error, or when closed early)."""

    def __init__(self, model: Any, tokenizer: Any, eos: str, max_new_tokens: int):
        self.model, self.tokenizer, self.eos, self.max_new_tokens = model, tokenizer, eos, max_new_tokens

    def run(self, inputs: dict, token: CancelToken) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        done = threading.Event()  # set when the consumer stops reading (eos string seen, closed early)

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return token.cancelled or done.is_set()

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=False, timeout=0.2)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                self.model.generate(**inputs, streamer=streamer, max_new_tokens=self.max_new_tokens, do_sample=False,
                                    stopping_criteria=StoppingCriteriaList([_Cancel()]))
            except BaseException as err:  # re-raised in the consumer below
                failure.append(err)
                streamer.end()

        thread = threading.Thread(target=generate, name="hf-generate", daemon=True)
        thread.start()
        try:
            it = iter(streamer)
            while True:
                try:
                    piece = next(it)
                except StopIteration:
                    break
                except queue.Empty:  # the streamer's timeout: poll the token and keep waiting
                    token.raise_if_cancelled()
                    if not thread.is_alive() and not failure:
                        break
                    continue
                token.raise_if_cancelled()
                piece, ended = strip_eos(piece, self.eos)
                if piece:
                    yield piece
                if ended:
                    break
            if failure:
                raise failure[0]
            token.raise_if_cancelled()  # generation stopped early because of a cancel: say so
        finally:
            done.set()
            thread.join()


def _local_dir(model_dir: str | os.PathLike, what: str) -> Path:
    d = Path(model_dir) if model_dir else None
    if d is None or not (d / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir!r}: no {what} here (need a local Hugging Face directory with config.json "
                                "and weights; nothing is downloaded)")
    return d


class HFChatSource(TextSource):
    """A local Hugging Face causal LM answering a prompt, streamed piece by piece.

    The prompt is wrapped by the tokenizer's chat template (``system_prompt`` first when given);
    generation is greedy, at most ``max_new_tokens``, and stops at ``eos_token`` (a string: the
    text after it is dropped). Loaded with ``local_files_only=True``.
    """

    def __init__(self, model_dir: str | os.PathLike, eos_token: str = "<|eot_id|>", device: str = "cpu",
                 system_prompt: str = "You are a helpful voice assistant. Answer in plain spoken sentences.",
                 max_new_tokens: int = 256, model: Any = None, tokenizer: Any = None):
        if model is None or tokenizer is None:
            d = _local_dir(model_dir, "causal language model")
            from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: after the cheap check

            tokenizer = AutoTokenizer.from_pretrained(d, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(d, local_files_only=True).to(device).eval()
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"{model_dir}: the tokenizer has no chat template (tokenizer_config.json 'chat_template')")
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.eos_token, self.system_prompt = eos_token, system_prompt
        self._generation = _StreamedGeneration(model, tokenizer, eos_token, max_new_tokens)
        self._lock = threading.Lock()  # one generation at a time per loaded model

    def messages(self, prompt: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": prompt}]

    def pieces(self, prompt: str, token: CancelToken | None = None) -> Iterator[str]:
        token = token or CancelToken()
        ids = self.tokenizer.apply_chat_template(self.messages(prompt), add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        inputs = {k: v.to(self.device) for k, v in ids.items()}
        with self._lock:
            yield from self._generation.run(inputs, token)


class VisionChatSource(TextSource):
    """Image + text chat with a local vision-language model (Qwen2.5-VL, Phi-4-multimodal ...) via
    ``AutoProcessor`` + ``AutoModelForImageTextToText``. Without a model directory it raises at
    construction, naming what is missing. NOTE: untested in vxlib (no VLM weights are available
    offline); the text-only :class:`HFChatSource` path is the tested one.

    ``pieces(prompt, token, images=[PIL images])``.
    """

    def __init__(self, model_dir: str | os.PathLike, eos_token: str = "<|im_end|>", device: str = "cpu",
                 max_new_tokens: int = 256):
        d = _local_dir(model_dir, "vision-language model (e.g. a local Qwen2.5-VL download)")
        from transformers import AutoModelForImageTextToText, AutoProcessor  # heavy: after the cheap check

        self.processor = AutoProcessor.from_pretrained(d, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(d, local_files_only=True).to(device).eval()
        self.device = device
        self._generation = _StreamedGeneration(self.model, self.processor.tokenizer, eos_token, max_new_tokens)

    def pieces(self, prompt: str, token: CancelToken | None = None, images: list | None = None) -> Iterator[str]:
        token = token or CancelToken()
        content = [{"type": "image"} for _ in images or []] + [{"type": "text", "text": prompt}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        inputs = self.processor(text=[text], images=images or None, return_tensors="pt")
        yield from self._generation.run({k: v.to(self.device) for k, v in inputs.items()}, token)
