"""Downstream task accuracy from the ladder: OLMo's two-step method (Bhagia et al. 2024,
"Establishing Task Scaling Laws via Compute-Efficient Model Ladders", arXiv:2412.04403).

    step 1  L_task(N, D) = E + A / N^alpha + B / D^beta
            the task loss (bits per byte of the gold continuation) of each run's last
            checkpoint; Hoffmann's estimator (Huber on log residuals from a grid of starts),
            reused from ladder.fit.chinchilla
    step 2  Acc(L) = a / (1 + exp(k (L - L0))) + b,  k > 0
            accuracy against task loss on every checkpoint (intermediate ones too); b is the
            floor a model reaches as L grows, fixed at the task's chance level, and a <= 1 - b
            or, with step2 "exp", Gadre et al. 2024's form ("Language models scale reliably
            with over-training and on downstream tasks", arXiv:2403.08540, eq. 5): top-1
            error Err(L) = eps - k exp(-gamma L), k, gamma > 0, 0 <= eps <= 1, so that
            Acc = 1 - Err rises from 1 - eps (as L grows) exponentially in -L

Written with +k so that accuracy falls with loss and b is the floor. OLMo's code
(allenai/OLMo-ladder, src/scaling step2 `fit_step2`) fits the same sigmoid with free a, b
and anchors the floor with an "ideal point" at chance; fixing b = chance is that anchor made
exact. Gadre et al. fit their form to the average error over tasks against the C4 loss;
here it is fitted per task against the task loss, as the sigmoid is, with eps free. Step 1
fits only the checkpoints marked final (a run's last); step 2 fits every checkpoint, the
intermediate ones included (tasks.csv's final False: config tasks.checkpoints), so a run
with intermediate rows only (a WSD size's stable run) adds points to step 2 alone. The
chained prediction Acc(L_task(N, D)) and its 95% interval come from a bootstrap over runs
that refits both steps on each resample (a run's checkpoints travel together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ladder.fit.bootstrap import expanded_tail
from ladder.fit.chinchilla import CHINCHILLA_NAMES, chinchilla_loss, fit_chinchilla
from ladder.fit.runs import FitError, distinct, shown, truthy

STEP1_FORMULA = "L_task = E + A / N^alpha + B / D^beta"
# step 2's forms: sigmoid (OLMo, Bhagia et al. 2024; the default) or exp (Gadre et al. 2024)
STEP2_FORMULAS = {
    "sigmoid": "Acc = a / (1 + exp(k * (L_task - L0))) + b",
    "exp": "Acc = 1 - Err, Err = eps - k * exp(-gamma * L_task)",
}
STEP2_PARAMS = {"sigmoid": ("a", "b", "k", "L0"), "exp": ("eps", "k", "gamma")}
STEP2_FREE = {"sigmoid": ("a", "k", "L0"), "exp": ("eps", "k", "gamma")}  # b is fixed
STEP2_FORMULA, STEP2_NAMES = STEP2_FORMULAS["sigmoid"], STEP2_PARAMS["sigmoid"]
STEP1_METHOD = (
    "step 1 Huber(1e-3) on log residuals of the task loss at each run's last checkpoint "
    "(Hoffmann et al. 2022's grid of starts)"
)
METHODS = {
    "sigmoid": f"two-step (Bhagia et al. 2024): {STEP1_METHOD}; step 2 least squares of "
    "accuracy on every checkpoint, floor b fixed at chance, 0 < a <= 1 - b, k > 0",
    "exp": f"two-step: {STEP1_METHOD}; step 2 Gadre et al. 2024's exponential, least squares "
    "of accuracy (1 - error) on every checkpoint, 0 <= eps <= 1, k > 0, gamma > 0",
}
METHOD = METHODS["sigmoid"]


@dataclass
class TaskColumns:
    """Which columns hold N, D, the task loss, the accuracy, the run and the task."""

    params: str = "params_non_embedding"
    tokens: str = "tokens"
    task_loss: str = "bpb"
    acc: str = "acc"
    run: str = "run"
    task: str = "task"


@dataclass
class TaskPoints:
    """Every usable checkpoint: arrays of one entry per row; `run` indexes `runs`."""

    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray  # task loss (bits per byte)
    acc: np.ndarray
    run: np.ndarray  # int index into runs
    last: np.ndarray  # bool: the run's last checkpoint (step 1's point)
    runs: list[str]
    chance: float
    warnings: list[str] = field(default_factory=list)


def _numeric(df: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)


def load_points(
    df: pd.DataFrame, cols: TaskColumns, task: str | None = None, chance: float | None = None
) -> TaskPoints:
    """Validate the table and pull out the points both steps fit. A long table (several tasks)
    needs `task`; several rows per run need a run column, and the run's last row (largest
    tokens; `final` when the table has it) is step 1's point."""
    flags = {
        "params": "--params-col",
        "tokens": "--tokens-col",
        "task_loss": "--task-loss-col",
        "acc": "--acc-col",
    }
    for role, flag in flags.items():
        name = getattr(cols, role)
        if name not in df.columns:
            raise FitError(
                f"missing {role.replace('_', ' ')} column '{name}' (set {flag}); columns are: "
                + ", ".join(map(str, df.columns))
            )
    if task is not None:
        if cols.task not in df.columns:
            raise FitError(f"--task {task}: the table has no task column '{cols.task}'")
        names = sorted(df[cols.task].astype(str).unique())
        if task not in names:
            raise FitError(f"no rows of task '{task}' in column '{cols.task}'; tasks: {names}")
        df = df[df[cols.task].astype(str) == task]
    elif cols.task in df.columns and df[cols.task].nunique() > 1:
        names = sorted(df[cols.task].astype(str).unique())
        raise FitError(f"the table holds {len(names)} tasks {names}: pick one with --task")
    if len(df) == 0:
        raise FitError("the table has no rows")
    df = df.reset_index(drop=True)
    ids = (
        df[cols.run].astype(str).to_numpy()
        if cols.run in df.columns
        else np.array([f"row {i + 1}" for i in range(len(df))])
    )
    warnings = []
    keep = np.ones(len(df), dtype=bool)
    if "diverged" in df.columns:
        div = truthy(df["diverged"])
        if div.any():
            gone = sorted(set(ids[div]))
            warnings.append(f"excluded {len(gone)} diverged run(s): {', '.join(gone[:10])}")
        keep &= ~div
    values = {role: _numeric(df, getattr(cols, role)) for role in flags}
    nan = keep & (np.isnan(values["task_loss"]) | np.isnan(values["acc"]))
    if nan.any():
        warnings.append(f"excluded {int(nan.sum())} checkpoint(s) with no task loss or accuracy")
    keep &= ~nan
    for role in ("params", "tokens", "task_loss"):
        bad = keep & ~(np.isfinite(values[role]) & (values[role] > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            name = getattr(cols, role)
            raise FitError(
                f"column '{name}' has {int(bad.sum())} non-positive or non-numeric value(s) "
                f"(first: {ids[i]} = {shown(df[name].iloc[i])})"
            )
    bad = keep & ~((values["acc"] >= 0) & (values["acc"] <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FitError(
            f"column '{cols.acc}' must hold accuracies in [0, 1] (first: {ids[i]} = "
            f"{shown(df[cols.acc].iloc[i])})"
        )
    chance = _chance(df[keep], chance)
    if not keep.any():
        raise FitError("no usable checkpoints: every row is diverged or has no task loss")
    runs, run = np.unique(ids[keep], return_inverse=True)
    D = values["tokens"][keep]
    # step 1's point: the checkpoint marked `final`, else (a table without the column) the
    # run's largest token count. With the column, a run without a final row (a WSD stable
    # run's intermediate models) has no step-1 point: its rows serve step 2 only.
    marks = "final" in df.columns
    final = truthy(df["final"])[keep] if marks else np.zeros(len(D), bool)
    last = np.zeros(len(D), dtype=bool)
    for r in range(len(runs)):
        rows = np.flatnonzero(run == r)
        marked = rows[final[rows]]
        if len(marked) or not marks:
            last[marked[-1] if len(marked) else rows[np.argmax(D[rows])]] = True
    return TaskPoints(
        values["params"][keep],
        D,
        values["task_loss"][keep],
        values["acc"][keep],
        run,
        last,
        [str(r) for r in runs],
        chance,
        warnings,
    )


def _chance(df: pd.DataFrame, chance: float | None) -> float:
    """--chance, else the table's `chance` column (one value), else an error."""
    if chance is None and "chance" in df.columns:
        found = pd.to_numeric(df["chance"], errors="coerce").dropna().unique()
        if len(found) == 1:
            chance = float(found[0])
        elif len(found) > 1:
            raise FitError(f"column 'chance' holds several values {sorted(found)}: set --chance")
    if chance is None:
        raise FitError("no chance level: set --chance P (or give the table a 'chance' column)")
    if not 0 <= chance < 1:
        raise FitError(f"--chance must be in [0, 1), got {chance:g}")
    return float(chance)


def support(points: TaskPoints) -> str | None:
    """Why the points cannot identify a step, or None."""
    n = int(points.last.sum())  # the runs with a final checkpoint
    if n < len(CHINCHILLA_NAMES) + 2:
        return f"step 1: {n} runs for 5 parameters (needs {len(CHINCHILLA_NAMES) + 2})"
    last = points.last
    for name, v in (("params", points.N[last]), ("tokens", points.D[last])):
        if (found := distinct(v)) < 2:
            return f"step 1: needs at least 2 distinct {name} values (5% apart); found {found}"
    if not _spans(points.loss):
        return (
            f"step 2: needs at least 4 checkpoints with distinct task losses spanning 5%; "
            f"found {len(np.unique(points.loss))} spanning {np.ptp(np.log(points.loss)):.1%}"
        )
    return None


def _spans(L: np.ndarray) -> bool:
    """Step 2 has something to fit: 4+ distinct task losses, the largest 5% above the least."""
    return len(np.unique(L)) >= 4 and L.max() > 1.05 * L.min()


# -------------------------------------------------------------------------------- step 2


def _best_start(residuals, starts, bounds, x_scale):
    """The converged least_squares result of lowest cost over `starts` (x_scale(start) each
    run's scales), or None when none converges."""
    best = None
    for start in starts:
        try:
            res = least_squares(residuals, list(start), bounds=bounds, x_scale=x_scale(start))
        except ValueError:
            continue
        if res.success and (best is None or res.cost < best.cost):
            best = res
    return best


def sigmoid(p: dict, L) -> np.ndarray:
    """Step 2: accuracy at task loss L (arrays of parameters broadcast)."""
    z = np.clip(np.asarray(p["k"]) * (np.asarray(L) - np.asarray(p["L0"])), -500, 500)
    return np.asarray(p["a"]) / (1.0 + np.exp(z)) + np.asarray(p["b"])


def fit_step2(
    L: np.ndarray, acc: np.ndarray, w: np.ndarray, chance: float, warm: dict | None = None
) -> dict | None:
    """(a, b, k, L0) by weighted least squares from a small grid of starts (L0 over the
    observed losses, k over a decade each side of 1/spread), or from `warm` alone (a bootstrap
    resample starts from the full fit); None when no start converges."""
    keep = w > 0
    L, acc, sw = L[keep], acc[keep], np.sqrt(w[keep])
    top = 1.0 - chance
    spread = max(float(np.ptp(L)), 1e-6)

    def residuals(t):
        return sw * (sigmoid({"a": t[0], "b": chance, "k": t[1], "L0": t[2]}, L) - acc)

    grid = [
        (min(max(float(acc.max()) - chance, 1e-3), top), k, float(L0))
        for L0 in np.quantile(L, [0.2, 0.5, 0.8])
        for k in (0.3 / spread, 3.0 / spread, 30.0 / spread)
    ]
    starts = grid if warm is None else [(min(warm["a"], top), warm["k"], warm["L0"])]
    bounds = ([1e-9, 1e-9, -np.inf], [top, np.inf, np.inf])
    best = _best_start(residuals, starts, bounds, lambda t: [top, max(t[1], 1e-6), spread])
    if best is None:
        return None
    a, k, L0 = best.x
    return {"a": float(a), "b": chance, "k": float(k), "L0": float(L0), "_cost": float(best.cost)}


def exp_accuracy(p: dict, L) -> np.ndarray:
    """Step 2 in Gadre et al. 2024's form: 1 - Err(L), Err = eps - k exp(-gamma L)."""
    z = np.clip(-np.asarray(p["gamma"]) * np.asarray(L), -500, 500)
    return 1.0 - (np.asarray(p["eps"]) - np.asarray(p["k"]) * np.exp(z))


def accuracy(p: dict, L) -> np.ndarray:
    """Step 2's accuracy at task loss L, in the form `p`'s parameters are of."""
    return exp_accuracy(p, L) if "gamma" in p else sigmoid(p, L)


def fit_step2_exp(
    L: np.ndarray, acc: np.ndarray, w: np.ndarray, chance: float, warm: dict | None = None
) -> dict | None:
    """(eps, k, gamma) of Err = eps - k exp(-gamma L) by weighted least squares of accuracy.
    Starts: for each gamma of a grid (a decade each side of 1/spread), eps and k from the
    linear least squares that gamma leaves (acc = 1 - eps + k exp(-gamma L)); or `warm`
    alone. `chance` is unused: eps, the error as L grows, is free (as Gadre et al. fit it)."""
    keep = w > 0
    L, acc, sw = L[keep], acc[keep], np.sqrt(w[keep])
    spread = max(float(np.ptp(L)), 1e-6)

    def residuals(t):
        return sw * (exp_accuracy({"eps": t[0], "k": t[1], "gamma": t[2]}, L) - acc)

    starts = []
    if warm is not None:
        starts = [(warm["eps"], warm["k"], warm["gamma"])]
    else:
        for gamma in (0.1 / spread, 0.3 / spread, 1.0 / spread, 3.0 / spread, 10.0 / spread):
            X = np.stack([np.ones_like(L), np.exp(-gamma * L)], axis=1) * sw[:, None]
            (c0, c1), *_ = np.linalg.lstsq(X, acc * sw, rcond=None)
            starts.append((min(max(1.0 - c0, 0.0), 1.0), max(c1, 1e-6), gamma))
    bounds = ([0.0, 0.0, 1e-9], [1.0, np.inf, np.inf])
    best = _best_start(residuals, starts, bounds, lambda t: [1.0, max(t[1], 1e-6), max(t[2], 1e-6)])
    if best is None:
        return None
    eps, k, gamma = best.x
    return {"eps": float(eps), "k": float(k), "gamma": float(gamma), "_cost": float(best.cost)}


STEP2_FITS = {"sigmoid": fit_step2, "exp": fit_step2_exp}


def check_step2(form: str) -> str:
    """`form` if it is a step-2 form, else a FitError naming the allowed ones."""
    if form not in STEP2_FITS:
        raise FitError(f"--step2 must be one of {', '.join(STEP2_FITS)}; got '{form}'")
    return form


# -------------------------------------------------------------------------------- the fit


def _step1(points: TaskPoints, counts: np.ndarray, warm=None):
    """Step 1 on each row of per-run counts (K, runs): params as arrays, objective, minima."""
    last = np.flatnonzero(points.last)
    w = counts[:, points.run[last]]
    return fit_chinchilla(points.N[last], points.D[last], points.loss[last], w, warm)


def chained(step1: dict, step2: dict, N, D) -> tuple[np.ndarray, np.ndarray]:
    """(task loss, accuracy) at (N, D): step 2 (either form) applied to step 1's prediction."""
    L = chinchilla_loss(step1, np.log(np.asarray(N, float)), np.log(np.asarray(D, float)))
    return L, accuracy(step2, L)


def fit_task(
    points: TaskPoints,
    targets: list[tuple[float, float]] = (),
    bootstrap: int = 200,
    seed: int = 0,
    columns: dict | None = None,
    step2: str = "sigmoid",
) -> dict:
    """Both steps, their 95% intervals and the chained predictions at `targets` ((N, D)
    pairs): the fits.json entry of one task. `step2`: the form of step 2, sigmoid (OLMo's)
    or exp (Gadre et al.'s). Raises FitError when a step is not identified."""
    fit2 = STEP2_FITS[check_step2(step2)]
    if (reason := support(points)) is not None:
        raise FitError(reason)
    n_runs = int(points.last.sum())  # step 1's: the runs with a final checkpoint
    p1, obj1, minima = _step1(points, np.ones((1, len(points.runs))))
    s1 = {k: float(p1[k][0]) for k in CHINCHILLA_NAMES}
    s2 = fit2(points.loss, points.acc, np.ones(len(points.loss)), points.chance)
    if s2 is None or not all(math.isfinite(v) for v in s1.values()):
        raise FitError("the fit did not converge")
    cost2 = s2.pop("_cost")
    warnings = list(points.warnings)
    last = points.last
    if distinct(points.D[last] / points.N[last]) < 2:
        warnings.append(
            "every run has the same tokens per parameter: step 1's N and D terms are not told "
            "apart, so predictions off that line are not identified"
        )
    # the slope (k, or gamma) times the observed spread of task loss: under 1, the curve's
    # shape is barely constrained by the points
    slope = s2["gamma"] if step2 == "exp" else s2["k"]
    if slope * np.ptp(points.loss) < 1.0:
        warnings.append(
            f"step 2: the observed task losses cover less than one unit of "
            f"{'gamma' if step2 == 'exp' else 'k'} (L - L0 or L): the {step2} curve's shape is "
            "barely constrained, its ceiling in particular"
        )
    entry: dict = {
        "law": "task",
        "method": METHODS[step2],
        "formula": {"step1": STEP1_FORMULA, "step2": STEP2_FORMULAS[step2]},
        "step2_form": step2,
        "columns": columns or {},
        "chance": points.chance,
        "n_runs": n_runs,
        "n_points": int(len(points.loss)),
        "n_final": n_runs,
        "n_intermediate": int(len(points.loss) - n_runs),
        "rows": points.runs,
        "step1": {"params": s1, "ci95": {}, "objective": float(obj1[0]), "n_points": n_runs},
        "step2": {
            "form": step2,
            "params": s2,
            "ci95": {},
            "objective": cost2 * 2,
            "objective_kind": "sum of squared residuals of accuracy",
            "n_points": int(len(points.loss)),
            "fixed": ["b"] if step2 == "sigmoid" else [],
        },
    }
    # the report's generic tables read "params" and "ci95": both steps, side by side
    entry["params"] = s1 | {k: s2[k] for k in STEP2_PARAMS[step2]}
    targets = [(float(n), float(d)) for n, d in targets]
    preds = []
    for n, d in targets:
        L, acc = chained(s1, s2, n, d)
        preds.append({"N": n, "D": d, "C": 6 * n * d, "task_loss": float(L), "acc": float(acc)})
    boot = _bootstrap(points, minima, s2, targets, bootstrap, seed, step2) if bootstrap else None
    entry["bootstrap"] = {
        "resamples": bootstrap,
        "used": 0,
        "seed": seed,
        "method": "runs resampled with replacement (a run's checkpoints together); both steps "
        "refitted on each resample; percentile interval with tails expanded to sqrt(n/(n-p)) "
        "t(n-p), n runs with a final checkpoint, p = 5 (Hesterberg 2015)",
    }
    entry["samples"] = []
    if boot is not None:
        entry["bootstrap"]["used"] = boot["used"]
        entry["step1"]["ci95"], entry["step2"]["ci95"] = boot["ci1"], boot["ci2"]
        entry["samples"] = boot["samples"]
        for pred, ci in zip(preds, boot["pred_ci"], strict=True):
            pred |= ci
        if boot["used"] < 0.95 * bootstrap:
            warnings.append(
                f"{bootstrap - boot['used']} of {bootstrap} bootstrap resamples could not be "
                "fitted (too few distinct runs) and were left out of the intervals"
            )
    entry["ci95"] = entry["step1"]["ci95"] | entry["step2"]["ci95"]
    entry["predictions"] = preds
    entry["warnings"] = warnings
    return entry


def _bootstrap(
    points: TaskPoints, minima, s2_full: dict, targets, B: int, seed: int, step2: str = "sigmoid"
) -> dict:
    n = len(points.runs)
    rng = np.random.default_rng([seed, 22])
    counts = np.zeros((B, n))
    np.add.at(counts, (np.arange(B)[:, None], rng.integers(0, n, (B, n))), 1.0)
    p1, _, _ = _step1(points, counts, warm=minima)
    rows = []
    for j in range(B):
        s1 = {k: float(p1[k][j]) for k in CHINCHILLA_NAMES}
        sub = counts[j] > 0
        if not _spans(points.loss[sub[points.run]]) or not all(map(math.isfinite, s1.values())):
            continue
        w = counts[j][points.run]
        s2 = STEP2_FITS[step2](points.loss, points.acc, w, points.chance, warm=s2_full)
        if s2 is None:
            continue
        s2.pop("_cost")
        rows.append((s1, s2))
    tail = 100 * expanded_tail(int(points.last.sum()), len(CHINCHILLA_NAMES))

    def ci(values) -> list[float] | None:
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        return [float(x) for x in np.percentile(v, [tail, 100 - tail])] if len(v) >= 2 else None

    out = {"used": len(rows), "ci1": {}, "ci2": {}, "pred_ci": [], "samples": []}
    if len(rows) < 2:
        out["pred_ci"] = [{} for _ in targets]
        return out
    out["ci1"] = {k: ci([r[0][k] for r in rows]) for k in CHINCHILLA_NAMES}
    out["ci2"] = {k: ci([r[1][k] for r in rows]) for k in STEP2_FREE[step2]}
    for n_, d_ in targets:
        got = np.array([chained(s1, s2, n_, d_) for s1, s2 in rows], dtype=float)
        out["pred_ci"].append({"task_loss_ci95": ci(got[:, 0]), "acc_ci95": ci(got[:, 1])})
    out["samples"] = [s1 | s2 for s1, s2 in rows[:200]]
    return out


def parse_target(text: str) -> tuple[float, float]:
    """'1e9,2e10' -> (1e9, 2e10): a model of N parameters trained on D tokens."""
    parts = str(text).split(",")
    try:
        n, d = (float(p) for p in parts)
    except ValueError:
        raise FitError(f"--predict wants N,D (e.g. 1e9,2e10); got '{text}'") from None
    if not (n > 0 and d > 0 and math.isfinite(n) and math.isfinite(d)):
        raise FitError(f"--predict N,D must both be positive numbers; got '{text}'")
    return n, d
