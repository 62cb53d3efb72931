"""``python -m vxlib.eval``: score a folder of converted speech; write JSON and a Markdown table.

The reference's ``eval.py --gt_dir G --converted_dir C [--eval_gt]`` (Resemblyzer + WVMOS in a
second environment) becomes, in the main environment::

    python -m vxlib.eval --converted C --ground_truth G --eval_gt --out results.json

Metrics, texts and pairing rules: see :mod:`vxlib.eval.metrics` and docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from vxlib import pitch
from vxlib.audio import AudioError
from vxlib.eval.metrics import DEFAULT_METRICS, METRICS, evaluate_system, markdown_table

_PAIRED = ("mcd", "f0")  # trivially perfect when the ground truth is scored against itself


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vxlib.eval", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--converted", required=True, type=Path, help="folder of converted audio (searched recursively)")
    p.add_argument("--ground_truth", "--ground-truth", type=Path,
                   help="target-speaker audio: Resemblyzer pieces, target voice, and pairs for mcd/f0")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), choices=METRICS, metavar="METRIC",
                   help=f"any of {', '.join(METRICS)}")
    p.add_argument("--name", help="system name in the table (default: the converted folder's name)")
    p.add_argument("--texts", type=Path, help="reference texts for wer: JSON {utterance: text} or TSV")
    p.add_argument("--source", type=Path, help="source audio to transcribe as the wer reference (if no --texts)")
    p.add_argument("--target", type=Path, help="target voice files for speaker_sim (default: --ground_truth)")
    p.add_argument("--concat_ground_truth", "--concat-ground-truth", action="store_true",
                   help="join ground-truth files before cutting 10 s pieces (needed when all are <= 10 s)")
    p.add_argument("--eval_gt", "--eval-gt", action="store_true",
                   help="also score the ground truth itself (the table's 'ground truth' row)")
    p.add_argument("--asr", choices=("auto", "whisper", "pocketsphinx"), default="auto", help="ASR engine for wer")
    p.add_argument("--whisper_model", "--whisper-model", type=Path,
                   help="local faster-whisper model dir (default: packaged tiny.en)")
    p.add_argument("--f0_method", "--f0-method", choices=pitch.METHODS, default="harvest", help="see vxlib.pitch")
    p.add_argument("--wvmos_checkpoint", "--wvmos-checkpoint", type=Path, help="WV-MOS .ckpt (evaluation env)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (Resemblyzer, WVMOS)")
    p.add_argument("--out", type=Path, help="write results JSON here and the Markdown table beside it (.md)")
    return p


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN: "not defined for this system"
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if set(args.metrics) & {"resemblyzer", "speaker_sim", "wvmos"}:  # the torch models; others need no torch
        import torch

        torch.set_num_threads(args.threads)
    asr = None
    if "wer" in args.metrics:
        from vxlib.asr import load_transcriber

        asr = load_transcriber(args.asr, args.whisper_model)
    common = dict(texts=args.texts, source=args.source, target=args.target, asr=asr,
                  concat_ground_truth=args.concat_ground_truth, f0_method=args.f0_method,
                  wvmos_checkpoint=args.wvmos_checkpoint)
    try:
        results = []
        if args.eval_gt:
            if args.ground_truth is None:
                raise ValueError("--eval_gt needs --ground_truth")
            gt_metrics = [m for m in args.metrics if m not in _PAIRED]
            results.append(evaluate_system(args.ground_truth, args.ground_truth, name="ground truth",
                                           metrics=gt_metrics, **common))
        results.append(evaluate_system(args.converted, args.ground_truth, name=args.name, metrics=args.metrics,
                                       **common))
    except (AudioError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    table = markdown_table(results)
    print(table)
    if args.out is not None:
        payload = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                   "systems": [r.to_dict() for r in results]}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(_jsonable(payload), indent=2) + "\n", encoding="utf-8")
        args.out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
