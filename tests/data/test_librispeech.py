"""LibriSpeech-layout reader on a tiny fixture the test writes (flac + trans.txt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vxlib.data.librispeech import check_speaker_disjoint, is_librispeech, read_librispeech
from vxlib.data.pairs import DatasetError


def make_librispeech(root: Path, speakers: dict[str, int], chapter: str = "1001", seconds: float = 0.3, sr: int = 16000) -> Path:
    """``root/<spk>/<chapter>/<spk>-<chapter>-<k>.flac`` + transcripts; ``speakers`` maps id -> #utterances."""
    rng = np.random.default_rng(0)
    for spk, n in speakers.items():
        d = root / spk / chapter
        d.mkdir(parents=True)
        lines = []
        for k in range(n):
            utt = f"{spk}-{chapter}-{k:04d}"
            t = np.arange(int(seconds * sr)) / sr
            x = 0.3 * np.sin(2 * np.pi * (110 + 20 * k) * t) + 0.01 * rng.standard_normal(len(t))
            sf.write(d / f"{utt}.flac", x.astype(np.float32), sr)
            lines.append(f"{utt} SPEAKER {spk} SAYS LINE {k}")
        (d / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_reads_every_utterance_with_speaker_and_text(tmp_path):
    root = make_librispeech(tmp_path / "train-clean-360", {"19": 2, "84": 3})
    assert is_librispeech(root)
    utts = read_librispeech(root)
    assert [u.id for u in utts] == ["19-1001-0000", "19-1001-0001", "84-1001-0000", "84-1001-0001", "84-1001-0002"]
    assert {u.speaker for u in utts} == {"19", "84"}
    assert utts[3].text == "SPEAKER 84 SAYS LINE 1"
    assert utts[3].path == root / "84" / "1001" / "84-1001-0001.flac"


def test_flac_without_transcript_line_is_named(tmp_path):
    root = make_librispeech(tmp_path / "dev-clean", {"7": 2})
    trans = root / "7" / "1001" / "7-1001.trans.txt"
    trans.write_text(trans.read_text().splitlines()[0] + "\n")
    with pytest.raises(DatasetError, match=r"7-1001-0001\.flac: no line in 7-1001\.trans\.txt"):
        read_librispeech(root)


def test_transcript_line_without_flac_is_named(tmp_path):
    root = make_librispeech(tmp_path / "dev-clean", {"7": 2})
    (root / "7" / "1001" / "7-1001-0000.flac").unlink()
    with pytest.raises(DatasetError, match=r"7-1001-0000\.flac: listed in 7-1001\.trans\.txt but missing"):
        read_librispeech(root)


def test_missing_transcript_file_and_empty_set(tmp_path):
    root = make_librispeech(tmp_path / "s", {"7": 1})
    (root / "7" / "1001" / "7-1001.trans.txt").unlink()
    with pytest.raises(DatasetError, match="transcript missing for 1 .flac"):
        read_librispeech(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no utterances found"):
        read_librispeech(tmp_path / "empty")
    with pytest.raises(DatasetError, match="not found"):
        read_librispeech(tmp_path / "nope")


def test_dev_speakers_must_be_unseen(tmp_path):
    train = read_librispeech(make_librispeech(tmp_path / "train", {"19": 1, "84": 1}))
    dev = read_librispeech(make_librispeech(tmp_path / "dev", {"84": 1, "99": 1}, chapter="2002"))
    with pytest.raises(DatasetError, match=r"shares 1 speaker\(s\).*\['84'\]"):
        check_speaker_disjoint(train, dev)
    check_speaker_disjoint(train, [u for u in dev if u.speaker == "99"])
