"""Plots and report.md from runs.csv and fits.json: what a researcher looks at and shares.

ladder report RUNS.csv FITS.json --out DIR [--curves CURVES.csv] [--meta META.json]
              [--config STUDY.yaml] [--extrapolate-to params=1e9|tokens=2e10|flops=1e21]
"""

from __future__ import annotations

import argparse
import sys

from ladder.report.build import make_report
from ladder.report.inputs import load


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ladder report", description=__doc__.splitlines()[0])
    ap.add_argument("runs", metavar="RUNS.csv")
    ap.add_argument("fits", metavar="FITS.json")
    ap.add_argument("--out", required=True, help="folder for the plots and report.md")
    ap.add_argument("--curves", help="curves.csv (learning curves); optional")
    ap.add_argument("--meta", help="tokens/meta.json (source entropy); optional")
    ap.add_argument("--config", help="the resolved study.yaml; optional")
    ap.add_argument(
        "--extrapolate-to",
        metavar="Q=V",
        help="params=1e9, tokens=2e10 or flops=1e21 (default: config report.extrapolate_to)",
    )
    args = ap.parse_args(argv)
    try:
        study = load(args.runs, args.fits, args.curves, args.meta, args.config, args.extrapolate_to)
    except (OSError, ValueError, KeyError) as e:
        print(f"ladder report: error: {e}", file=sys.stderr)
        return 2
    files = make_report(study, args.out)
    print(f"ladder report: wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
