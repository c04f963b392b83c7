"""Plots and report.md from runs.csv and fits.json: what a researcher looks at and shares.

ladder report RUNS.csv FITS.json --out DIR [--curves CURVES.csv] [--meta META.json]
              [--config STUDY.yaml] [--extrapolate-to params=1e9|tokens=2e10|flops=1e21]
              [--tracking JSON|@file]

With tracking on (--tracking, else $LADDER_TRACKING; ladder.tracking), the fitted laws'
headline numbers and report.md also go to TensorBoard and W&B, beside the rungs' curves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ladder.artifacts import REPORT_MD
from ladder.errors import failed
from ladder.report.build import make_report
from ladder.report.inputs import load
from ladder.tracking import Tracking, log_study


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ladder report", description=__doc__.splitlines()[0])
    ap.add_argument("runs", metavar="RUNS.csv")
    ap.add_argument("fits", metavar="FITS.json")
    ap.add_argument("--out", required=True, help="folder for the plots and report.md")
    ap.add_argument("--curves", help="curves.csv (learning curves); optional")
    ap.add_argument("--meta", help="tokens/meta.json (source entropy); optional")
    ap.add_argument("--tasks", help="tasks.csv (every checkpoint's task scores); optional")
    ap.add_argument("--config", help="the resolved study.yaml; optional")
    ap.add_argument(
        "--extrapolate-to",
        metavar="Q=V",
        help="params=1e9, tokens=2e10 or flops=1e21 (default: config report.extrapolate_to)",
    )
    ap.add_argument(
        "--tracking",
        help="TensorBoard / W&B settings, JSON or @file (default: $LADDER_TRACKING); the study "
        "folder is that of RUNS.csv",
    )
    args = ap.parse_args(argv)
    try:
        tracking = Tracking.from_arg(args.tracking)
        study = load(
            args.runs,
            args.fits,
            args.curves,
            args.meta,
            args.config,
            args.extrapolate_to,
            args.tasks,
        )
    except (OSError, ValueError, KeyError) as e:
        return failed("ladder report", e)
    files = make_report(study, args.out)
    print(f"ladder report: wrote {len(files)} files to {args.out}")
    if tracking.tools:
        with open(args.fits) as f:
            fits = json.load(f)
        with open(os.path.join(args.out, REPORT_MD)) as f:
            report_md = f.read()
        study_dir = os.path.dirname(os.path.abspath(args.runs))
        log_study(tracking, study_dir, fits, report_md, study.config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
