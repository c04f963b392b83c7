"""Plots and report.md from runs.csv and fits.json (`ladder report`; docs/report.md).

Every plot family has a fixed file name (ladder.artifacts.REPORT_PLOTS), written as PNG and SVG.
Fitted curves and their 95% bands come from `ladder.fit.predict` on fits.json's parameters and
bootstrap samples: no module here writes a law's formula itself. Each module imports only from
those listed above it:

    inputs       ReportInputs: runs.csv, fits.json, curves, meta, config in one; parse_target
    predictions  curves, 95% bands, losses at the target and allocations from ladder.fit
    figure       matplotlib helpers: figures, "missing" panels, log axes, atomic PNG + SVG writes
    laws         loss vs N, D and C with the fitted laws and the target
    allocation   the compute frontier and N_opt, D_opt; IsoFLOP profiles and parabolas
    residuals    the residuals of every law
    curves       learning curves
    scale        the three scale properties (sensitivity, self-similarity, independence)
    markdown     report.md
    build        make_report: every plot, then report.md
    cli          the `ladder report` command
"""

from ladder.report.build import make_report
from ladder.report.inputs import ReportInputs, load

__all__ = ["ReportInputs", "load", "make_report"]
