"""Per-size tuning: choose the best sweep run, and write each rung's final spec.

    ladder tune --size L4-d128 --sweep-json '[<sweep rung rows>]' --evals e1.json ... --out S.json
    ladder rung --rung-json '<Rung JSON>' [--sweep S.json] --out runs/<rung>/rung.json

A sweep run that diverged or has no finite loss is recorded and never chosen; if none
is usable the size fails with a message naming its runs. The chosen learning rate (and
batch size) replace the plan's in the rung spec that `ladder train` reads.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ladder.artifacts import write_text
from ladder.plan import Rung, retarget


class TuneError(ValueError):
    pass


def choose(candidates: list[dict]) -> dict:
    usable = [c for c in candidates if c["loss_nats"] is not None and math.isfinite(c["loss_nats"])]
    if not usable:
        names = ", ".join(c["rung"] for c in candidates)
        raise TuneError(f"every sweep run diverged or has no loss: {names}")
    return min(usable, key=lambda c: c["loss_nats"])


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
        loss = json.loads(Path(path).read_text()).get("loss_nats")
        candidates.append(
            {k: run[k] for k in ("id", "lr", "batch_tokens", "tokens")}
            | {"rung": run["id"], "loss_nats": loss}
        )
    try:
        best = choose(candidates)
    except TuneError as e:
        print(f"ladder tune: error: size {args.size}: {e}", file=sys.stderr)
        return 2
    summary = {"size": args.size, "candidates": candidates, "best": best}
    write_text(args.out, json.dumps(summary, indent=2) + "\n")
    print(
        f"{args.size}: lr {best['lr']:.4g}, batch {best['batch_tokens']} tokens "
        f"(loss {best['loss_nats']:.4f} of {len(candidates)} runs)"
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
