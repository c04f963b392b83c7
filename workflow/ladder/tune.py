"""Per-size tuning: choose the best sweep run, and write each rung's final spec.

    ladder tune --size L4-d128 --sweep-json '[<sweep rung rows>]' --evals e1.json ... --out S.json
    ladder rung --rung-json '<Rung JSON>' [--sweep S.json] --out runs/<rung>/rung.json

A sweep run that diverged (eval.json `diverged: true`, which a high learning rate is
expected to do) or has no finite loss is recorded with `diverged: true` and never chosen;
only if every run of the size diverged does the size fail, with a message naming them.
The chosen learning rate (and batch size) replace the plan's in the rung spec that
`ladder train` reads.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ladder.artifacts import write_text
from ladder.rung import Rung, retarget


class TuneError(ValueError):
    pass


def usable(c: dict) -> bool:
    loss = c["loss_nats"]
    return not c.get("diverged") and loss is not None and math.isfinite(loss)


def choose(candidates: list[dict]) -> dict:
    """The candidate with the lowest loss among those that did not diverge."""
    ok = [c for c in candidates if usable(c)]
    if not ok:
        names = ", ".join(f"{c['rung']} (lr {c['lr']:.3g})" for c in candidates)
        raise TuneError(
            f"every sweep run diverged or has no loss: {names}; lower train.lr or the "
            "ladder.sweep.lr multipliers"
        )
    return min(ok, key=lambda c: c["loss_nats"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder tune", description="choose a size's hyperparameters")
    ap.add_argument("--size", required=True)
    ap.add_argument("--sweep-json", required=True, help="the sweep runs' rungs, as a JSON list")
    ap.add_argument("--evals", nargs="+", required=True, help="their eval.json, in order")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    runs = json.loads(args.sweep_json)
    if len(runs) != len(args.evals):
        print("ladder tune: error: one eval.json per sweep run is needed", file=sys.stderr)
        return 2
    candidates = []
    for run, path in zip(runs, args.evals, strict=True):
        evaluation = json.loads(Path(path).read_text())
        loss = evaluation.get("loss_nats")
        candidate = {k: run[k] for k in ("id", "lr", "batch_tokens", "tokens")}
        candidate |= {"rung": run["id"], "loss_nats": loss}
        candidate["diverged"] = not usable(candidate | {"diverged": evaluation.get("diverged")})
        candidates.append(candidate)
    try:
        best = choose(candidates)
    except TuneError as e:
        print(f"ladder tune: error: size {args.size}: {e}", file=sys.stderr)
        return 2
    summary = {"size": args.size, "candidates": candidates, "best": best}
    write_text(args.out, json.dumps(summary, indent=2) + "\n")
    n_div = sum(c["diverged"] for c in candidates)
    print(
        f"{args.size}: lr {best['lr']:.4g}, batch {best['batch_tokens']} tokens "
        f"(loss {best['loss_nats']:.4f} of {len(candidates)} runs"
        + (f"; {n_div} diverged, not chosen)" if n_div else ")")
    )
    return 0


def main_rung(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder rung", description="write a rung's final spec")
    ap.add_argument("--rung-json", required=True, help="the planned rung")
    ap.add_argument("--sweep", help="the size's sweep summary (ladder tune --out)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    rung = Rung.from_json(args.rung_json)
    if args.sweep:
        best = json.loads(Path(args.sweep).read_text())["best"]
        rung = retarget(rung, lr=best["lr"], batch_tokens=best["batch_tokens"])
    write_text(args.out, rung.to_json() + "\n")
    return 0
