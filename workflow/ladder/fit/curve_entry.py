"""One curve law, one fits.json entry: `fit_curve_law` fits a law of whole learning curves
(ladder.fit.annealing, ladder.fit.multipower) to each model size's runs, with bootstrap
intervals, each run's error, a held-out-schedule check and, on request, the curve of a
schedule that was not run; `fit_sized_law` fits the law across sizes (ladder.fit.sized) to
every run at once, with the same intervals and errors and a held-out-size check.

The entry: {"law", "formula", "method", "lambda", "columns", "groups": {SIZE: group}}, where
a group holds "runs", "size", "params", "ci95", "n_points", "objective", "mare" (per run: mean
absolute relative error of the fitted curve), "mare_mean", "holdout", "predictions",
"samples" and "bootstrap". The sized law's entry is flat (one fit): see fit_sized_law.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ladder.fit import annealing, multipower, sized
from ladder.fit.curves import Curve, Curves
from ladder.fit.runs import FitError
from ladder.schedule import Schedule, parse_spec

CURVE_LAWS = {"annealing": annealing, "multipower": multipower}  # one fit per model size
SIZED_LAWS = {"annealing_sized": sized}  # one fit across sizes
MAX_POINTS = 500  # per run: more logged points add time, not information (thinned evenly)
BLOCKS = 10  # with fewer than 3 runs the bootstrap resamples blocks of each run's points
N_SAMPLES = 50  # bootstrap parameter vectors kept per group (prediction bands)


@dataclass
class Options:
    bootstrap: int = 200
    seed: int = 0
    lam: float = annealing.LAMBDA
    max_points: int = MAX_POINTS
    predict: tuple[str, ...] = ()
    predict_sizes: tuple[float, ...] = ()  # annealing_sized: sizes N to predict the curve of


def fit_steps(curve: Curve, max_points: int) -> np.ndarray:
    """The logged steps a fit uses: after the warmup (the law describes the loss once the lr
    has reached its peak; the warmup's area still counts in S1), thinned evenly to max_points."""
    steps = curve.steps[curve.steps > curve.warmup_steps]
    if len(steps) > max_points:
        steps = steps[np.unique(np.round(np.linspace(0, len(steps) - 1, max_points)).astype(int))]
    return steps


def points(curve: Curve, steps: np.ndarray) -> np.ndarray:
    return curve.loss[np.searchsorted(curve.steps, steps)]


def fit_group(kit: ModuleType, parts: list[tuple[Curve, np.ndarray]], lam: float, w=None):
    """(theta, objective, design, loss) of one fit to these runs' points (weights w)."""
    design = kit.Design(parts, lam)
    loss = np.concatenate([points(c, s) for c, s in parts])
    w = np.ones((1, design.n)) if w is None else w
    theta, F = kit.fit(design, loss, w)
    if not np.isfinite(F).all():
        raise FitError(f"cannot fit {kit.__name__.rsplit('.', 1)[-1]}: the fit diverged")
    return theta[0], float(F[0]), design, loss


def mare(kit: ModuleType, params: dict, parts, lam: float) -> dict[str, float]:
    """Per run: mean |predicted − observed| / observed over its points."""
    out = {}
    for curve, steps in parts:
        pred = kit.loss_of(kit.Design([(curve, steps)], lam), params)
        obs = points(curve, steps)
        out[curve.run] = float(np.mean(np.abs(pred - obs) / obs))
    return out


def bootstrap_weights(design, n_runs: int, B: int, rng: np.random.Generator) -> tuple:
    """(B, n) weights of the design's points, and the unit resampled: runs (3 or more) or
    BLOCKS contiguous blocks of each run's points."""
    if n_runs >= 3:
        unit, label = design.run, "runs"
    else:
        unit = np.zeros(design.n, dtype=int)
        for j in range(n_runs):
            idx = np.flatnonzero(design.run == j)
            unit[idx] = j * BLOCKS + (np.arange(len(idx)) * BLOCKS) // max(len(idx), 1)
        label = f"{BLOCKS} contiguous blocks of each run's points"
    n_units = int(unit.max()) + 1
    counts = np.zeros((B, n_units))
    np.add.at(counts, (np.arange(B)[:, None], rng.integers(0, n_units, (B, n_units))), 1.0)
    return counts[:, unit], label


def intervals(kit, design, loss, theta, n_runs: int, opts: Options, key: str) -> dict:
    """Percentile 95% intervals from refits to B resamples (one batch, warm-started)."""
    if opts.bootstrap <= 0:
        return {"ci95": {}, "samples": [], "used": 0, "unit": None}
    rng = np.random.default_rng([opts.seed, zlib.crc32(key.encode())])
    B = min(opts.bootstrap, getattr(kit, "BOOTSTRAP_MAX", opts.bootstrap))
    w, label = bootstrap_weights(design, n_runs, B, rng)
    th, F = kit.fit(design, loss, w, warm=theta)
    th = th[np.isfinite(F)]
    table = [kit.to_params(row) for row in th]
    ci = {}
    if len(table) >= 2:
        for name in kit.NAMES:
            lo, hi = np.percentile([t[name] for t in table], [2.5, 97.5])
            ci[name] = [float(lo), float(hi)]
    return {"ci95": ci, "samples": table[:N_SAMPLES], "used": len(table), "unit": label}


def holdout(kit, parts, lam: float) -> dict:
    """Fit on the size's longest run (for a WSD ladder: the stable phase and one cooldown),
    predict the others' curves: each one's error, and their mean."""
    if len(parts) < 2:
        return {"skipped": "one run of this size: nothing to hold out"}
    longest = max(range(len(parts)), key=lambda j: (parts[j][0].n_steps, parts[j][0].run))
    train = [parts[longest]]
    held = [p for j, p in enumerate(parts) if j != longest]
    try:
        theta, _, _, _ = fit_group(kit, train, lam)
    except FitError as e:
        return {"skipped": str(e)}
    err = mare(kit, kit.to_params(theta), held, lam)
    return {
        "fitted_on": [parts[longest][0].run],
        "predicted": err,
        "mare_mean": float(np.mean(list(err.values()))),
    }


PREDICT_POINTS = 1000  # rows per predicted curve (evenly spaced steps, the last included)


def predicted_curve(
    kit, params: dict, samples: list[dict], sched: Schedule, lam: float, size: float | None = None
):
    """(steps, lrs at them, loss, 95% band lo, hi) of the law under a schedule (at model size
    `size`, for the law across sizes)."""
    n = sched.steps
    steps = np.unique(np.round(np.linspace(1, n, min(n, PREDICT_POINTS))).astype(int))
    curve = Curve("predicted", steps, np.ones(len(steps)), sched.lrs(), size, None, sched)
    curve.warmup_steps = sched.warmup_steps
    design = kit.Design([(curve, steps)], lam)
    loss = kit.loss_of(design, params)
    lo = hi = np.full(len(steps), np.nan)
    if len(samples) >= 2:
        band = np.array([kit.loss_of(design, s) for s in samples])
        lo, hi = np.nanpercentile(band, [2.5, 97.5], axis=0)
    return steps, curve.lrs[steps - 1], loss, lo, hi


def base_schedule(parts) -> Schedule:
    """What a spec changes: the size's longest run's schedule (or, from a CSV that has no
    schedule columns, a constant one of its length and peak)."""
    curve = max((c for c, _ in parts), key=lambda c: (c.n_steps, c.run))
    if curve.schedule is not None:
        return curve.schedule
    return Schedule(steps=curve.n_steps, lr=float(curve.lrs.max()), schedule="constant")


AS_RUN = "as-run"  # the spec of a predicted size's curve under its base schedule unchanged


def predictions(
    kit, group: dict, parts, opts: Options, specs=None, size: float | None = None
) -> tuple[list[dict], list[dict]]:
    """For each schedule spec (default --predict-schedule's): a summary for fits.json and the
    curve's rows; `size` is the N a law across sizes predicts at."""
    summary, rows = [], []
    for spec in opts.predict if specs is None else specs:
        try:
            base = base_schedule(parts)
            sched = base if spec == AS_RUN else parse_spec(spec, base)
        except ValueError as e:
            raise FitError(f"--predict-schedule: {e}") from None
        steps, lrs, loss, lo, hi = predicted_curve(
            kit, group["params"], group["samples"], sched, opts.lam, size
        )
        summary.append(
            ({} if size is None else {"size": size})
            | {
                "spec": spec,
                "schedule": sched.__dict__,
                "final_loss_nats": float(loss[-1]),
                "final_ci95": [float(lo[-1]), float(hi[-1])] if np.isfinite(lo[-1]) else None,
            }
        )
        for step, lr, value, low, high in zip(steps, lrs, loss, lo, hi, strict=True):
            rows.append(
                {"spec": spec, "step": int(step), "lr": float(lr), "loss_nats": float(value)}
                | {"loss_lo": float(low), "loss_hi": float(high)}
            )
    return summary, rows


def sized_predictions(kit, entry: dict, parts, opts: Options) -> tuple[list[dict], list[dict]]:
    """The law across sizes' curves at each --predict-size N (default: each fitted size when
    only --predict-schedule is given), under each --predict-schedule spec applied to the
    largest size's longest run's schedule (that schedule unchanged when none is given)."""
    sizes = list(opts.predict_sizes) or (sorted({c.size for c, _ in parts}) if opts.predict else [])
    largest = max(c.size for c, _ in parts)
    base_parts = [p for p in parts if p[0].size == largest]
    summary, rows = [], []
    for size in sizes:
        these, curve_rows = predictions(
            kit, entry, base_parts, opts, list(opts.predict) or [AS_RUN], float(size)
        )
        summary += these
        rows += [{"group": f"N={size:.3g}", **r} for r in curve_rows]
    return summary, rows


def fit_curve_law(name: str, curves: Curves, opts: Options) -> tuple[dict, list[dict]]:
    """The law's fits.json entry and the predicted curves' rows (group, spec, step, lr, ...)."""
    kit = CURVE_LAWS[name]
    groups, rows = {}, []
    for label, members in curves.groups().items():
        cap = min(opts.max_points, getattr(kit, "MAX_POINTS", opts.max_points))
        parts = [(c, fit_steps(c, cap)) for c in members]
        parts = [(c, s) for c, s in parts if len(s)]
        if sum(len(s) for _, s in parts) < 2 * len(kit.NAMES):
            groups[label] = {"skipped": "too few logged points after the warmup"}
            continue
        group = fit_one_size(kit, name, label, parts, opts)
        group["predictions"], these = predictions(kit, group, parts, opts)
        rows += [{"group": label, **r} for r in these]
        groups[label] = group
    fitted = [g for g in groups.values() if "params" in g]
    if not fitted:
        raise FitError(f"cannot fit {name}: no model size has enough points after the warmup")
    entry = {
        "law": name,
        "formula": kit.FORMULA,
        "method": kit.METHOD,
        "lambda": opts.lam,
        "columns": curves.columns.__dict__,
        "n_runs": sum(len(g["runs"]) for g in fitted),
        "mare_mean": float(np.mean([v for g in fitted for v in g["mare"].values()])),
        "groups": groups,
        "warnings": list(curves.warnings),
    }
    return entry, rows


def at_bounds(kit, theta: np.ndarray) -> list[str]:
    """A warning per parameter the fit left at a bound of its search (not identified)."""
    lower, upper = kit.LOWER, kit.UPPER
    out = []
    for j, name in enumerate(kit.SEARCH_NAMES):
        for bound, side in ((lower[j], "lower"), (upper[j], "upper")):
            if np.isfinite(bound) and abs(theta[j] - bound) <= 1e-6 * max(1.0, abs(bound)):
                out.append(f"{name} is at its {side} bound {bound:g}: not identified by these runs")
    return out


def fit_one_size(kit, name: str, label: str, parts, opts: Options) -> dict:
    theta, F, design, loss = fit_group(kit, parts, opts.lam)
    params = kit.to_params(theta)
    err = mare(kit, params, parts, opts.lam)
    boot = intervals(kit, design, loss, theta, len(parts), opts, f"{name}/{label}")
    return {
        "runs": [c.run for c, _ in parts],
        "size": parts[0][0].size,
        "warnings": at_bounds(kit, theta),
        "params": params,
        "ci95": boot["ci95"],
        "n_points": int(design.n),
        "objective": F,
        "mare": err,
        "mare_mean": float(np.mean(list(err.values()))),
        "holdout": holdout(kit, parts, opts.lam),
        "samples": boot["samples"],
        "bootstrap": {
            "resamples": min(opts.bootstrap, getattr(kit, "BOOTSTRAP_MAX", opts.bootstrap)),
            "used": boot["used"],
            "seed": opts.seed,
            "unit": boot["unit"],
            "method": "percentile interval (2.5, 97.5) of the refits to resamples of "
            f"{boot['unit']}, each warm-started at the full fit",
        },
    }


def sized_parts(kit, curves: Curves, opts: Options) -> list[tuple[Curve, np.ndarray]]:
    """Every run's fitted steps, checked: each run has a size, and there are enough sizes."""
    no_size = [c.run for c in curves.curves if c.size is None]
    if no_size:
        raise FitError(
            f"no model size for run(s) {', '.join(no_size[:3])}: the law across sizes needs "
            f"column '{curves.columns.size}' (--size-col)"
        )
    cap = min(opts.max_points, getattr(kit, "MAX_POINTS", opts.max_points))
    parts = [(c, fit_steps(c, cap)) for c in curves.curves]
    parts = [(c, s) for c, s in parts if len(s)]
    n_sizes = len({c.size for c, _ in parts})
    if n_sizes < kit.MIN_SIZES:
        raise FitError(
            f"needs runs of at least {kit.MIN_SIZES} model sizes (column "
            f"'{curves.columns.size}') with points after the warmup; got {n_sizes}"
        )
    return parts


def holdout_size(kit, parts, lam: float) -> dict:
    """Refit without the largest size's runs and predict their curves: each one's error."""
    largest = max(c.size for c, _ in parts)
    train = [p for p in parts if p[0].size != largest]
    held = [p for p in parts if p[0].size == largest]
    if len({c.size for c, _ in train}) < kit.MIN_SIZES:
        return {"skipped": f"needs {kit.MIN_SIZES + 1} sizes to hold out the largest"}
    try:
        theta, _, _, _ = fit_group(kit, train, lam)
    except FitError as e:
        return {"skipped": str(e)}
    err = mare(kit, kit.to_params(theta), held, lam)
    # a refit that extrapolates to inf/nan on a run has not predicted it: its error is None,
    # and the mean is over the runs it did predict (none: the check is skipped, with why)
    good = [e for e in err.values() if np.isfinite(e)]
    if not good:
        return {"skipped": f"the refit without size {largest:.4g} predicts no finite curve"}
    return {
        "held_out_size": largest,
        "fitted_on_sizes": sorted({c.size for c, _ in train}),
        "params": kit.to_params(theta),
        "predicted": {run: (e if np.isfinite(e) else None) for run, e in err.items()},
        "mare_mean": float(np.mean(good)),
    }


def fit_sized_law(name: str, curves: Curves, opts: Options) -> tuple[dict, list[dict]]:
    """The law across sizes fitted to every run at once: its fits.json entry and the
    predicted curves' rows (see sized_predictions)."""
    kit = SIZED_LAWS[name]
    parts = sized_parts(kit, curves, opts)
    theta, F, design, loss = fit_group(kit, parts, opts.lam)
    params = kit.to_params(theta)
    err = mare(kit, params, parts, opts.lam)
    boot = intervals(kit, design, loss, theta, len(parts), opts, name)
    entry = {
        "law": name,
        "formula": kit.FORMULA,
        "method": kit.METHOD,
        "references": kit.REFERENCES,
        "lambda": opts.lam,
        "columns": curves.columns.__dict__,
        "n_runs": len(parts),
        "runs": [c.run for c, _ in parts],
        "sizes": sorted({c.size for c, _ in parts}),
        "params": params,
        "ci95": boot["ci95"],
        "n_points": int(design.n),
        "objective": F,
        "mare": err,
        "mare_mean": float(np.mean(list(err.values()))),
        "holdout_size": holdout_size(kit, parts, opts.lam),
        "samples": boot["samples"],
        "bootstrap": {
            "resamples": min(opts.bootstrap, getattr(kit, "BOOTSTRAP_MAX", opts.bootstrap)),
            "used": boot["used"],
            "seed": opts.seed,
            "unit": boot["unit"],
            "method": "percentile interval (2.5, 97.5) of the refits to resamples of "
            f"{boot['unit']}, each warm-started at the full fit",
        },
        "warnings": list(curves.warnings) + at_bounds(kit, theta),
    }
    entry["predictions"], rows = sized_predictions(kit, entry, parts, opts)
    return entry, rows
