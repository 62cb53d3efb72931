"""Notebook runner: execute the numbered notebooks through papermill with a profile.

    python -m vxlib.run                         # all numbered notebooks, tiny profile
    python -m vxlib.run 00 02 --run mytest      # a selection, into experiments/runs/mytest
    python -m vxlib.run --profile paper -p 02_llvc_training.steps 500000 -f overrides.yaml
    python -m vxlib.run --list                  # notebooks and the parameters each declares

A profile (``experiments/profiles/<name>.yaml``) is data::

    description: what this profile is for
    all:            # given to every notebook that declares the parameter
      seed: 0
    notebooks:
      02_llvc_training:
        dataset_dir: "{run_dir}/data/pairs"     # {run_dir}: the run's directory; {repo}: the repository

Overrides: ``-p name value`` (every notebook declaring ``name``) or ``-p notebook.name value``;
``-f file.yaml`` in the profile's own shape. Values are read as YAML scalars (``100`` is an int).
An override that no selected notebook declares is an error, not a silent no-op.

Each notebook receives ``run_dir`` and records what it measured with :class:`NotebookRecord`;
the runner writes the executed notebooks to ``<run_dir>/notebooks/``, ``summary.json`` and the
report (``report.md`` / ``report.html``: status, time, parameters, metrics, tables and figures per notebook). A failing cell stops the batch
with the notebook, the cell number and the error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["NotebookRecord", "Profile", "run_notebooks", "main", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PROFILES_DIR = REPO_ROOT / "experiments" / "profiles"
RUNS_DIR = REPO_ROOT / "experiments" / "runs"


# ---------------------------------------------------------------------------------------------
# What a notebook records (used inside notebooks)
# ---------------------------------------------------------------------------------------------
class NotebookRecord:
    """A notebook's results for the batch summary: scalar metrics, small tables, figure files.

    Stored as ``<run_dir>/metrics/<notebook>.json`` and rewritten on every call, so a notebook
    that fails half-way still leaves what it had measured.
    """

    def __init__(self, run_dir: str | os.PathLike, notebook: str):
        self.run_dir = Path(run_dir)
        self.notebook = notebook
        self.path = self.run_dir / "metrics" / f"{notebook}.json"
        self.data: dict[str, Any] = {"notebook": notebook, "metrics": {}, "tables": {}, "figures": {}}
        if self.path.exists():  # re-running a notebook interactively updates, not duplicates
            self.data.update(json.loads(self.path.read_text()))

    def metric(self, name: str, value: float | int | str) -> None:
        if hasattr(value, "item"):
            value = value.item()
        self.data["metrics"][name] = value
        self._save()

    def metrics(self, values: dict[str, Any]) -> None:
        for k, v in values.items():
            self.metric(k, v)

    def table(self, name: str, rows: list[dict[str, Any]] | Any) -> None:
        """Rows as a list of dicts (or a pandas DataFrame)."""
        if hasattr(rows, "to_dict"):
            rows = rows.to_dict(orient="records")
        self.data["tables"][name] = json.loads(json.dumps(rows, default=_json_default))
        self._save()

    def figure(self, name: str, fig: Any) -> Path:
        path = self.run_dir / "figures" / f"{self.notebook}__{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        self.data["figures"][name] = str(path.relative_to(self.run_dir))
        self._save()
        return path

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=_json_default))
        os.replace(tmp, self.path)


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


# ---------------------------------------------------------------------------------------------
# Profiles and parameters
# ---------------------------------------------------------------------------------------------
@dataclass
class Profile:
    name: str
    description: str = ""
    all: dict[str, Any] = field(default_factory=dict)
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    required_files: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, name_or_path: str) -> "Profile":
        p = Path(name_or_path)
        if not p.suffix:
            p = PROFILES_DIR / f"{name_or_path}.yaml"
        if not p.exists():
            known = sorted(x.stem for x in PROFILES_DIR.glob("*.yaml"))
            raise SystemExit(f"profile {name_or_path!r} not found ({p}); known profiles: {', '.join(known)}")
        d = yaml.safe_load(p.read_text()) or {}
        unknown = set(d) - {"description", "all", "notebooks", "required_files"}
        if unknown:
            raise SystemExit(f"{p}: unknown profile keys {sorted(unknown)}")
        return cls(name=p.stem, description=d.get("description", ""), all=d.get("all") or {},
                   notebooks=d.get("notebooks") or {}, required_files=d.get("required_files") or [])


def discover_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Numbered notebooks (``NN_name.ipynb``) in reading order."""
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(names: list[str], notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    available = discover_notebooks(notebooks_dir)
    if not names:
        return available
    chosen = []
    for n in names:
        stem = Path(n).stem
        match = [p for p in available if p.stem == stem or p.stem.split("_")[0] == stem]
        if not match:
            raise SystemExit(f"no notebook matches {n!r}; available: {', '.join(p.stem for p in available)}")
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen)


def declared_parameters(nb_path: Path) -> dict[str, Any]:
    import papermill

    return {k: v.get("default") for k, v in papermill.inspect_notebook(str(nb_path)).items()}


def _scalar(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def resolve_parameters(notebooks: list[Path], profile: Profile, overrides: list[tuple[str, Any]],
                       run_dir: Path) -> dict[str, dict[str, Any]]:
    """Parameters for each notebook: profile ``all`` → profile ``notebooks`` → overrides.
    ``{run_dir}`` and ``{repo}`` in string values are replaced by the run directory and the repository root."""
    declared = {nb.stem: declared_parameters(nb) for nb in notebooks}
    used = [False] * len(overrides)
    out: dict[str, dict[str, Any]] = {}
    for nb in notebooks:
        names = declared[nb.stem]
        params: dict[str, Any] = {}
        for k, v in profile.all.items():
            if k in names:
                params[k] = v
        for k, v in (profile.notebooks.get(nb.stem) or {}).items():
            if k not in names:
                raise SystemExit(f"profile {profile.name!r}: notebook {nb.stem} has no parameter {k!r} "
                                 f"(it declares: {', '.join(names)})")
            params[k] = v
        for i, (key, v) in enumerate(overrides):
            target, _, name = key.rpartition(".")
            if target and target != nb.stem and target != nb.stem.split("_")[0]:
                continue
            if name in names:
                params[name] = v
                used[i] = True
        if "run_dir" in names:
            params["run_dir"] = str(run_dir)
        out[nb.stem] = {k: _expand(v, run_dir) for k, v in params.items()}
    for (key, _), ok in zip(overrides, used):
        if not ok:
            raise SystemExit(f"override {key!r} matches no parameter of the selected notebooks")
    return out


def _expand(value: Any, run_dir: Path) -> Any:
    """``{run_dir}`` → the run directory, ``{repo}`` → the repository root (notebooks run with their
    own folder as working directory, so profile paths are made absolute)."""
    if isinstance(value, str):
        return value.replace("{run_dir}", str(run_dir)).replace("{repo}", str(REPO_ROOT))
    if isinstance(value, list):
        return [_expand(v, run_dir) for v in value]
    return value


def check_required_files(profile: Profile) -> None:
    missing = [f for f in profile.required_files if not (REPO_ROOT / f).exists()]
    if missing:
        lines = "\n  ".join(missing)
        raise SystemExit(f"profile {profile.name!r} needs files that are not present:\n  {lines}\n"
                         f"See the README section 'The paper profile' for where to get them.")


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
@dataclass
class NotebookResult:
    notebook: str
    status: str  # ok | failed | skipped
    seconds: float
    output: str
    parameters: dict[str, Any]
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def _failure_message(nb: str, err: Exception) -> str:
    cell = getattr(err, "exec_count", None)
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    source = (getattr(err, "source", "") or "").strip().splitlines()
    if source:  # the cell's first line: what a reader looks for in the executed copy
        where += f" (`{source[0][:80]}`)"
    return f"notebook {nb} failed in {where}: {ename}: {evalue}"


def run_notebooks(notebooks: list[Path], profile: Profile, run_dir: Path,
                  overrides: list[tuple[str, Any]] = (), kernel: str = "python3",
                  log_output: bool = False) -> list[NotebookResult]:
    import papermill

    run_dir = run_dir.resolve()
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    params = resolve_parameters(notebooks, profile, list(overrides), run_dir)
    results: list[NotebookResult] = []
    t_batch = time.perf_counter()
    for nb in notebooks:
        out = run_dir / "notebooks" / nb.name
        print(f"[vxlib.run] {nb.stem}: running ({profile.name} profile)", flush=True)
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(str(nb), str(out), parameters=params[nb.stem], kernel_name=kernel,
                                       cwd=str(nb.parent), progress_bar=False, log_output=log_output)
            status, error = "ok", None
        except Exception as err:  # PapermillExecutionError carries the cell and the error
            status, error = "failed", _failure_message(nb.stem, err)
        dt = time.perf_counter() - t0
        rec = run_dir / "metrics" / f"{nb.stem}.json"
        metrics = json.loads(rec.read_text()).get("metrics", {}) if rec.exists() else {}
        results.append(NotebookResult(nb.stem, status, dt, str(out.relative_to(run_dir)), params[nb.stem], error, metrics))
        print(f"[vxlib.run] {nb.stem}: {status} in {dt:.1f} s", flush=True)
        if error:
            print(f"[vxlib.run] {error}", file=sys.stderr, flush=True)
            break
    for nb in notebooks[len(results):]:
        results.append(NotebookResult(nb.stem, "skipped", 0.0, "", params[nb.stem], "an earlier notebook failed"))
    write_summary(run_dir, profile, results, time.perf_counter() - t_batch)
    return results


def write_summary(run_dir: Path, profile: Profile, results: list[NotebookResult], seconds: float) -> None:
    """``summary.json`` (machine-readable) and the human report (``report.md`` / ``report.html``)."""
    from vxlib import __version__
    from vxlib.report import build_report

    summary = {
        "vxlib_version": __version__,
        "profile": profile.name,
        "run_dir": str(run_dir),
        "seconds": seconds,
        "notebooks": [r.__dict__ for r in results],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    build_report(run_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebook names or numbers (default: all numbered notebooks)")
    ap.add_argument("--profile", default="tiny", help="profile name in experiments/profiles or a YAML path")
    ap.add_argument("--run", default=None, help="run name (default: <profile>-<timestamp>)")
    ap.add_argument("--runs-dir", default=str(RUNS_DIR))
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override a parameter: NAME or NOTEBOOK.NAME, value as a YAML scalar")
    ap.add_argument("-f", "--params-file", action="append", default=[], help="YAML overrides in the profile's shape")
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--log-output", action="store_true", help="stream cell output to the console")
    ap.add_argument("--list", action="store_true", help="list notebooks and their declared parameters")
    a = ap.parse_args(argv)

    notebooks = select_notebooks(a.notebooks)
    if a.list:
        for nb in notebooks:
            print(f"{nb.stem}:")
            for k, v in declared_parameters(nb).items():
                print(f"    {k} = {v}")
        return 0
    profile = Profile.load(a.profile)
    check_required_files(profile)
    overrides: list[tuple[str, Any]] = []
    for f in a.params_file:
        d = yaml.safe_load(Path(f).read_text()) or {}
        overrides += [(k, v) for k, v in (d.get("all") or {}).items()]
        for nb, ps in (d.get("notebooks") or {}).items():
            overrides += [(f"{nb}.{k}", v) for k, v in ps.items()]
    overrides += [(k, _scalar(v)) for k, v in a.param]
    run_name = a.run or f"{profile.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(a.runs_dir) / run_name
    t0 = time.perf_counter()
    results = run_notebooks(notebooks, profile, run_dir, overrides, kernel=a.kernel, log_output=a.log_output)
    ok = all(r.status == "ok" for r in results)
    print(f"[vxlib.run] {'done' if ok else 'FAILED'}: {sum(r.status == 'ok' for r in results)}/{len(results)} "
          f"notebooks ok in {time.perf_counter() - t0:.1f} s; report: {run_dir / 'report.md'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
