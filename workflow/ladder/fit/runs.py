"""The table of runs a fit reads: which columns hold N, D, C and the loss, validated once.

Every fit module works on a `Runs` (positive, finite arrays, one entry per usable run); the
diverged runs and NaN losses it leaves out are named in its warnings. `budgets` and `distinct`
answer the two questions every law asks of the design: which runs share a compute budget, and
does a variable vary at all. `FitError` is every problem with the input, from here up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

VARIABLES = {"params": "N", "tokens": "D", "compute": "C"}  # column role -> symbol in a law
FLAGS = {"params": "--params-col", "tokens": "--tokens-col", "compute": "--compute-col"}
# runs.csv's parameter counts (ladder.model): a design that scales tokens with any of them is
# a design in one variable (flops_per_token / 6 is the count Porian et al. 2024 call effective)
PARAM_COUNTS = ("params_total", "params_non_embedding", "params_with_head", "flops_per_token")


class FitError(ValueError):
    """Bad input: the message names the problem and is shown to the user as is."""


@dataclass
class Columns:
    """Which CSV columns hold N, D, C and the loss (defaults follow runs.csv)."""

    params: str = "params_non_embedding"
    tokens: str = "tokens"
    compute: str = "flops"
    loss: str = "loss_nats"


@dataclass
class Runs:
    """The usable runs: positive, finite arrays, one entry per run; None where no column."""

    loss: np.ndarray
    N: np.ndarray | None
    D: np.ndarray | None
    C: np.ndarray | None
    ids: list[str]
    columns: dict[str, str]  # variable -> the column it came from ("6*N*D" for derived C)
    warnings: list[str] = field(default_factory=list)
    loss_column: str = "loss_nats"
    # every parameter count the table has (column -> values), the fit's N among them: a design
    # is judged against each, since a ladder may scale D with a count the fit does not use
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.loss)

    def var(self, x: str) -> np.ndarray | None:
        return {"params": self.N, "tokens": self.D, "compute": self.C}[x]

    def subset(self, keep: np.ndarray) -> Runs:
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[keep]

        ids = [i for i, k in zip(self.ids, keep, strict=True) if k]
        return Runs(
            pick(self.loss),
            pick(self.N),
            pick(self.D),
            pick(self.C),
            ids,
            self.columns,
            list(self.warnings),
            self.loss_column,
            {name: v[keep] for name, v in self.counts.items()},
        )


def truthy(values: pd.Series) -> np.ndarray:
    """A `diverged` column may be bool, 0/1 or text; missing means not diverged."""
    if values.dtype == bool:
        return values.to_numpy()
    text = values.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0", "yes", "y", "t"]).to_numpy()


def _names(ids: list[str], mask: np.ndarray, most: int = 10) -> str:
    picked = [i for i, m in zip(ids, mask, strict=True) if m]
    return ", ".join(picked[:most]) + (
        f", ... ({len(picked) - most} more)" if len(picked) > most else ""
    )


def load_runs(df: pd.DataFrame, columns: Columns, need: set[str]) -> Runs:
    """Validate the table and pull out the arrays the fits use.

    `need` names the variables ("params", "tokens", "compute") that must be present; the others
    are loaded when their column exists. Diverged runs and runs with a NaN (or infinite) loss are
    excluded with a warning; any other non-positive or missing value is an error, because a fit
    that silently drops runs answers a different question.
    """
    if columns.loss not in df.columns:
        raise FitError(f"missing loss column '{columns.loss}' (set --loss-col); {_listed(df)}")
    if len(df) == 0:
        raise FitError("the table has no rows")
    ids = (
        df["rung"].astype(str).tolist()
        if "rung" in df.columns
        else [f"row {i + 1}" for i in range(len(df))]
    )
    keep, warnings = _usable(df, columns.loss, ids)
    arrays: dict[str, np.ndarray | None] = {}
    sources: dict[str, str] = {}
    for var in VARIABLES:
        name, arrays[var] = getattr(columns, var), None
        if name in df.columns:
            arrays[var], sources[var] = _positive(df, name, keep, ids), name
    loss = _positive(df, columns.loss, keep, ids)
    if len(loss) > 1 and np.ptp(loss) <= 1e-12 * np.max(loss):
        raise FitError(
            f"column '{columns.loss}' is {loss[0]:g} in every usable run: a constant loss "
            "has no trend to fit (a broken evaluation, or the wrong --loss-col?)"
        )
    if arrays["compute"] is None and arrays["params"] is not None and arrays["tokens"] is not None:
        # the usual estimate, Kaplan et al. 2020 eq. 2.1: 6 FLOPs per parameter per token
        arrays["compute"], sources["compute"] = 6.0 * arrays["params"] * arrays["tokens"], "6*N*D"
    for var in sorted(need):
        if arrays[var] is None:
            hint = " (or give params and tokens columns)" if var == "compute" else ""
            raise FitError(
                f"missing {var} column '{getattr(columns, var)}' (set {FLAGS[var]}{hint}); "
                + _listed(df)
            )
    kept = [i for i, k in zip(ids, keep, strict=True) if k]
    N, D, C = arrays["params"], arrays["tokens"], arrays["compute"]
    counts = {} if N is None else {sources["params"]: N}
    for name in PARAM_COUNTS:
        if name in df.columns and name not in counts:
            values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)[keep]
            if (np.isfinite(values) & (values > 0)).all():
                per_token = name == "flops_per_token"  # 6 FLOPs per parameter per token
                counts[name + ("/6" if per_token else "")] = values / 6 if per_token else values
    return Runs(loss, N, D, C, kept, sources, warnings, columns.loss, counts)


def _listed(df: pd.DataFrame) -> str:
    return f"columns are: {', '.join(map(str, df.columns))}"


def _usable(df: pd.DataFrame, loss_column: str, ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Which rows to fit: not diverged, and with a loss that is not NaN or +inf (what a diverged
    run leaves behind); each exclusion is named in a warning."""
    keep = np.ones(len(df), dtype=bool)
    warnings: list[str] = []
    if "diverged" in df.columns:
        div = truthy(df["diverged"])
        if div.any():
            warnings.append(f"excluded {div.sum()} diverged run(s): {_names(ids, div)}")
        keep &= ~div
    raw = df[loss_column]
    loss = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    text = raw.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    # text that is not a number is left in, for _positive to report as an error
    nan = keep & np.isnan(loss) & ~text
    inf = keep & (loss == np.inf)
    if nan.any():
        warnings.append(f"excluded {nan.sum()} run(s) with NaN loss: {_names(ids, nan)}")
    if inf.any():
        warnings.append(f"excluded {inf.sum()} run(s) with an infinite loss: {_names(ids, inf)}")
    keep &= ~(nan | inf)
    if not keep.any():
        raise FitError("no usable runs: every row is diverged or has a NaN or infinite loss")
    return keep, warnings


def _positive(df: pd.DataFrame, name: str, keep: np.ndarray, ids: list[str]) -> np.ndarray:
    """Column `name` over the kept rows; any value that is not a positive number is an error."""
    values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
    bad = keep & ~(np.isfinite(values) & (values > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FitError(
            f"column '{name}' has {bad.sum()} non-positive, NaN or non-numeric "
            f"value(s) (first: {ids[i]} = {shown(df[name].iloc[i])})"
        )
    return values[keep]


def shown(value) -> str:
    """A table value as a user wrote it: -1.0, nan, 'abc' (never np.float64(-1.0))."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{float(value):g}" if isinstance(value, float | np.floating) else str(int(value))
    return str(value)


# --------------------------------------------------------------------------------------------
# grouping and counting values


def budgets(C: np.ndarray, tol: float) -> np.ndarray:
    """Label runs by compute budget, 0 = smallest: walking up in compute, a run more than a
    factor (1 + tol) above the first run of the current budget starts the next one."""
    order = np.argsort(C, kind="stable")
    labels = np.empty(len(C), dtype=int)
    label, start = 0, C[order[0]]
    for i in order:
        if C[i] > start * (1 + tol):
            label, start = label + 1, C[i]
        labels[i] = label
    return labels


DISTINCT_RTOL = 0.05  # values closer than 5% count as one when asking "does x vary?"


def distinct(a: np.ndarray) -> int:
    """How many distinct values a positive array has, at DISTINCT_RTOL: token counts rounded
    to whole batches differ by a hair, and a law in a variable spanning 1% is not a law."""
    la = np.sort(np.log(a))
    return int(1 + (np.diff(la) > math.log1p(DISTINCT_RTOL)).sum()) if len(la) else 0


def one_ratio(runs: Runs) -> tuple[str, float] | None:
    """(column, D/N) when every run has the same tokens per parameter (at DISTINCT_RTOL) under
    one of the table's parameter counts, else None. On such a ladder N and D move together:
    L(N, D) = E + A/N^alpha + B/D^beta is two power laws of one variable, and which term is
    N's and which D's -- hence any compute-optimal allocation -- is not identified."""
    if runs.D is None:
        return None
    for name, count in runs.counts.items():
        if len(runs) and distinct(runs.D / count) < 2:
            return name, float(np.median(runs.D / count))
    return None


def points(runs: Runs, idx: np.ndarray) -> list[dict]:
    """The runs a fit used, by id and with the numbers it used (fits.json's "points")."""
    columns = {"C": runs.C, "N": runs.N, "D": runs.D, "loss": runs.loss}
    return [{"run": runs.ids[i]} | {k: float(v[i]) for k, v in columns.items()} for i in idx]
