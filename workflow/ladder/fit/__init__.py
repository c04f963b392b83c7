"""`ladder fit`: scaling laws fitted to a table of runs, with bootstrap intervals and an
extrapolation check (docs/fitting.md).

    ladder fit RUNS.csv --law all --bootstrap 1000 --seed 0 --out fits.json

The public API (the report and the docs use only these):

    fit_table(df, laws="all", x=None, offset=True, columns=None, bootstrap=1000, seed=0,
              budget_tol=0.25, isoflop_method="akima", loss_noise=None) -> dict
        The object written to fits.json: {"laws": {KEY: entry}, "meta": {...}}.
    predict(law, params=None, N=None, D=None, C=None) -> np.ndarray
        Loss in nats. `law` is a fits.json entry (dict) or a key ("power_params",
        "power_compute_no_offset", "chinchilla", "kaplan", "frontier"); `params` defaults to
        the entry's own and may be one of its bootstrap "samples" (to draw bands).
    optimal_allocation(entry, C, params=None) -> (N_opt, D_opt)
        Compute-optimal model size and tokens for chinchilla, isoflop and frontier entries,
        in the table's own FLOP count.
    isoflop_curve(budget, N), frontier_mask(C, L, w), budgets(C, tol), truthy(values)
        What the report draws: a budget's fitted profile, the frontier runs, the compute
        budgets, which rows are diverged (isoflop_parabola: an older fits.json's parabola).
    Columns, FitError(ValueError)
        Which CSV columns hold N, D, C and the loss; every problem with the input (`main`
        prints it on one line and returns 2).

    fit_curves(df, laws, columns, opts, skip=False) -> (entries, predicted rows)
        The laws of whole learning curves ("annealing", "multipower", "annealing_sized",
        "approach1") fitted to a curves table (docs/fitting.md, "Laws of whole learning curves").

Keys of fits.json["laws"]: "power_{params,tokens,compute}" and the same with "_no_offset",
"chinchilla", "kaplan", "isoflop", "frontier". An entry is {"skipped": reason} when
`--law all` finds that the data cannot support the law, else it holds "law", "x", "formula",
"params", "ci95", "n_points", "objective", "objective_kind", "residuals_log", "rows",
"extrapolation", "optimal_allocation", "warnings", "bootstrap" and "samples".

All fits work on log loss. Modules, each importing only from those above it:

    runs           the table: Columns, Runs, load_runs, budgets, distinct, FitError
    solver         a batched Levenberg-Marquardt (K problems, one per bootstrap resample)
    allocation     the table's FLOP count C = c(N) N D; numerical compute-optimal allocation
    power          L = E + A x^-alpha (or k x^-alpha): formula, estimator, warnings
    chinchilla     L = E + A/N^alpha + B/D^beta: formula, grid, estimator, allocation
    kaplan         L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D: formula, estimator
    isoflop        Approach 2 (Porian et al. 2024): Akima argmin per budget under noise draws
    frontier       Approach 1: the compute frontier and its N, D lines
    laws           the catalogue: Law, make_law, support, fit_once (dispatch to a family)
    predict        predict and optimal_allocation from a fits.json entry
    bootstrap      resamples and percentile intervals with expanded tails
    extrapolation  refit without the largest compute, predict it with a 95% interval
    entry          fit_law: one law -> one fits.json entry
    table          fit_table, to_json, write_fits
    curves         the curves table (curves.csv): every run's curve and the lr of every step
    annealing      L(s) = L0 + A S1^-alpha - C S2 (Tissue et al. 2024): areas, model, estimator
    multipower     Luo et al. 2025's multi-power law: model, estimator
    sized          the annealing law across sizes, E + A/N^alpha + B/S1^beta - F S2 N^gamma
    approach1      Approach 1 on the envelope of every curve (Hoffmann et al. 2022)
    curve_entry    fit_curve_law: one curve law -> one fits.json entry, per model size
    curve_table    fit_curves (the curve laws' part of fits.json), write_predictions
    task           a task's accuracy in two steps (Bhagia et al. 2024): L_task(N, D), then
                   Acc(L) with the chance floor; bootstrap over runs; chained predictions
    cli            the command line (main)
"""

from ladder.fit.cli import main
from ladder.fit.curve_table import fit_curves
from ladder.fit.frontier import frontier_mask
from ladder.fit.isoflop import isoflop_curve, isoflop_parabola
from ladder.fit.predict import optimal_allocation, predict
from ladder.fit.runs import Columns, FitError, budgets, truthy
from ladder.fit.table import fit_table

__all__ = [
    "Columns",
    "FitError",
    "budgets",
    "fit_curves",
    "fit_table",
    "frontier_mask",
    "isoflop_curve",
    "isoflop_parabola",
    "main",
    "optimal_allocation",
    "predict",
    "truthy",
]
