"""Dataset reading, the token cache, example building (EOA / PAD / shift / -1000), the quirk flag
and the batch schedule."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

from vxlib.codec.world_codec import WorldCodec
from vxlib.llmvox.data import (
    BatchSchedule,
    DatasetError,
    Record,
    TokenCache,
    build_examples,
    collate,
    read_dataset,
    split_records,
    write_dataset,
)
from vxlib.llmvox.model import EOA_CODE, IGNORE_INDEX, InputEmbedder
from vxlib.llmvox.text import EOS_ID, PAD_ID, default_byte_embedding, encode_text


def _fake(records_codes: dict[str, list[int]], texts: dict[str, str], tmp_path):
    """Records with the given texts and a cache holding the given codes (no codec involved)."""
    recs = [Record(rid, texts[rid], tmp_path / f"{rid}.wav") for rid in records_codes]
    cache = TokenCache({k: torch.tensor(v) for k, v in records_codes.items()}, "fake")
    return recs, cache


# --- the JSON dataset -------------------------------------------------------------------------


def test_read_dataset_resolves_relative_speech_folder(tiny_corpus):
    records = read_dataset(tiny_corpus["dataset"])
    assert len(records) == 16
    assert records[0].id == "utt00" and records[0].audio_path == tiny_corpus["root"] / "wavs" / "utt00.wav"
    assert all(r.audio_path.is_file() for r in records)


def test_read_dataset_lists_every_bad_record(tmp_path, tiny_corpus):
    rows = json.loads(tiny_corpus["dataset"].read_text())[:3]
    rows[0]["speech_folder"] = str(tiny_corpus["root"] / "wavs")
    rows[1] = {k: v for k, v in rows[1].items() if k != "answer_text"}
    rows[2]["speech_file"] = "nope.wav"
    rows.append(dict(rows[0]))  # duplicate id
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows))
    with pytest.raises(DatasetError) as err:
        read_dataset(bad)
    msg = str(err.value)
    assert str(bad) in msg and "3 bad record(s)" in msg
    assert "missing keys ['answer_text']" in msg and "nope.wav not found" in msg and "duplicate id" in msg


def test_reference_quirk_reads_id_wav_from_a_folder(tmp_path, tiny_corpus):
    rows = json.loads(tiny_corpus["dataset"].read_text())[:2]
    for r in rows:
        r["speech_folder"], r["speech_file"] = "ignored", "ignored.wav"
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DatasetError, match="not found"):
        read_dataset(path)
    recs = read_dataset(path, reference_quirks=True, speech_data_folder=tiny_corpus["root"] / "wavs")
    assert [r.audio_path.name for r in recs] == ["utt00.wav", "utt01.wav"]


def test_write_then_read_round_trip(tmp_path, tiny_corpus):
    recs = read_dataset(tiny_corpus["dataset"])
    inside = write_dataset(recs, tiny_corpus["root"] / "copy.json")  # audio below the JSON: relative
    assert json.loads(inside.read_text())[0]["speech_folder"] == "wavs"
    assert read_dataset(inside) == recs
    outside = write_dataset(recs, tmp_path / "copy.json")  # elsewhere: absolute
    assert json.loads(outside.read_text())[0]["speech_folder"] == str((tiny_corpus["root"] / "wavs").resolve())
    assert [r.audio_path.resolve() for r in read_dataset(outside)] == [r.audio_path.resolve() for r in recs]


def test_split_is_deterministic_and_stable(tiny_corpus):
    recs = read_dataset(tiny_corpus["dataset"])
    train, val = split_records(recs, 0.25, seed=0)
    assert len(val) == 4 and len(train) == 12 and not {r.id for r in train} & {r.id for r in val}
    assert split_records(recs, 0.25, seed=0) == (train, val)
    # removing a training utterance does not move any other utterance across the split
    _, val2 = split_records([r for r in recs if r.id != train[0].id], 0.25, seed=0)
    assert {r.id for r in val2} <= {r.id for r in val} | {r.id for r in train}
    assert {r.id for r in val2} == {r.id for r in val}


# --- token cache ------------------------------------------------------------------------------


class CountingCodec(WorldCodec):
    """The real codec, counting its encode calls."""

    calls = 0

    def _encode(self, wav):
        self.calls += 1
        return super()._encode(wav)


def test_cache_tokenises_once_and_reencodes_only_changed_files(tmp_path, tiny_corpus):
    recs = read_dataset(tiny_corpus["dataset"])[:6]
    codec = CountingCodec.from_pretrained(tiny_corpus["codec_dir"])
    first = TokenCache.build(recs, codec, tmp_path / "cache")
    assert (codec.calls, first.encoded, len(first)) == (6, 6, 6)
    assert (tmp_path / "cache" / "codes.pt").is_file()
    again = TokenCache.build(recs, codec, tmp_path / "cache")
    assert (codec.calls, again.encoded) == (6, 0)  # read from the cache, codec not called
    for r in recs:
        assert torch.equal(again[r.id], first[r.id]) and again[r.id].dtype == torch.long
        assert len(first[r.id]) == 38  # ceil(12000 / 320)
    st = recs[2].audio_path.stat()
    os.utime(recs[2].audio_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = TokenCache.build(recs, codec, tmp_path / "cache")
    assert (codec.calls, third.encoded) == (7, 1)


class ShiftedCodec(WorldCodec):
    """The same codec with a different codebook (as a refit would have)."""

    @property
    def codebook(self):
        return super().codebook + 1.0


def test_cache_refuses_another_codec(tmp_path, tiny_corpus):
    recs = read_dataset(tiny_corpus["dataset"])[:2]
    codec = WorldCodec.from_pretrained(tiny_corpus["codec_dir"])
    TokenCache.build(recs, codec, tmp_path / "cache")
    with pytest.raises(DatasetError, match="another codec"):
        TokenCache.build(recs, ShiftedCodec.from_pretrained(tiny_corpus["codec_dir"]), tmp_path / "cache")


# --- examples and batches ---------------------------------------------------------------------


def test_example_deletes_real_eoa_appends_eoa_and_shifts(tmp_path):
    recs, cache = _fake({"a": [5, EOA_CODE, 7, 9, EOA_CODE, 11]}, {"a": "hi"}, tmp_path)
    (ex,) = build_examples(recs, cache, block_size=64)
    assert ex.targets.tolist() == [5, 7, 9, 11, EOA_CODE]
    assert ex.prev_codes.tolist() == [-1, 5, 7, 9, 11]
    assert ex.eoa_removed == 2
    assert ex.text_ids.tolist() == encode_text("hi") == [ord("h") + 3, ord("i") + 3, 1, EOS_ID]


def test_collate_pads_targets_codes_and_text(tmp_path):
    recs, cache = _fake({"a": [1, 2, 3, 4, 5, 6], "b": [7, 8]}, {"a": "a", "b": "b"}, tmp_path)
    batch = collate(build_examples(recs, cache, block_size=64))
    assert batch.targets.tolist() == [[1, 2, 3, 4, 5, 6, EOA_CODE], [7, 8, EOA_CODE] + [IGNORE_INDEX] * 4]
    assert batch.prev_codes.tolist() == [[-1, 1, 2, 3, 4, 5, 6], [-1, 7, 8] + [EOA_CODE] * 4]
    a, b = (ord("a") + 3, 1, EOS_ID), (ord("b") + 3, 1, EOS_ID)
    assert batch.text_ids.tolist() == [[*a] + [PAD_ID] * 4, [*b] + [PAD_ID] * 4]
    assert batch.n_targets == 7 + 3


def test_embedded_batch_equals_the_reference_feature_construction(tmp_path):
    """codebook[prev_codes] must be the reference tensor: zero vector first, codebook features of
    the codes, padded with the EOA feature; concat with the text rows, L2-normalised."""
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(512, 24, generator=g)
    table = default_byte_embedding(8)
    recs, cache = _fake({"a": [3, 4, 5, 6], "b": [9, 10]}, {"a": "x", "b": "y"}, tmp_path)
    exs = build_examples(recs, cache, block_size=64)
    batch = collate(exs)
    got = InputEmbedder(table, codebook)(batch.text_ids, batch.prev_codes)  # (2, 5, 32)
    for b, codes in enumerate([[3, 4, 5, 6], [9, 10]]):
        feats = torch.cat([torch.zeros(1, 24), codebook[codes]])  # shifted, zero first
        feats = torch.cat([feats, codebook[EOA_CODE].expand(5 - feats.shape[0], 24)])  # EOA padding
        ref = F.normalize(torch.cat([table[batch.text_ids[b]], feats], dim=-1), p=2, dim=-1, eps=1e-8)
        torch.testing.assert_close(got[b], ref, rtol=0, atol=1e-6)


def test_text_longer_than_audio_is_an_error_unless_quirks(tmp_path):
    texts = {"short": "a long sentence for two codes", "long": "z"}
    recs, cache = _fake({"short": [1, 2], "long": list(range(40))}, texts, tmp_path)
    with pytest.raises(DatasetError, match=r"short .*text ids but only 3 audio steps"):
        build_examples(recs, cache, block_size=64)
    exs = build_examples(recs, cache, block_size=64, reference_quirks=True)
    n_text = len(encode_text(texts["short"]))
    # alone, the reference cuts the text to the utterance's own audio length
    assert collate(exs[:1], reference_quirks=True).text_ids.tolist() == [encode_text(texts["short"])[:3]]
    # with a longer utterance in the batch, the tail survives over target padding
    batch = collate(exs, reference_quirks=True)
    assert batch.text_ids.shape == (2, 41)
    assert batch.text_ids[0, :n_text].tolist() == encode_text(texts["short"])
    assert (batch.targets[0, 3:] == IGNORE_INDEX).all()


def test_too_long_for_block_size_is_an_error(tmp_path):
    recs, cache = _fake({"a": list(range(70))}, {"a": "x"}, tmp_path)
    with pytest.raises(DatasetError, match="71 steps > block_size 64"):
        build_examples(recs, cache, block_size=64, reference_quirks=True)


# --- batch schedule ---------------------------------------------------------------------------


def test_schedule_epochs_without_replacement_and_disjoint_shards():
    n, bs = 10, 2
    ranks = [BatchSchedule(n, bs, seed=3, rank=r, world_size=2) for r in range(2)]
    epoch = [[i for k in range(5 // bs + 1) for i in s.batch(k)][:5] for s in ranks]  # first 5 = one shard
    assert sorted(epoch[0] + epoch[1]) == list(range(n))
    fresh = BatchSchedule(n, bs, seed=3, rank=0, world_size=2)
    assert [fresh.batch(k) for k in (7, 0, 3)] == [ranks[0].batch(k) for k in (7, 0, 3)]  # pure function of k
    single = BatchSchedule(n, bs, seed=3)
    assert sorted(i for k in range(5) for i in single.batch(k)) == list(range(n))
    assert single.batch(5) != single.batch(0) or single.batch(6) != single.batch(1)  # next epoch reshuffled


def test_schedule_reference_quirk_samples_with_replacement():
    s = BatchSchedule(4, 8, seed=0, with_replacement=True)
    drawn = s.batch(0)
    assert len(drawn) == 8 and len(set(drawn)) < 8  # 8 draws from 4 items must repeat
    assert s.batch(0) == drawn
