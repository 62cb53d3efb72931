"""Smoke test of the streaming-TTS benchmark (figures are printed, never asserted)."""

from __future__ import annotations

import pytest

from vxlib.bench import tts as bench


@pytest.mark.slow
def test_tts_benchmark_prints_every_column(capsys):
    assert bench.main(["--threads", "1", "--first-chunk", "4", "--repeats", "1", "--no-llvc",
                       "--precision", "int8", "--decoder", "fp32", "int8"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[1:3] for r in rows] == [["int8", "fp32"], ["int8", "int8"]]
    assert all(float(r[6]) > 0 for r in rows)  # first audio ms
    assert rows[0][-1] == "-" and float(rows[1][-1]) > 20  # int8 decoder vs fp32 decoder SNR
    assert "load average" in out
