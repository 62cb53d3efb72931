"""Notebook conventions (every notebook in notebooks/) and the papermill runner."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from vxlib import notebooks, run


def test_repository_notebooks_follow_conventions():
    assert notebooks.check() == []
    names = [p.stem for p in run.discover_notebooks()]
    assert names and names[0] == "00_quickstart"
    assert names == sorted(names), "numbered names fix the reading order"


def _write(dir: Path, name: str, cells: list) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(notebooks.KERNELSPEC)}
    nb.cells = cells
    for i, c in enumerate(nb.cells):
        c.id = f"cell-{i:02d}"
    p = dir / f"{name}.ipynb"
    nbformat.write(nb, p)
    return p


def _param_cell(src: str):
    c = nbformat.v4.new_code_cell(src)
    c.metadata["tags"] = ["parameters"]
    return c


def test_conventions_catch_violations(tmp_path):
    bad = nbformat.v4.new_code_cell("print(1)")
    bad.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    bad.execution_count = 1
    _write(tmp_path, "01_outputs", [_param_cell("x = 1"), bad])
    _write(tmp_path, "02_noparams", [nbformat.v4.new_code_cell("x = 1")])
    _write(tmp_path, "03_hidden", [_param_cell("steps = 10  # total, i.e. n=10")])
    problems = "\n".join(notebooks.check(tmp_path))
    assert "01_outputs.ipynb: cell 1 has stored outputs" in problems
    assert "02_noparams.ipynb: needs exactly one cell tagged 'parameters' (found 0)" in problems
    assert "03_hidden.ipynb: parameter line papermill cannot parse" in problems
    assert "01_outputs.ipynb: no paired py:percent script" in problems


def test_sync_roundtrip(tmp_path):
    (tmp_path / "07_demo.py").write_text('# %% [markdown]\n# # Demo\n\n# %% tags=["parameters"]\nn = 3\n\n# %%\nprint(n)\n')
    notebooks.sync(tmp_path)
    assert notebooks.check(tmp_path) == []
    nb = json.loads((tmp_path / "07_demo.ipynb").read_text())
    assert nb["cells"][1]["metadata"]["tags"] == ["parameters"]
    (tmp_path / "07_demo.py").write_text((tmp_path / "07_demo.py").read_text().replace("n = 3", "n = 4"))
    assert any("out of sync" in p for p in notebooks.check(tmp_path))


# ---------------------------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def nb_dir(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _write(d, "00_first", [_param_cell('run_dir = "."\nsteps = 1\nseed = 0'),
                            nbformat.v4.new_code_cell(
                                "from vxlib.run import NotebookRecord\n"
                                "NotebookRecord(run_dir, '00_first').metric('steps_times_two', steps * 2)")])
    _write(d, "01_second", [_param_cell('run_dir = "."\nlr = 0.1\nseed = 0'),
                             nbformat.v4.new_code_cell("x = 1\n"),
                             nbformat.v4.new_code_cell("raise ValueError(f'lr was {lr}')")])
    _write(d, "02_third", [_param_cell('run_dir = "."'), nbformat.v4.new_code_cell("pass")])
    return d


def test_resolve_parameters(nb_dir, tmp_path):
    nbs = run.select_notebooks([], nb_dir)
    prof = run.Profile("t", all={"seed": 7, "unused_by_all": 1},
                       notebooks={"01_second": {"lr": "{run_dir}/x"}})
    params = run.resolve_parameters(nbs, prof, [("steps", 5), ("01.seed", 9)], tmp_path / "r")
    assert params["00_first"] == {"seed": 7, "steps": 5, "run_dir": str(tmp_path / "r")}
    assert params["01_second"] == {"seed": 9, "lr": f"{tmp_path / 'r'}/x", "run_dir": str(tmp_path / "r")}
    with pytest.raises(SystemExit, match="override 'stepz' matches no parameter"):
        run.resolve_parameters(nbs, prof, [("stepz", 5)], tmp_path / "r")
    with pytest.raises(SystemExit, match="notebook 02_third has no parameter 'lr'"):
        run.resolve_parameters(nbs, run.Profile("t", notebooks={"02_third": {"lr": 1}}), [], tmp_path / "r")


def test_failing_cell_stops_the_batch(nb_dir, tmp_path, capsys):
    nbs = run.select_notebooks([], nb_dir)
    results = run.run_notebooks(nbs, run.Profile("t"), tmp_path / "run", [("lr", 0.5), ("steps", 21)])
    assert [r.status for r in results] == ["ok", "failed", "skipped"]
    assert results[0].metrics == {"steps_times_two": 42}
    assert results[1].error == (
        "notebook 01_second failed in cell [4] (`raise ValueError(f'lr was {lr}')`): ValueError: lr was 0.5")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [n["status"] for n in summary["notebooks"]] == ["ok", "failed", "skipped"]
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| steps_times_two | 42 |" in md and "lr was 0.5" in md
    assert "<td>steps_times_two</td>" in (tmp_path / "run" / "report.html").read_text()
    assert (tmp_path / "run" / "notebooks" / "01_second.ipynb").exists(), "the failed notebook is kept for inspection"


def test_cli_selection_errors():
    with pytest.raises(SystemExit, match="no notebook matches '99'"):
        run.select_notebooks(["99"])
    with pytest.raises(SystemExit, match="profile 'nope' not found"):
        run.Profile.load("nope")


def test_quickstart_runs_through_the_runner(tmp_path):
    """The main-job path end to end: papermill, kernel, plotting, player, offline wandb, summary."""
    rc = run.main(["00", "--run", "quick", "--runs-dir", str(tmp_path), "-p", "tracking", "wandb"])
    assert rc == 0
    rd = tmp_path / "quick"
    metrics = json.loads((rd / "metrics" / "00_quickstart.json").read_text())["metrics"]
    assert metrics["tracking_backend"] == "wandb" and metrics["duration_s"] == pytest.approx(2.0)
    assert -20 < metrics["rms_db"] < -10
    assert list((rd / "tracking" / "00_quickstart" / "wandb").glob("offline-run-*"))
    assert (rd / "figures" / "00_quickstart__waveform_spectrogram.png").stat().st_size > 10_000
    executed = json.loads((rd / "notebooks" / "00_quickstart.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
