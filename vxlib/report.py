"""The run report: ``<run_dir>/report.md`` and ``report.html`` from what the notebooks recorded.

Sources (all written during the run): ``summary.json`` (runner: status, time, parameters per notebook) and
``metrics/<notebook>.json`` (each notebook's :class:`vxlib.run.NotebookRecord`: metrics, tables, figures).
The report never re-computes anything, so it can be rebuilt at any time::

    python -m vxlib.report experiments/runs/<run> [--compare experiments/runs/<other run>]
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_report", "markdown_table", "compare_runs", "is_timing_metric"]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A list of dicts as a Markdown table (columns in first-seen order)."""
    if not rows:
        return "_(empty)_"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _environment() -> list[dict[str, Any]]:
    import os

    rows = [{"item": "python", "value": sys.version.split()[0]}, {"item": "platform", "value": platform.platform()},
            {"item": "cpu cores", "value": os.cpu_count()}]
    try:
        import torch

        rows += [{"item": "torch", "value": torch.__version__}, {"item": "torch threads", "value": torch.get_num_threads()},
                 {"item": "cuda", "value": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}]
    except ImportError:
        pass
    return rows


def build_report(run_dir: str | Path) -> Path:
    """Write report.md and report.html into ``run_dir``; returns the Markdown path."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    out = [f"# vxlib run `{run_dir.name}`", "",
           f"Profile **{summary['profile']}**, vxlib {summary['vxlib_version']}, "
           f"total wall time **{summary['seconds']:.1f} s** ({summary['seconds'] / 60:.1f} min).", "",
           "## Notebooks", "",
           markdown_table([{"notebook": n["notebook"], "status": n["status"], "time (s)": round(n["seconds"], 1),
                            "executed copy": f"[{n['output']}]({n['output']})" if n["output"] else ""}
                           for n in summary["notebooks"]])]
    failures = [n for n in summary["notebooks"] if n.get("error")]
    if failures:
        out += ["", "### Failures", ""] + [f"- **{n['notebook']}**: {n['error']}" for n in failures]
    for n in summary["notebooks"]:
        rec_path = run_dir / "metrics" / f"{n['notebook']}.json"
        rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
        out += ["", f"## {n['notebook']}", "", f"Status {n['status']}, {n['seconds']:.1f} s.", ""]
        if n["parameters"]:
            out += ["<details><summary>parameters</summary>", "",
                    markdown_table([{"parameter": k, "value": v} for k, v in n["parameters"].items()]), "", "</details>", ""]
        if rec.get("metrics"):
            out += ["**Metrics**", "", markdown_table([{"metric": k, "value": v} for k, v in rec["metrics"].items()]), ""]
        for name, rows in (rec.get("tables") or {}).items():
            out += [f"**{name}**", "", markdown_table(rows if isinstance(rows, list) else [rows]), ""]
        for name, rel in (rec.get("figures") or {}).items():
            out += [f"![{name}]({rel})", ""]
    wandb_runs = sorted(run_dir.glob("**/wandb/offline-run-*"))
    out += ["", "## Tracking", ""]
    if wandb_runs:
        out += ["Offline wandb runs (upload with `wandb sync <folder>`):", ""]
        out += [f"- `{p.relative_to(run_dir)}`" for p in wandb_runs]
    else:
        out += ["No wandb runs (tracking backend `none`); local records are in each `tracking/*/metrics.jsonl`."]
    out += ["", "## Environment", "", markdown_table(_environment()), ""]
    md = "\n".join(out)
    md_path = run_dir / "report.md"
    md_path.write_text(md)
    (run_dir / "report.html").write_text(_html(md, f"vxlib run {run_dir.name}"))
    return md_path


def _html(md: str, title: str) -> str:
    import mistune  # ships with nbconvert

    body = mistune.create_markdown(plugins=["table"], escape=False)(md)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
             "img{max-width:100%}code{background:#f4f4f4;padding:0 3px}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head><body>{body}</body></html>\n"




# Metrics that measure the machine, not the model: excluded when two runs are compared.
TIMING_WORDS = ("seconds", "minutes", "_s_", "time", "_ms", "latency", "rtf", "speed", "per_s", "per_sec",
                "steps_s", "throughput", "tokens_s", "load", "ready_over")


def is_timing_metric(name: str) -> bool:
    n = f"_{name.lower()}_"
    return any(w in n for w in TIMING_WORDS) or n.endswith("_s_")


def compare_runs(run_a: str | Path, run_b: str | Path, rtol: float = 0.0, atol: float = 1e-6) -> list[str]:
    """Differences between the recorded metrics of two runs (timing figures excepted), as lines
    ``notebook.metric: a != b``. Empty when the runs agree: the determinism check of a profile."""
    diffs = []
    a_dir, b_dir = Path(run_a) / "metrics", Path(run_b) / "metrics"
    names = sorted({p.name for p in a_dir.glob("*.json")} | {p.name for p in b_dir.glob("*.json")})
    for name in names:
        pa, pb = a_dir / name, b_dir / name
        if not (pa.exists() and pb.exists()):
            diffs.append(f"{name}: recorded in only one run")
            continue
        ma, mb = json.loads(pa.read_text())["metrics"], json.loads(pb.read_text())["metrics"]
        for key in sorted(set(ma) | set(mb)):
            if is_timing_metric(key):
                continue
            # paths inside the run directory differ by the run's name only
            va, vb = (str(v).replace(str(Path(d).resolve()), "{run_dir}") if isinstance(v, str) else v
                      for v, d in ((ma.get(key), run_a), (mb.get(key), run_b)))
            if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool):
                if abs(va - vb) > atol + rtol * abs(vb):
                    diffs.append(f"{name[:-5]}.{key}: {va!r} != {vb!r}")
            elif va != vb:
                diffs.append(f"{name[:-5]}.{key}: {va!r} != {vb!r}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m vxlib.report", description="(Re)build a run's report; optionally "
                                 "compare its metrics with another run's (timing figures excepted).")
    ap.add_argument("run_dir")
    ap.add_argument("--compare", metavar="OTHER_RUN", help="exit 1 and list differences if the metrics differ")
    a = ap.parse_args(argv)
    print(build_report(a.run_dir))
    if a.compare:
        diffs = compare_runs(a.run_dir, a.compare)
        print("\n".join(diffs) if diffs else f"metrics identical to {a.compare} (timing figures excepted)")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
