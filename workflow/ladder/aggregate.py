"""Collect every rung's plan row, train.json and eval.json into one tidy runs.csv,
and every rung's train_log.csv into curves.csv (the learning curves, long format).

A rung whose train.json or eval.json says it diverged, or whose loss is not finite, is
kept with `diverged = 1` (and `diverged_at_step`) so the fitter can exclude it *and say
so*; nothing is dropped here, and no NaN is written as a loss (a diverged rung's is empty).
Each row says where it came from: `source` (trained, or reused from the run store),
`store_key` and `source_study` (the study that trained it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from ladder.artifacts import STORE_JSON, write_text
from ladder.estimates import on_gpu

# train.json / eval.json keys copied into runs.csv (plan columns come from the rung)
TRAIN_KEYS = ("wall_s", "tokens_per_s", "mfu", "device", "precision", "world_size", "steps")
EVAL_KEYS = ("loss_nats", "bits_per_byte", "eval_tokens")


def final_spec(plan_row: dict, run_dir: Path) -> dict:
    """The plan row with the rung's final spec over it (rung.json: a swept size's tuned
    lr/batch live there)."""
    spec = run_dir / "rung.json"
    if spec.exists():
        tuned = json.loads(spec.read_text())
        plan_row = {**plan_row, **{k: v for k, v in tuned.items() if k in plan_row}}
        plan_row["flops"] = plan_row["flops_per_token"] * plan_row["tokens"]
    return plan_row


def rung_row(plan_row: dict, run_dir: Path) -> dict:
    train = json.loads((run_dir / "train.json").read_text())
    evaluation = json.loads((run_dir / "eval.json").read_text())
    plan_row = final_spec(plan_row, run_dir)
    row = {"rung": plan_row["id"], **{k: v for k, v in plan_row.items() if k != "id"}}
    # the trainer's own counts (from the real model) win over the plan's arithmetic
    for key in ("params_total", "params_embedding", "params_head", "params_non_embedding"):
        if key in train:
            row[key] = train[key]
    row.update({k: train.get(k) for k in TRAIN_KEYS})
    row["train_loss_nats"] = train.get("loss_nats")
    row.update({k: evaluation.get(k) for k in EVAL_KEYS})
    gpus = plan_row.get("gpus", 1) if on_gpu(train) else 0
    row["gpu_hours"] = (train.get("wall_s") or 0) * gpus / 3600
    row.update(source_columns(run_dir))
    loss = row["loss_nats"]
    said = bool(train.get("diverged")) or bool(evaluation.get("diverged"))
    row["diverged"] = int(said or loss is None or not math.isfinite(loss))
    row["diverged_at_step"] = train.get("diverged_at_step")
    if row["diverged"]:
        row["loss_nats"] = row["bits_per_byte"] = None
    return row


def source_columns(run_dir: Path) -> dict:
    """Where the row came from (store.json, ladder.store): `source` trained (here) or reused
    (copied from the run store), its `store_key`, and `source_study`, the study that trained
    it. A run without store.json (trained before the store existed) was trained here."""
    path = run_dir / STORE_JSON
    record = json.loads(path.read_text()) if path.exists() else {"source": "trained"}
    here = run_dir.absolute().parent.parent.name  # results/<study>/runs/<rung>
    return {
        "source": record["source"],
        "store_key": record.get("key"),
        "source_study": record.get("from_study") or here,
    }


# curves.csv: after the log's columns, each run's schedule (so that `ladder fit --law
# annealing` recomputes the lr of *every* step, not only the logged ones: ladder.schedule)
# and its size and FLOPs per token (Approach 1's compute, the size-aware law's N)
CURVE_SPEC = {
    "schedule": "schedule",
    "lr_peak": "lr",
    "warmup_frac": "warmup_frac",
    "min_lr_frac": "min_lr_frac",
    "decay_frac": "decay_frac",
    "steps_total": "steps",
    "batch_tokens": "batch_tokens",
    "params_non_embedding": "params_non_embedding",
    "params_total": "params_total",
    "flops_per_token": "flops_per_token",
}


def curves(plan_rows: list[dict], runs_dir: Path) -> pd.DataFrame:
    """Every rung's train_log.csv, long format: rung, the log's columns, CURVE_SPEC's and
    `diverged` (0/1, from train.json)."""
    frames = []
    for plan_row in plan_rows:
        rid = plan_row["id"]
        spec = final_spec(plan_row, runs_dir / rid)
        train = json.loads((runs_dir / rid / "train.json").read_text())
        log = pd.read_csv(runs_dir / rid / "train_log.csv")
        log.insert(0, "rung", rid)
        for col, key in CURVE_SPEC.items():
            # the trainer's own parameter counts win over the plan's arithmetic (as runs.csv)
            log[col] = train.get(key, spec.get(key)) if key.startswith("params") else spec.get(key)
        log["diverged"] = int(bool(train.get("diverged")))  # the curve laws leave these out
        frames.append(log)
    return pd.concat(frames, ignore_index=True)


# tasks.csv: one row per (run, step, task), long form (ladder.scoring's summaries); the
# contract `ladder fit --law task` reads. params is params_non_embedding, runs.csv's N.
# final: the rung's last checkpoint (False: a model kept at an intermediate step, config
# tasks.checkpoints; a WSD size's stable-phase ones are under its stable run, <size>-stable).
TASK_COLUMNS = ["run", "step", "tokens", "params", "task", "acc", "acc_norm", "bpb", "chance",
                "n_examples", "final"]  # fmt: skip


def task_table(summaries: list[str | Path]) -> pd.DataFrame:
    """Every task summary JSON (`ladder score --out`: one summary, or with --checkpoints a
    list of them) as tasks.csv's rows."""
    rows = []
    for path in summaries:
        found = json.loads(Path(path).read_text())
        rows += found if isinstance(found, list) else [found]
    table = pd.DataFrame([{k: r.get(k) for k in TASK_COLUMNS} for r in rows], columns=TASK_COLUMNS)
    return table.sort_values(["run", "task", "step"], ignore_index=True)


def task_columns(tasks: pd.DataFrame) -> pd.DataFrame:
    """runs.csv's per-task columns from the final checkpoints: task_<name>_{acc,acc_norm,bpb},
    one row per run (index: run)."""
    final = tasks[tasks["final"].astype(bool)]
    wide = final.pivot(index="run", columns="task", values=["acc", "acc_norm", "bpb"])
    wide.columns = [f"task_{task}_{metric}" for metric, task in wide.columns]
    return wide


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder aggregate", description=__doc__.splitlines()[0])
    ap.add_argument("--rungs-json", required=True, help="plan rows of every rung, as JSON")
    ap.add_argument("--runs-dir", required=True, help="holds <rung>/{train,eval}.json")
    ap.add_argument("--out", required=True, help="runs.csv")
    ap.add_argument("--curves", help="curves.csv (learning curves of every rung)")
    ap.add_argument("--task-scores", nargs="*", default=[], help="task summaries (ladder score)")
    ap.add_argument("--tasks-out", help="tasks.csv (every run x checkpoint x task)")
    args = ap.parse_args(argv)
    runs_dir = Path(args.runs_dir)
    plan_rows = json.loads(args.rungs_json)
    missing = [
        f"{runs_dir / r['id'] / f}"
        for r in plan_rows
        for f in ("train.json", "eval.json")
        if not (runs_dir / r["id"] / f).exists()
    ]
    if missing:
        print(f"ladder aggregate: error: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    table = pd.DataFrame([rung_row(r, runs_dir / r["id"]) for r in plan_rows])
    if args.tasks_out:
        tasks = task_table(args.task_scores)
        write_text(args.tasks_out, tasks.to_csv(index=False))
        if len(tasks):
            table = table.join(task_columns(tasks), on="rung")
    write_text(args.out, table.to_csv(index=False))
    if args.curves:
        write_text(args.curves, curves(plan_rows, runs_dir).to_csv(index=False))
    n_bad = int(table["diverged"].sum())
    print(f"aggregated {len(table)} rungs into {args.out} ({n_bad} diverged)")
    return 0
