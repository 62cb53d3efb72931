"""Notebook conventions: each numbered notebook is a pair ``NN_name.ipynb`` + ``NN_name.py``
(jupytext py:percent), committed without outputs, with a cell tagged ``parameters``.

    python -m vxlib.notebooks sync    # regenerate every .ipynb from its .py (outputs stripped)
    python -m vxlib.notebooks check   # report violations (exit 1), used by the test suite

The ``.py`` file is the reviewed source; ``sync`` writes the ``.ipynb`` that Jupyter and papermill open.
Editing the ``.ipynb`` in JupyterLab with jupytext installed updates the ``.py`` on save.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["check", "sync", "NOTEBOOKS_DIR"]

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (vxlib)", "language": "python"}


def _from_script(py: Path):
    import jupytext

    nb = jupytext.read(py, fmt="py:percent")
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"},
                   "jupytext": {"formats": "ipynb,py:percent"}}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        cell.id = f"cell-{i:02d}"  # stable ids keep diffs of the .ipynb quiet
    return nb


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c["cell_type"], c["source"] if isinstance(c["source"], str) else "".join(c["source"]),
             tuple(c.get("metadata", {}).get("tags", []))) for c in nb["cells"]]


def _unparsed_parameters(cell) -> list[str]:
    """Assignments in the parameters cell that papermill cannot see (it then cannot override them;
    e.g. a comment containing '=' hides the line)."""
    import re

    import nbformat
    from papermill.translators import PythonTranslator

    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    seen = {p.name for p in PythonTranslator.inspect(nbformat.v4.new_code_cell(source))}
    problems = []
    for line in source.splitlines():
        m = re.match(r"^(\w+)\s*(?::[^=]*)?=", line)
        if m and m.group(1) not in seen:
            problems.append(f"parameter line papermill cannot parse (no '=' in comments): {line.strip()!r}")
    return problems


def sync(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    import nbformat

    written = []
    for py in sorted(notebooks_dir.glob("[0-9][0-9]_*.py")):
        out = py.with_suffix(".ipynb")
        nbformat.write(_from_script(py), out)
        written.append(out)
    return written


def check(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[str]:
    """Every violation of the conventions, as ``file: problem`` lines (empty when all is well)."""
    problems = []
    ipynbs = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    scripts = sorted(notebooks_dir.glob("[0-9][0-9]_*.py"))
    if not ipynbs:
        return [f"{notebooks_dir}: no numbered notebooks"]
    for py in scripts:
        if not py.with_suffix(".ipynb").exists():
            problems.append(f"{py.name}: no paired .ipynb (run python -m vxlib.notebooks sync)")
    for nb_path in ipynbs:
        nb = json.loads(nb_path.read_text())
        name = nb_path.name
        cells = nb.get("cells", [])
        params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        if len(params) != 1:
            problems.append(f"{name}: needs exactly one cell tagged 'parameters' (found {len(params)})")
        elif params[0]["cell_type"] != "code":
            problems.append(f"{name}: the 'parameters' cell must be a code cell")
        else:
            problems += [f"{name}: {p}" for p in _unparsed_parameters(params[0])]
        for i, c in enumerate(cells):
            if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None):
                problems.append(f"{name}: cell {i} has stored outputs (commit notebooks without outputs)")
        if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
            problems.append(f"{name}: kernelspec must be python3 (papermill needs one)")
        py = nb_path.with_suffix(".py")
        if not py.exists():
            problems.append(f"{name}: no paired py:percent script {py.name}")
        elif _cells(_from_script(py)) != _cells(nb):
            problems.append(f"{name}: out of sync with {py.name} (run python -m vxlib.notebooks sync)")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.notebooks")
    ap.add_argument("action", choices=["sync", "check"])
    ap.add_argument("--dir", default=str(NOTEBOOKS_DIR))
    a = ap.parse_args(argv)
    d = Path(a.dir)
    if a.action == "sync":
        for p in sync(d):
            print(f"wrote {p}")
        return 0
    problems = check(d)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
