"""Curve-law fit speed: `ladder fit CURVES.csv --law annealing` on 15 runs x ~500 points.

    python benchmarks/curve_fit_speed.py                         # synthetic WSD ladder
    python benchmarks/curve_fit_speed.py --curves results/default/curves.csv
    python benchmarks/curve_fit_speed.py --law multipower --bootstrap 50
    python benchmarks/curve_fit_speed.py --law annealing_sized   # one law across the 5 sizes

Synthetic data: five sizes, each a WSD ladder of three branches (500, 1000 and 2000 steps,
the last 20% cooling down) drawn from Tissue et al.'s law with 0.3% log-normal noise, every
step logged and thinned by the fit to 500 points per run. The time is the whole command:
reading the CSV, recomputing every step's lr, the fit per size, its bootstrap (default 200
resamples), the per-run errors and the held-out check (annealing_sized: one fit over every
run, at most 100 points per run, and the refit without the largest size). Target (issue 24):
a few seconds. CPU time is printed beside wall time: a shared machine's wall clock includes
other people's work.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ladder.fit import annealing  # noqa: E402
from ladder.fit.cli import main as fit_main  # noqa: E402
from ladder.fit.curve_entry import CURVE_LAWS, MAX_POINTS, SIZED_LAWS  # noqa: E402
from ladder.fit.curves import Curve  # noqa: E402
from ladder.schedule import Schedule  # noqa: E402


def synthetic_curves(path: str, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    rows = []
    for i, N in enumerate(np.geomspace(1e5, 1e7, 5)):
        params = {"L0": 2.0 + 2.0 / (1 + i), "A": 1.0, "alpha": 0.4, "C": 0.5}
        for steps in (500, 1000, 2000):
            sched = Schedule(steps, 3e-3, "wsd", 0.02, 0.0, 0.2)
            s = np.arange(1, steps + 1)
            curve = Curve(f"N{i}-S{steps}", s, np.ones(steps), sched.lrs(), N, 6 * N, sched)
            curve.warmup_steps = sched.warmup_steps
            L = annealing.loss_of(annealing.Design([(curve, s)], annealing.LAMBDA), params)
            L = L * np.exp(rng.normal(0, 0.003, steps))
            rows.append(
                pd.DataFrame(
                    {"rung": curve.run, "step": s, "tokens": s * 2048, "loss_nats": L}
                    | {"lr": curve.lrs, "schedule": "wsd", "lr_peak": 3e-3, "warmup_frac": 0.02}
                    | {"min_lr_frac": 0.0, "decay_frac": 0.2, "steps_total": steps}
                    | {"batch_tokens": 2048, "params_non_embedding": N, "flops_per_token": 6 * N}
                )
            )
    pd.concat(rows).to_csv(path, index=False)
    return 15


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", help="a curves.csv to time (default: synthetic)")
    laws = ["annealing", "multipower", "annealing_sized", "approach1"]
    ap.add_argument("--law", default="annealing", choices=laws)
    ap.add_argument("--bootstrap", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.curves or os.path.join(tmp, "curves.csv")
        if not args.curves:
            synthetic_curves(path)
        table = pd.read_csv(path)
        n_runs = table["rung"].nunique()
        out = os.path.join(tmp, "fits.json")
        argv = [path, "--law", args.law, "--bootstrap", str(args.bootstrap), "--out", out]
        wall, cpu = time.perf_counter(), time.process_time()
        assert fit_main(argv) == 0
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    kits = CURVE_LAWS | SIZED_LAWS
    print(
        f"{args.law} on {n_runs} runs, {len(table)} logged points "
        f"(<= {getattr(kits.get(args.law), 'MAX_POINTS', MAX_POINTS)} per run used), "
        f"bootstrap {args.bootstrap}: {wall:.2f} s wall, {cpu:.2f} s CPU"
    )


if __name__ == "__main__":
    main()
