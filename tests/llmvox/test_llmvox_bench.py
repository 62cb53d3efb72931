"""Smoke test of the LLMVoX speed benchmark (the figures themselves are printed, never asserted)."""

from __future__ import annotations

import pytest

from vxlib.bench import llmvox as bench


@pytest.mark.slow
def test_benchmark_prints_every_figure(capsys):
    assert bench.main(["--threads", "1", "--tokens", "4", "--repeats", "1", "--agree-tokens", "8"]) == 0
    out = capsys.readouterr().out
    for variant in ("naive", "fp32", "int8", "spec"):
        assert any(line.split()[1:2] == [variant] for line in out.splitlines() if line.strip()[:1].isdigit())
    assert "tok/s@4" in out and "TTFT ms" in out and "load average" in out
    assert "int8 vs fp32 greedy, prototype head: 100.0% identical" in out
    assert "spec vs fp32 greedy, prototype head: 100.0% identical, draft acceptance 1.000" in out
    assert "spec vs fp32 greedy, random-init head: 100.0% identical" in out
