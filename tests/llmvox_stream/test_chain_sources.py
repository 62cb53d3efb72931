"""The LLVC target-voice stage after TTS (length, order, equality with offline conversion) and the
text sources (scripted rate and cancellation, eos-string handling)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from vxlib.audio import resample
from vxlib.llmvox.chain import TargetVoiceStage
from vxlib.llmvox.sources import HFChatSource, ScriptedSource, VisionChatSource, strip_eos
from vxlib.llmvox.stream import MultiQueueStreamer, StreamConfig
from vxlib.llvc.inference import build_model, convert, load_config
from vxlib.run import REPO_ROOT
from vxlib.stream.workers import CancelToken, Cancelled


@pytest.fixture(scope="module")
def llvc_tiny():
    cfg = load_config(REPO_ROOT / "experiments" / "llvc_tiny" / "config.json")
    torch.manual_seed(0)
    return build_model(cfg).eval(), int(cfg["data"]["sr"])


def test_chain_output_length_order_and_offline_equality(golden_stack, llvc_tiny):
    model, rate = llvc_tiny
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(initial_dump_size_1=4, initial_dump_size_2=8, max_pad_tokens=6))
    stage = TargetVoiceStage(model, rate, golden_stack.sample_rate)
    with streamer.stream(ScriptedSource(None).pieces("My voice. Again!")) as s:
        out = list(stage.convert(s))
        tts = s.audio()
    converted = np.concatenate([c.audio for c in out])
    expected = convert(model, resample(tts, golden_stack.sample_rate, rate, quality=TargetVoiceStage.RESAMPLE_QUALITY))
    assert converted.size == expected.size  # nothing dropped or padded by the streaming stages
    np.testing.assert_allclose(converted, expected, atol=1e-4)
    assert len(out) >= 4 and [c.sentence for c in out] == sorted(c.sentence for c in out)
    assert [c.first_sample for c in out] == list(np.cumsum([0] + [c.audio.size for c in out[:-1]]))
    # the stage is ready for the next request
    again = np.concatenate([c.audio for c in stage.convert(iter(s.chunks))])
    np.testing.assert_array_equal(again, converted)


def test_scripted_source_streams_words_at_its_rate():
    text = "one two  three\nfour"
    pieces = list(ScriptedSource(None).pieces(text))
    assert "".join(pieces) == text and pieces[0] == "one"
    t0 = time.perf_counter()
    list(ScriptedSource(100).pieces("a b c d e f"))
    assert time.perf_counter() - t0 >= 0.05 - 1e-3  # five waits of 10 ms (a lower bound only)


def test_scripted_source_stops_on_cancel():
    token = CancelToken()
    it = ScriptedSource(5).pieces("a b c d", token)
    assert next(it) == "a"
    token.cancel("client gone")
    with pytest.raises(Cancelled):
        next(it)


def test_eos_is_cut_as_a_string_not_a_character_set():
    # the reference's rstrip("<|end|>") would also eat the "d" and "n" of "end"
    assert strip_eos("the end<|end|>", "<|end|>") == ("the end", True)
    assert strip_eos("the end", "<|end|>") == ("the end", False)
    assert strip_eos("a<|im_end|>tail", "<|im_end|>") == ("a", True)


def test_model_sources_refuse_without_local_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        HFChatSource(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="vision-language"):
        VisionChatSource("")
