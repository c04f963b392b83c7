"""The report folder: every plot in ladder.artifacts.REPORT_PLOTS as PNG and SVG, then report.md.

A plot the data cannot support is still written, as a figure that says what is missing, so the
Snakemake rule can declare fixed outputs and a small study still gets every file. report.md is
removed first and written last, so a killed run never leaves one that looks complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from ladder.artifacts import REPORT_MD, REPORT_PLOTS, write_text
from ladder.report.allocation import plot_compute_frontier, plot_isoflop
from ladder.report.curve_laws import plot_curve_fits
from ladder.report.curves import plot_learning_curves
from ladder.report.figure import save_figure
from ladder.report.inputs import ReportInputs
from ladder.report.laws import plot_loss_vs
from ladder.report.markdown import render
from ladder.report.residuals import plot_residuals
from ladder.report.scale import (
    collapse,
    independence,
    plot_scale_independence,
    plot_scale_sensitivity,
    plot_self_similarity,
)
from ladder.report.tasks import plot_task_scaling


def make_report(study: ReportInputs, out_dir: str | os.PathLike) -> list[Path]:
    """Draw every plot and write report.md; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / REPORT_MD
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
        "curve_fits": lambda: plot_curve_fits(study),
        "scale_sensitivity": lambda: plot_scale_sensitivity(study),
        "self_similarity": lambda: plot_self_similarity(study, sim),
        "scale_independence": lambda: plot_scale_independence(study, ind),
        "residuals": lambda: plot_residuals(study),
        "task_scaling": lambda: plot_task_scaling(study),
    }
    written = []
    for stem in REPORT_PLOTS:
        written += save_figure(figures[stem](), out, stem)
    write_text(md, render(study, sim, ind))
    return [*written, md]
