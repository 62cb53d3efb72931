"""The shipped profiles: every override names a real parameter; the smoke profile runs all notebooks
end to end (so a broken notebook fails CI); the same seed gives the same metrics (slow)."""

from __future__ import annotations

import json

import pytest

from vxlib import report, run


@pytest.mark.parametrize("name", ["tiny", "smoke", "paper"])
def test_profile_parameters_exist(name, tmp_path):
    profile = run.Profile.load(name)
    params = run.resolve_parameters(run.discover_notebooks(), profile, [], tmp_path)
    assert set(params) == {p.stem for p in run.discover_notebooks()}
    for nb, ps in params.items():
        assert all("{run_dir}" not in str(v) and "{repo}" not in str(v) for v in ps.values()), nb


def test_paper_profile_lists_missing_files_early():
    profile = run.Profile.load("paper")
    assert profile.required_files, "the paper profile names the official files it needs"
    with pytest.raises(SystemExit) as err:
        run.check_required_files(profile)
    assert "G_500000.pth" in str(err.value) and "README" in str(err.value)


def _run_smoke(runs_dir, name):
    rc = run.main(["--profile", "smoke", "--run", name, "--runs-dir", str(runs_dir)])
    summary = json.loads((runs_dir / name / "summary.json").read_text())
    failed = [n["error"] for n in summary["notebooks"] if n["status"] != "ok"]
    assert rc == 0 and not failed, failed
    return runs_dir / name


def test_smoke_profile_runs_every_notebook(tmp_path):
    rd = _run_smoke(tmp_path, "smoke")
    md = (rd / "report.md").read_text()
    for nb in run.discover_notebooks():
        assert f"## {nb.stem}" in md
        assert (rd / "notebooks" / nb.name).exists()
    assert (rd / "report.html").exists()


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path):
    a = _run_smoke(tmp_path, "a")
    b = _run_smoke(tmp_path, "b")
    assert report.compare_runs(a, b) == []
