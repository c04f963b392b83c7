"""The laws `ladder fit` knows: what each key of fits.json is (`Law`, `make_law`), whether a table
of runs supports it (`support`), and one batched fit of it by its family's estimator
(`fit_once`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ladder.fit.allocation import compute_model
from ladder.fit.chinchilla import chinchilla_allocation_lines, fit_chinchilla
from ladder.fit.frontier import frontier_mask, on_frontier
from ladder.fit.isoflop import usable_budgets
from ladder.fit.kaplan import fit_kaplan
from ladder.fit.power import fit_power
from ladder.fit.runs import VARIABLES, FitError, Runs, distinct, one_ratio

LAWS = ("power", "chinchilla", "kaplan", "isoflop", "frontier")  # the --law choices


@dataclass
class Law:
    """What the driver needs to know about one fitted law (one key in fits.json)."""

    key: str
    law: str
    x: str | list[str]  # the variable(s) the law is a function of
    formula: str
    names: list[str]  # its parameters (the "params" and each bootstrap sample)
    needs: tuple[str, ...]  # the columns it needs
    offset: bool = True
    derived: tuple[str, ...] = ()  # functions of the parameters that also get intervals
    objective_kind: str = "sum of squared residuals of log L"


def make_law(name: str, x: str = "params", offset: bool = True) -> Law:
    if name == "power":
        s = VARIABLES[x]
        if offset:
            return Law(
                f"power_{x}", "power", x, f"L = E + A * {s}^(-alpha)", ["E", "A", "alpha"], (x,)
            )
        return Law(
            f"power_{x}_no_offset",
            "power",
            x,
            f"L = k * {s}^(-alpha)",
            ["k", "alpha"],
            (x,),
            offset=False,
        )
    if name == "chinchilla":
        return Law(
            "chinchilla",
            "chinchilla",
            ["params", "tokens"],
            "L = E + A / N^alpha + B / D^beta",
            ["E", "A", "B", "alpha", "beta"],
            ("params", "tokens"),
            derived=("a", "b", "tokens_per_param"),
            objective_kind="sum of Huber(delta=1e-3) of residuals of log L",
        )
    if name == "kaplan":
        return Law(
            "kaplan",
            "kaplan",
            ["params", "tokens"],
            "L = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D",
            ["N_c", "D_c", "alpha_N", "alpha_D"],
            ("params", "tokens"),
        )
    if name == "isoflop":
        return Law(
            "isoflop",
            "isoflop",
            "compute",
            "N_opt = k_N * C^a, D_opt = k_D * C^b",
            ["a", "b", "k_N", "k_D"],
            ("params", "tokens", "compute"),
            objective_kind="sum of squared residuals of ln N_opt against ln C, weighted 1/sd^2",
        )
    if name == "frontier":
        return Law(
            "frontier",
            "frontier",
            "compute",
            "L = E + A * C^(-alpha) on the lower envelope of loss over compute",
            ["E", "A", "alpha"],
            ("compute",),
        )
    raise FitError(f"unknown law '{name}'; choose from {', '.join(LAWS)} or all")


def support(law: Law, runs: Runs, tol: float = 0.25) -> str | None:
    """Why these runs cannot support the law, or None when they can."""
    for var in law.needs:
        if runs.var(var) is None:
            return f"no {var} column"
    n_params = len(law.names)
    if law.law in ("power", "chinchilla", "kaplan") and len(runs) < n_params:
        return f"{len(runs)} runs for {n_params} parameters"
    if law.law == "power":
        found = distinct(runs.var(law.x))
        if found < 3:
            return f"needs at least 3 distinct {law.x} values (5% apart); found {found}"
    elif law.law in ("chinchilla", "kaplan"):
        for var in ("params", "tokens"):
            found = distinct(runs.var(var))
            if found < 3:
                return f"needs at least 3 distinct {var} values (5% apart); found {found}"
        if len(runs) < n_params + 2:
            # with (almost) no residual degrees of freedom every bootstrap resample that
            # fits at all reproduces the same runs: intervals would be zero-width, not small
            return f"{len(runs)} runs for {n_params} parameters (needs {n_params + 2})"
        reason = unidentified(runs)
        if reason is not None:
            return reason
    elif law.law == "isoflop":
        found = usable_budgets(runs, tol)
        if found < 2:
            return (
                f"needs at least 2 compute budgets with 3+ model sizes each; found {found} "
                f"(runs within a factor {1 + tol:g} in compute share a budget: --budget-tol)"
            )
        return None
    elif law.law == "frontier":
        found = int(on_frontier(runs).sum())
        if found < n_params:
            return f"{found} runs on the compute frontier for {n_params} parameters"
    return None


def unidentified(runs: Runs) -> str | None:
    """Why N's and D's terms of a two-variable law cannot be told apart on these runs (every
    run on one tokens-per-parameter line, under any of the table's parameter counts), or None.
    """
    found = one_ratio(runs)
    if found is None:
        return None
    name, ratio = found
    return (
        f"every run has D = {ratio:.3g} x {name} (one tokens-per-parameter line), so the law's "
        "N and D terms cannot be told apart and no compute-optimal allocation follows"
    )


def fit_once(law: Law, runs: Runs, w: np.ndarray, warm=None, tol: float = 0.25):
    """Batched fit of one law: (params as arrays over the rows of w, objective, state), where
    state warm-starts the bootstrap. (isoflop has its own estimator: ladder.fit.isoflop.)"""
    if law.law == "power":
        p, F = fit_power(runs.var(law.x), runs.loss, w, law.offset, warm)
        return p, F, p.get("_theta", [None])[0]
    if law.law == "chinchilla":
        p, F, state = fit_chinchilla(runs.N, runs.D, runs.loss, w, warm)
        # a, b and tokens per parameter of the allocation under the table's own FLOP count
        C_range = (float(runs.C.min()), float(runs.C.max()))
        lines = chinchilla_allocation_lines(p, compute_model(runs), C_range)
        p.update({name: lines[name] for name in law.derived})
        return p, F, state
    if law.law == "kaplan":
        return fit_kaplan(runs.N, runs.D, runs.loss, w, warm)
    if law.law == "frontier":
        on = frontier_mask(runs.C, runs.loss, w)
        p, F = fit_power(runs.C, runs.loss, w * on, True, warm)
        return p, F, p["_theta"][0]
    raise AssertionError(law.law)


def first_row(params: dict) -> dict[str, float]:
    """The first (or only) problem's parameters of a batched fit, as floats; "_" keys dropped."""
    return {name: float(v[0]) for name, v in params.items() if not name.startswith("_")}
