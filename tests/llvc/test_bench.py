"""The benchmark dispatcher and a tiny LLVC benchmark run (figures are printed, never asserted)."""

from __future__ import annotations

import pytest

from vxlib.bench.__main__ import available, main


def test_dispatcher_lists_and_rejects(capsys):
    assert "llvc" in available()
    assert main(["nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_llvc_benchmark_prints_its_table(capsys, golden_input, tmp_path):
    import soundfile as sf
    wav = tmp_path / "speech.wav"
    sf.write(wav, golden_input, 16000)
    assert main(["llvc", "--input", str(wav), "--seconds", "0.5", "--threads", "1", "--chunk-factors", "2",
                 "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "proc/audio" in out and "stream/off" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("1 ")]
    assert len(rows) == 1 and rows[0][:3] == ["1", "2", "exact"]
    proc_per_audio, offline, ratio = float(rows[0][3]), float(rows[0][8]), float(rows[0][9])
    assert proc_per_audio > 0 and offline > 0 and ratio == pytest.approx(proc_per_audio / offline, abs=0.01)
