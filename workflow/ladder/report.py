"""Plots and report.md from runs.csv and fits.json: what a researcher looks at and shares.

    ladder report RUNS.csv FITS.json --out DIR [--curves CURVES.csv] [--meta META.json]
                  [--config STUDY.yaml] [--extrapolate-to params=1e9|tokens=2e10|flops=1e21]

Every plot family has a fixed file name (PLOTS), written as PNG and SVG. A plot the data
cannot support is still written, as a figure that says what is missing, so the Snakemake rule
can declare fixed outputs and a small study still gets every file. Fitted curves and their 95%
bands come from `ladder.fit.predict` on fits.json's parameters and bootstrap samples: no report
module writes a law's formula itself. report.md is written last, through a temp file and a
rename, so a killed run never leaves one that looks complete.

The work is split by job; every name below can be imported from here:

    report_data   Study, load, parse_target; curves, bands and allocations from ladder.fit
    report_figs   matplotlib helpers: figures, "missing" panels, log axes, atomic saves
    report_plots  loss vs N, D, C; compute frontier; IsoFLOP parabolas; residuals
    report_scale  learning curves and the three scale properties, measured and drawn
    report_md     report.md
    report        this module: PLOTS, make_report and the command line
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from ladder.report_data import (
    ALLOCATORS,
    AXES,
    BAND,
    Study,
    allocation_band,
    band,
    curve_of,
    load,
    optimal_loss,
    parse_target,
    spread,
    target_predictions,
)
from ladder.report_figs import FORMATS, LOSS_LABEL, save_figure
from ladder.report_md import (
    POOR_EXTRAPOLATION,
    POOR_FIT_RMS,
    RUN_COLUMNS,
    render,
    section_allocation,
    section_config,
    section_extrapolation,
    section_laws,
    section_properties,
    section_runs,
    section_warnings,
)
from ladder.report_plots import (
    plot_compute_frontier,
    plot_isoflop,
    plot_loss_vs,
    plot_residuals,
)
from ladder.report_scale import (
    COLLAPSE_FROM,
    EXPONENTS,
    MAX_SUBSETS,
    REFIT,
    collapse,
    exponents,
    independence,
    irreducible,
    local_exponent,
    plot_learning_curves,
    plot_scale_independence,
    plot_scale_sensitivity,
    plot_self_similarity,
    sensitivity,
    verdict,
)

__all__ = [
    "ALLOCATORS",
    "AXES",
    "BAND",
    "COLLAPSE_FROM",
    "EXPONENTS",
    "FORMATS",
    "LOSS_LABEL",
    "MAX_SUBSETS",
    "PLOTS",
    "POOR_EXTRAPOLATION",
    "POOR_FIT_RMS",
    "REFIT",
    "RUN_COLUMNS",
    "Study",
    "allocation_band",
    "band",
    "collapse",
    "curve_of",
    "exponents",
    "independence",
    "irreducible",
    "load",
    "local_exponent",
    "main",
    "make_report",
    "optimal_loss",
    "parse_target",
    "plot_compute_frontier",
    "plot_isoflop",
    "plot_learning_curves",
    "plot_loss_vs",
    "plot_residuals",
    "plot_scale_independence",
    "plot_scale_sensitivity",
    "plot_self_similarity",
    "render",
    "section_allocation",
    "section_config",
    "section_extrapolation",
    "section_laws",
    "section_properties",
    "section_runs",
    "section_warnings",
    "sensitivity",
    "spread",
    "target_predictions",
    "verdict",
]

# file stem -> (category, subcategory) for `snakemake --report`; one category per plot family
PLOTS: dict[str, tuple[str, str]] = {
    "loss_vs_params": ("1. Scaling laws", "Loss vs parameters"),
    "loss_vs_tokens": ("1. Scaling laws", "Loss vs tokens"),
    "loss_vs_compute": ("1. Scaling laws", "Loss vs compute"),
    "compute_frontier": ("2. Compute-optimal allocation", "Frontier and N, D lines"),
    "isoflop": ("2. Compute-optimal allocation", "IsoFLOP curves"),
    "learning_curves": ("3. Learning curves", "Loss vs tokens, every rung"),
    "scale_sensitivity": ("4. Scale properties", "Sensitivity: exponents"),
    "self_similarity": ("4. Scale properties", "Self-similarity: curve collapse"),
    "scale_independence": ("4. Scale properties", "Independence: exponent vs scale"),
    "residuals": ("5. Residuals", "Residuals of each law"),
}


def _write_text(path: Path, text: str) -> None:
    """A temp file in the same folder, then a rename: never a half-written report.md."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_report(study: Study, out_dir: str | os.PathLike) -> list[Path]:
    """Draw every plot and write report.md; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "report.md"
    if md.exists():
        md.unlink()  # a report.md beside new plots must be the new one
    sim, ind = collapse(study), independence(study)
    figures = {
        "loss_vs_params": lambda: plot_loss_vs(study, "params"),
        "loss_vs_tokens": lambda: plot_loss_vs(study, "tokens"),
        "loss_vs_compute": lambda: plot_loss_vs(study, "compute"),
        "compute_frontier": lambda: plot_compute_frontier(study),
        "isoflop": lambda: plot_isoflop(study),
        "learning_curves": lambda: plot_learning_curves(study),
        "scale_sensitivity": lambda: plot_scale_sensitivity(study),
        "self_similarity": lambda: plot_self_similarity(study, sim),
        "scale_independence": lambda: plot_scale_independence(study, ind),
        "residuals": lambda: plot_residuals(study),
    }
    written = []
    for stem in PLOTS:
        written += save_figure(figures[stem](), out, stem)
    _write_text(md, render(study, sim, ind, PLOTS))
    return [*written, md]


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
