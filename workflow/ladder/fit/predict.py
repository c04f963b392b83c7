"""Reading a fitted law back: its loss (`predict`) and its compute-optimal allocation
(`optimal_allocation`) from a fits.json entry, or from one of its bootstrap samples.
"""

from __future__ import annotations

import numpy as np

from ladder.fit.allocation import ComputeModel
from ladder.fit.chinchilla import chinchilla_allocation, chinchilla_loss, chinchilla_optimum
from ladder.fit.kaplan import kaplan_loss
from ladder.fit.laws import LAWS
from ladder.fit.power import power_loss
from ladder.fit.runs import VARIABLES, FitError


def _parse_key(key: str) -> dict:
    if key.startswith("power_"):
        rest = key.removeprefix("power_")
        x = rest.removesuffix("_no_offset")
        if x in VARIABLES:
            return {"law": "power", "x": x, "offset": not rest.endswith("_no_offset")}
    elif key in LAWS:
        return {"law": key}
    raise FitError(f"unknown law key '{key}'")


def _as_log(v, name: str) -> np.ndarray:
    if v is None:
        raise FitError(f"this law needs {name}=")
    return np.log(np.asarray(v, dtype=float))


def predict(law: str | dict, params: dict | None = None, N=None, D=None, C=None) -> np.ndarray:
    """Predicted loss (nats) of a fitted law at N (params), D (tokens) and/or C (FLOPs).

    `law` is a fits.json entry or its key; `params` defaults to the entry's "params" (pass one of
    its "samples" to draw a bootstrap band). Only the variables the law uses are read. Computed
    in log space, so exponents far outside the data do not overflow.
    """
    entry = _parse_key(law) if isinstance(law, str) else law
    if "skipped" in entry:
        raise FitError(f"cannot predict from a skipped law: {entry['skipped']}")
    p = params if params is not None else entry.get("params")
    if p is None:
        raise FitError("predict needs params (a law key alone has none)")
    kind = entry["law"]
    with np.errstate(divide="ignore", over="ignore"):
        if kind in ("power", "frontier"):
            s = "C" if kind == "frontier" else VARIABLES[entry["x"]]
            return power_loss(p, _as_log({"N": N, "D": D, "C": C}[s], s))
        if kind == "chinchilla":
            return chinchilla_loss(p, _as_log(N, "N"), _as_log(D, "D"))
        if kind == "kaplan":
            return kaplan_loss(p, _as_log(N, "N"), _as_log(D, "D"))
    raise FitError(f"law '{kind}' predicts an allocation, not a loss: use optimal_allocation")


def optimal_allocation(entry: dict, C, params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal (N_opt, D_opt) at compute C from a chinchilla, isoflop or frontier entry;
    `params` may be one of a chinchilla or isoflop entry's bootstrap "samples". Chinchilla's is
    the fitted law's minimum at fixed C under the table's own FLOP count (its allocation's
    "compute"); a fits.json written before that was recorded uses the closed form for
    C = c N D with its "flops_per_param_token" c."""
    C = np.asarray(C, dtype=float)
    alloc = entry.get("optimal_allocation") or {}
    if entry.get("law") == "chinchilla" and "compute" in alloc:
        N, D = chinchilla_optimum(
            params or entry["params"], C.ravel(), ComputeModel.from_json(alloc["compute"])
        )
        return N.reshape(C.shape), D.reshape(C.shape)
    if entry.get("law") == "chinchilla" and params is not None:
        alloc = chinchilla_allocation(params, alloc.get("flops_per_param_token", 6.0))
    elif entry.get("law") == "isoflop" and params is not None:
        alloc = params
    if "k_N" not in alloc:
        raise FitError(f"no compute-optimal allocation for law '{entry.get('law')}'")
    return alloc["k_N"] * C ** alloc["a"], alloc["k_D"] * C ** alloc["b"]
