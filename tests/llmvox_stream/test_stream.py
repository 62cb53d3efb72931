"""Multi-queue streaming: sentence routing and order, the dump-size schedule, seam-free decoding,
gaps between sentences, clean ends, cancellation and errors with no thread left behind."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from tests.llmvox_stream.conftest import stream_threads, voiced_signal
from vxlib.llmvox.sources import ScriptedSource
from vxlib.llmvox.stream import (DumpSchedule, MultiQueueStreamer, SeamlessDecoder, SentenceSplitter, StreamConfig,
                                 clean_text, end_ids, seam_snr_db, text_ids)
from vxlib.llmvox.text import encode_text
from vxlib.stream.workers import CancelToken, Cancelled

FIVE = "One two three. Four five six? Seven eight! Nine ten eleven.\nTwelve thirteen"
FIVE_SENTENCES = ["One two three.", "Four five six?", "Seven eight!", "Nine ten eleven.", "Twelve thirteen"]
SMALL = dict(max_pad_tokens=8, max_tokens_per_sentence=400)  # random models rarely say end-of-audio


# -- text ------------------------------------------------------------------------------------

def test_sentence_splitter_ends_and_decimals():
    s = SentenceSplitter()
    assert s.feed("Hello there. Pi is 3.5 ok") == [("Hello there.", True), ("Pi is 3.5 ok", False)]
    assert s.feed("!") == [("!", True)]  # an end character closing a piece ends the sentence
    assert s.feed(" Next\nline") == [("Next", True), ("line", False)]
    assert SentenceSplitter(ends=";").feed("a; b. c") == [("a;", True), ("b. c", False)]


@pytest.mark.parametrize("pieces", [["Hello", " world", "."], ["Hel", "lo wo", "rld."], ["Hello world."]])
def test_streamed_text_ids_equal_reference_ids(pieces):
    ids, open_word = [], False
    for p in pieces:
        new, open_word = text_ids(p, open_word)
        ids += new
    assert ids + end_ids(open_word) == encode_text("Hello world.")


def test_clean_text_speaks_symbols():
    assert clean_text("#1 & **bold**") == " number 1 and bold"


def test_dump_schedule_is_the_references():
    assert DumpSchedule(10, 1280, 3).sizes(7) == [10, 30, 90, 270, 810, 1280, 1280]
    assert DumpSchedule(160, 1280, 3).sizes(4) == [160, 480, 1280, 1280]
    with pytest.raises(ValueError):
        DumpSchedule(0)


# -- routing, order, schedule -------------------------------------------------------------------

def test_sentences_alternate_between_replicas_in_order(golden_stack):
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(**SMALL))
    with streamer.stream(ScriptedSource(None).pieces(FIVE)) as s:
        chunks = list(s)
    assert s.sentences == FIVE_SENTENCES
    sentences = [c.sentence for c in chunks]
    assert sentences == sorted(sentences) and set(sentences) == set(range(5))
    assert all(c.replica == c.sentence % 2 for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert [c.first_sample for c in chunks] == list(np.cumsum([0] + [c.audio.size for c in chunks[:-1]]))
    # every sentence ends with a marked last chunk
    assert [c.stop for c in chunks if c.stop] == ["limit"] * 5


def test_chunk_sizes_follow_the_dump_schedule_across_sentences(golden_stack):
    cfg = StreamConfig(initial_dump_size_1=3, initial_dump_size_2=5, dump_growth=2, max_dump_size=20,
                       max_pad_tokens=60, lookahead=2, crossfade=320)
    streamer = MultiQueueStreamer(golden_stack, cfg)
    with streamer.stream(["Aa bb. Cc dd. Ee ff."]) as s:
        chunks = list(s)
    a = [c.tokens for c in chunks if c.replica == 0]
    b = [c.tokens for c in chunks if c.replica == 1]
    n0 = sum(c.tokens for c in chunks if c.sentence == 0)
    # replica A: 3, 6, 12, 20, ... within sentence 0, then the schedule carries on into sentence 2
    expect, size, left = [], 3, n0
    while left > size:
        expect.append(size)
        left -= size
        size = min(size * 2, 20)
    assert a[:len(expect)] == expect and a[len(expect)] == left  # the final flush takes the rest
    assert a[len(expect) + 1] == size  # sentence 2 continues the schedule, it does not restart
    assert b[:3] == [5, 10, 20]


def test_codes_and_tokens_account_for_all_audio(golden_stack):
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(**SMALL))
    audio, chunks = streamer.speak("Count the tokens. All of them.")
    hop = golden_stack.codec.hop_length
    assert audio.size == sum(c.tokens for c in chunks) * hop == sum(len(c.codes) for c in chunks) * hop


# -- seams ------------------------------------------------------------------------------------

def test_seamless_decoder_matches_whole_decode_on_the_embedded_codec(world_codec):
    codes = world_codec.encode(voiced_signal(seconds=3.0, seed=1), 24000).tolist()  # 225 codes
    whole = world_codec.decode(torch.tensor(codes))[0].numpy()
    sizes = DumpSchedule(10, 1280, 3).sizes(4)  # 10, 30, 90, 270
    seams = [s * 320 for s in np.cumsum(sizes) if s < len(codes)]
    dec = SeamlessDecoder(world_codec, left_context=None, crossfade=320)
    # the default look-ahead covers the codec's bound and the crossfade tail: (4 * 320 + 512 + 320) / 320 -> 7
    assert world_codec.lookahead_samples == 4 * 320 + 512 and dec.lookahead == 7
    q = seam_snr_db(dec.decode_all(codes, sizes), whole, seams)
    assert q["snr_db"] >= 100 and q["worst_seam_snr_db"] >= 100, q  # the whole decode, up to float rounding
    # the reference's context-free chunks, for contrast: far below
    naive = SeamlessDecoder(world_codec, left_context=0, lookahead=0, crossfade=0).decode_all(codes, sizes)
    assert seam_snr_db(naive, whole, seams)["worst_seam_snr_db"] < 10


def test_streamed_sentence_equals_decoder_on_its_codes(world_stack):
    """End to end: each sentence's streamed audio is >= 30 dB from one decode of its own codes."""
    streamer = MultiQueueStreamer(world_stack, StreamConfig(initial_dump_size_1=6, initial_dump_size_2=8, max_pad_tokens=40))
    with streamer.stream(ScriptedSource(None).pieces("First sentence here. Second one.")) as s:
        chunks = list(s)
    for k in range(2):
        mine = [c for c in chunks if c.sentence == k]
        codes = [x for c in mine for x in c.codes]
        whole = world_stack.codec.decode(torch.tensor(codes))[0].numpy()
        seams = list(np.cumsum([c.audio.size for c in mine])[:-1])
        q = seam_snr_db(np.concatenate([c.audio for c in mine]), whole, seams)
        assert len(mine) >= 2 and q["worst_seam_snr_db"] >= 30, (k, q)


def test_default_lookahead_for_a_codec_without_a_bound(golden_codec):
    assert golden_codec.lookahead_samples is None
    assert SeamlessDecoder(golden_codec).lookahead == 4  # WavTokenizer's non-causal decoder: the fixed choice
    assert SeamlessDecoder(golden_codec, crossfade=1600).lookahead == 5  # the crossfade must fit in the held-back tokens


def test_decoder_rejects_a_crossfade_longer_than_the_lookahead(golden_codec):
    with pytest.raises(ValueError, match="lookahead"):
        SeamlessDecoder(golden_codec, lookahead=1, crossfade=640)


# -- timeline ---------------------------------------------------------------------------------

def test_no_gap_longer_than_one_chunk_between_sentences(golden_stack):
    """Play the chunks as they become ready: at a sentence change the player waits at most one
    chunk's duration (the next sentence was being generated by the other replica meanwhile)."""
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(max_pad_tokens=30))
    with streamer.stream(ScriptedSource(40).pieces(FIVE)) as s:
        chunks = list(s)
    sr = golden_stack.sample_rate
    play_end = chunks[0].timing.ready
    for prev, c in zip(chunks, chunks[1:]):
        start = max(c.timing.ready, play_end + prev.audio.size / sr)
        gap = start - (play_end + prev.audio.size / sr)
        if c.sentence != prev.sentence:
            assert gap <= max(prev.audio.size, c.audio.size) / sr, (prev.sentence, c.sentence, gap)
        play_end = start
    rows = s.timeline()
    assert all(r["text_arrival_ms"] <= r["decoded_ms"] <= r["ready_ms"] for r in rows)
    assert all(r["generation_start_ms"] <= r["tokens_done_ms"] <= r["decoded_ms"] for r in rows)
    assert s.time_to_first_audio == pytest.approx(rows[0]["ready_ms"] / 1e3)


# -- ends, cancellation, errors ------------------------------------------------------------------

def test_clean_end_leaves_no_thread(golden_stack):
    before = threading.active_count()
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(**SMALL))
    for _ in range(3):
        with streamer.stream(ScriptedSource(None).pieces(FIVE)) as s:
            list(s)
        assert stream_threads() == []
    assert threading.active_count() == before


def test_cancel_mid_stream_stops_both_replicas_and_frees_the_streamer(golden_stack):
    before = threading.active_count()
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(max_pad_tokens=None, max_tokens_per_sentence=1000))
    s = streamer.stream(ScriptedSource(20).pieces(FIVE * 5))
    first = next(s)  # speaking has started; both replicas are busy or waiting for text
    assert first.sentence == 0 and len(stream_threads()) >= 2
    s.close()
    assert stream_threads() == [] and threading.active_count() == before
    with pytest.raises(StopIteration):
        next(s)
    audio, _ = streamer.speak("Reusable after a cancel.")  # the streamer was given back
    assert audio.size > 0


def test_external_cancel_token_ends_the_stream(golden_stack):
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(max_tokens_per_sentence=1000))
    token = CancelToken()
    s = streamer.stream(ScriptedSource(20).pieces(FIVE * 5, token), token)
    next(s)
    token.cancel("client gone")
    with pytest.raises(Cancelled):
        for _ in s:
            pass
    assert stream_threads() == []


def test_a_failing_source_raises_in_the_consumer(golden_stack):
    def pieces():
        yield "Fine so far. "
        raise OSError("LLM crashed")

    streamer = MultiQueueStreamer(golden_stack, StreamConfig(**SMALL))
    with pytest.raises(OSError, match="LLM crashed"):
        with streamer.stream(pieces()) as s:
            list(s)
    assert stream_threads() == []


def test_one_request_at_a_time_per_streamer(golden_stack):
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(**SMALL))
    with streamer.stream(["Busy."]) as s:
        with pytest.raises(RuntimeError, match="already serving"):
            streamer.stream(["Second."])
        list(s)


# -- first-audio priority and precision ------------------------------------------------------------

@pytest.mark.parametrize("priority", [True, False])
def test_second_replica_waits_for_the_first_chunk_when_asked(golden_stack, priority):
    """With ``first_audio_priority`` replica B starts sentence 1 only after the request's first
    chunk is ready (the text is all there at t=0, so without it both start at once)."""
    streamer = MultiQueueStreamer(golden_stack, StreamConfig(first_audio_priority=priority, **SMALL))
    with streamer.stream(["One two three. Four five six seven."]) as s:
        chunks = list(s)
    first_b = min(c.timing.compute_start for c in chunks if c.replica == 1)
    first_a_decoded = chunks[0].timing.compute_end
    if priority:
        assert first_b >= first_a_decoded
    else:
        assert first_b < first_a_decoded
    assert [c.sentence for c in chunks] == sorted(c.sentence for c in chunks)


def test_int8_precision_streams_the_quantised_model(golden_stack):
    fp32 = MultiQueueStreamer(golden_stack, StreamConfig(**SMALL))
    int8 = MultiQueueStreamer(golden_stack, StreamConfig(gpt_precision="int8", **SMALL))
    assert int8.replicas[0].generator.model is golden_stack.model_for("int8")  # built once, shared
    assert int8.replicas[1].generator.model is int8.replicas[0].generator.model
    assert fp32.replicas[0].generator.model is golden_stack.model
    audio, chunks = int8.speak("One two three.")
    assert audio.size == sum(c.tokens for c in chunks) * golden_stack.codec.hop_length > 0
    with pytest.raises(ValueError, match="gpt_precision"):
        StreamConfig(gpt_precision="fp16")
    with pytest.raises(ValueError, match="replica_threads"):
        StreamConfig(replica_threads=-1)


def test_replica_threads_set_each_replica_threads_team(golden_stack):
    import torch

    seen = []
    original = MultiQueueStreamer(golden_stack, StreamConfig(replica_threads=1, **SMALL))
    speak = original.replicas[0].speak

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return speak(*args, **kwargs)

    original.replicas[0].speak = spy
    before = torch.get_num_threads()
    original.speak("One two. Three four.")
    assert seen == [1]
    assert torch.get_num_threads() == before  # the caller's own setting is untouched


def test_int8_decoder_where_the_codec_has_one(golden_stack, world_stack):
    from vxlib.quant import Int8Linear

    streamer = MultiQueueStreamer(golden_stack, StreamConfig(decoder_precision="int8", **SMALL))
    codec = streamer.replicas[0].decoder.codec
    assert codec is golden_stack.codec_for("int8") is streamer.replicas[1].decoder.codec
    assert type(codec.backbone.convnext[0].pwconv1) is Int8Linear
    audio, chunks = streamer.speak("One two three.")
    assert audio.size == sum(c.tokens for c in chunks) * codec.hop_length > 0
    assert world_stack.codec_for("int8") is world_stack.codec  # WORLD synthesis has no weights to quantise
