"""Every run of a study in one table (`ladder status`), read from the study's files alone.

    ladder status [--configfile X] [--directory D] [--watch [S]] [--json]

It reads the plan, each run's directory (rung.json, train.json, eval.json, ckpt/), the job
logs (results/<study>/logs/) and Snakemake's own bookkeeping in D/.snakemake/ (its lock and
its incomplete-job markers), and never starts or asks anything: it works while Snakemake
runs, after it stopped, and for a SLURM study from the login node. States:

    planned   nothing started (a job Snakemake has not handed out yet is planned too)
    queued    handed to the executor but not started: a SLURM job waiting in the queue, or
              a failed or stopped job Snakemake has resubmitted
    running   its log grew in the last `--stale` seconds, or Snakemake runs it now
              (step, tokens and training loss from the last progress line, tokens/s, ETA)
    stopped   interrupted, no longer running (a signal, Snakemake stopped, a job killed);
              the next `snakemake` resumes it from its checkpoint
    failed    the job ended with an error (the log's last error line)
    diverged  the loss became NaN or inf
    trained   train.json written, evaluation not yet (or running: `evaluating`)
    done      evaluated: held-out loss (nats/token), bits/byte, wall time, GPU-hours
    reused    done, its training copied from the run store (store.json; ladder.store):
              it spent no GPU-hours here, and the GPU-hours it saved are counted

GPU-hours, as runs.csv counts them: wall time × the rung's GPUs, none for a run on the CPU.
Left: the plan's estimate (plan.csv's est_gpu_hours, at cluster.flops_per_s or the FLOP/s
`ladder plan` assumes) for what is not done, less the running runs' share already trained
(a WSD size's stable run counted once, each branch for its cooldown only);
the FLOP/s per device the finished runs reached is printed as a value for
cluster.flops_per_s.
Running and stopped are told apart by the log's age and Snakemake's lock: a rung whose
process died without a word (SIGKILL, a lost node) shows as running until its log is
`--stale` seconds old.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ladder.artifacts import CHECKPOINT, EVAL_JSON, PLAN_CSV, RUNG_JSON, STORE_JSON, TRAIN_JSON
from ladder.config import load_config
from ladder.errors import ConfigError, failed
from ladder.estimates import Throughput, gpu_hours, on_gpu
from ladder.plan import own_steps, plan, sweep_plan, wsd_plan
from ladder.rung import Rung, format_count, size_of
from ladder.tracking import TENSORBOARD_DIR

STATES = (
    "planned",
    "queued",
    "running",
    "stopped",
    "failed",
    "diverged",
    "trained",
    "done",
    "reused",
)
TAIL_BYTES = 256 * 1024  # how much of a log is read (its last lines)

# the trainer's lines (ladder.train: progress_line, the signal stop, errors)
PROGRESS = re.compile(
    r"^(?P<id>\S+) step (?P<step>\d+)/(?P<steps>\d+) \| tokens (?P<tokens>\S+) \| "
    r"loss (?P<loss>\S+) \| (?P<rate>[\d,.]+) tok/s(?: \| MFU (?P<mfu>[\d.]+)%)? \| "
    r"ETA (?P<eta>\S+)$"
)
SIGNALLED = re.compile(r": (?P<sig>SIG\w+) at step (?P<step>\d+); checkpoint saved$")
SEGMENT_DONE = re.compile(r": saved the state at step (?P<step>\d+) to ")
DIVERGED = re.compile(r"^ladder \w+: diverged: (?P<msg>.*)$")
ERROR = re.compile(
    r"^(ladder \w+: (?:config |data )?error: .*"
    r"|[A-Za-z_][\w.]*(Error|Exception|Interrupt)(: .*)?|Killed)$"
)


@dataclass
class RunStatus:
    """One run's row: what it is, its state, and the numbers that state has."""

    rung: str
    kind: str  # ladder | sweep | stable (a WSD size's warmup-stable run)
    state: str
    step: int | None = None
    steps: int | None = None
    tokens: float | None = None
    loss: float | None = None  # running: training loss; done: held-out loss (nats/token)
    tokens_per_s: float | None = None
    eta_s: float | None = None
    bits_per_byte: float | None = None
    wall_s: float | None = None
    train_s: float | None = None  # in training steps only (train.json)
    gpu_hours: float | None = None  # spent (done runs; none for a reused one)
    gpu_hours_saved: float | None = None  # reused: what its training took where it ran
    est_gpu_hours: float | None = None  # the plan's estimate for the run's own steps
    first_step: int = 0  # where its own training starts (a WSD branch: at its cooldown)
    note: str = ""


# ----------------------------------------------------------------------------- reading


def parse_count(text: str) -> float:
    """'492K' -> 492000.0 (format_count's output back)."""
    units = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    return float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)


def parse_duration(text: str) -> float | None:
    """ladder.train.fmt_time's '1h05m' / '0m23s' -> seconds."""
    m = re.fullmatch(r"(?:(\d+)h)?(\d+)m(?:(\d+)s)?", text)
    if not m:
        return None
    h, mins, s = (int(g) if g else 0 for g in m.groups())
    return 3600 * h + 60 * mins + s


def tail_lines(path: Path) -> list[str]:
    """The last lines of a log (at most TAIL_BYTES of it)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - TAIL_BYTES))
        text = f.read().decode("utf-8", "replace")
    lines = text.splitlines()
    return lines[1:] if size > TAIL_BYTES else lines  # the first may be cut


@dataclass
class LogEvents:
    """What a job log says: its last progress line, and how the job ended, if it did."""

    progress: dict[str, Any] | None = None
    end: str | None = None  # diverged | failed | stopped | segment
    message: str = ""
    step: int | None = None  # the signal's or the segment's step


def read_log(path: Path) -> LogEvents:
    ev = LogEvents()
    for line in tail_lines(path):
        line = line.rstrip()
        if m := PROGRESS.match(line):
            ev.progress = m.groupdict()
            ev.end, ev.message = None, ""  # a later attempt in the same log
        elif m := DIVERGED.match(line):
            ev.end, ev.message = "diverged", m["msg"]
        elif m := SIGNALLED.search(line):
            ev.end, ev.message, ev.step = "stopped", f"{m['sig']} at step {m['step']}", int(m[2])
        elif m := SEGMENT_DONE.search(line):
            ev.end, ev.step = "segment", int(m["step"])
        elif ERROR.match(line) and ev.end != "diverged":
            ev.end, ev.message = "failed", line
    return ev


class Snakemake:
    """Snakemake's bookkeeping in <workdir>/.snakemake: whether it holds a lock on the study
    (it is running), and which outputs belong to jobs it started and has not finished
    (with their start time and, on SLURM, the job id)."""

    def __init__(self, workdir: Path, results: str) -> None:
        root = workdir / ".snakemake"
        self.locked = any(
            results + "/" in f.read_text() for f in (root / "locks").glob("*.lock") if f.is_file()
        )
        self.incomplete: dict[str, tuple[float, str | None]] = {}
        for path in (root / "incomplete").rglob("*"):
            if not path.is_file() or path.name == "migration_underway":
                continue
            parts = path.relative_to(root / "incomplete").parts
            encoded = "".join(p.removeprefix("@") for p in parts)
            try:
                name = base64.urlsafe_b64decode(encoded).decode()
                job = json.loads(path.read_text() or "{}").get("external_jobid")
            except (ValueError, OSError):
                continue
            self.incomplete[os.path.normpath(name)] = (path.stat().st_mtime, job)

    def started(self, output: str) -> tuple[float, str | None] | None:
        """(when, external job id) if a running Snakemake handed out the job of `output`."""
        return self.incomplete.get(os.path.normpath(output)) if self.locked else None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def plan_estimates(results: Path) -> tuple[dict[str, float], str | None]:
    """plan.csv's est_gpu_hours per rung id, and the throughput they assume (est_flops_per_s,
    est_basis), where plan.csv has them."""
    try:
        with open(results / PLAN_CSV) as f:
            rows = [r for r in csv.DictReader(f) if r.get("est_gpu_hours") not in (None, "")]
        est = {r["id"]: float(r["est_gpu_hours"]) for r in rows}
    except (OSError, ValueError, KeyError):
        return {}, None
    if not rows or not rows[0].get("est_flops_per_s"):
        return est, "plan.csv" if est else None
    first = rows[0]
    return est, f"{float(first['est_flops_per_s']):.3g} FLOP/s per GPU, {first['est_basis']}"


# ----------------------------------------------------------------------------- one run


def run_status(
    rung: Rung, kind: str, results: Path, workdir: Path, smk: Snakemake, stale_s: float, now
) -> RunStatus:
    """The state of one training run (a rung or a sweep run) from its files."""
    rel = os.path.relpath(results, workdir)
    run_dir = results / "runs" / rung.id
    try:  # the final spec (a tuned lr or batch size changes the steps)
        spec = Rung.from_arg(f"@{run_dir / RUNG_JSON}")
    except (OSError, ValueError, TypeError):
        spec = rung
    st = RunStatus(rung.id, kind, "planned", steps=spec.steps)
    train = read_json(run_dir / TRAIN_JSON)
    if train is not None:
        return finished(st, spec, train, run_dir, results, rel, smk, stale_s, now)
    log = results / "logs" / "train" / f"{rung.id}.log"
    started = smk.started(f"{rel}/runs/{rung.id}/{TRAIN_JSON}")
    return in_progress(st, spec, log if log.exists() else None, started, run_dir, stale_s, now)


def finished(st, spec, train, run_dir, results, rel, smk, stale_s, now) -> RunStatus:
    st.step = st.steps = train.get("steps")
    st.tokens = train.get("tokens")
    st.tokens_per_s = train.get("tokens_per_s")
    st.wall_s, st.train_s = train.get("wall_s"), train.get("train_s")
    # as runs.csv counts them (ladder.aggregate): wall time × GPUs, and 0 for a CPU run
    st.gpu_hours = (st.wall_s or 0) * spec.gpus / 3600 if on_gpu(train) else 0.0
    loss = train.get("val_loss_nats")
    if train.get("diverged") or loss is None or not math.isfinite(loss):
        st.state, st.note = "diverged", "train.json: the loss is not finite"
        if train.get("diverged_at_step") is not None:  # recorded as data (ladder.train)
            st.note = (
                f"diverged at step {train['diverged_at_step']} (loss {train.get('diverged_loss')}"
                f", lr {train.get('diverged_lr', float('nan')):.3g}); recorded in train.json"
            )
        return st
    source = read_json(run_dir / STORE_JSON) or {}
    if source.get("source") == "reused":  # spent by the study that trained it, not here
        st.gpu_hours, st.gpu_hours_saved = 0.0, source.get("gpu_hours_saved") or 0.0
        st.note = f"reused from the run store (trained by study {source.get('from_study')})"
    ev = read_json(run_dir / EVAL_JSON)
    if ev is not None:
        st.state = "reused" if st.gpu_hours_saved is not None else "done"
        st.loss, st.bits_per_byte = ev.get("loss_nats"), ev.get("bits_per_byte")
        return st
    st.state, st.loss = "trained", loss
    st.note = "evaluation pending (loss: the learning curve's last val loss)"
    log = results / "logs" / "evaluate" / f"{spec.id}.log"
    if smk.started(f"{rel}/runs/{spec.id}/{EVAL_JSON}") or _fresh(log, stale_s, now):
        st.note = "evaluating"
    elif log.exists() and (e := read_log(log)).end == "failed":
        st.state, st.note = "failed", f"evaluate: {e.message}"
    return st


def in_progress(st, spec, log, started, run_dir, stale_s, now) -> RunStatus:
    """A run without train.json: planned, queued, running, stopped, failed or diverged."""
    if started and (log is None or started[0] > log.stat().st_mtime):
        st.state = "queued"  # handed out (again) and not started yet
        st.note = f"SLURM job {started[1]}" if started[1] else ""
        return st
    if log is None:
        return st
    ev = read_log(log)
    if ev.progress:
        p = ev.progress
        st.step, st.steps = int(p["step"]), int(p["steps"])
        exact = st.steps == spec.steps  # the line's 3-digit token count, else
        st.tokens = st.step * spec.batch_tokens if exact else parse_count(p["tokens"])
        st.loss = float(p["loss"])
        st.tokens_per_s = float(p["rate"].replace(",", ""))
    if ev.end == "stopped":  # the checkpoint's step, after the last progress line
        st.step = ev.step
        st.tokens = ev.step * spec.batch_tokens if st.steps == spec.steps else None
    age = now - log.stat().st_mtime
    ckpt = (run_dir / CHECKPOINT).exists()
    resumes = "resumes from its checkpoint" if ckpt else "restarts from step 0"
    if ev.end in ("diverged", "failed"):
        st.state, st.note = ev.end, ev.message
    elif ev.end == "stopped" and started:  # a SLURM job requeued after preemption
        st.state, st.note = "queued", f"requeued after {ev.message}; {resumes}"
    elif ev.end == "stopped":
        st.state, st.note = "stopped", f"{ev.message}; {resumes}"
    elif started or age < stale_s:
        st.state = "running"
        if ev.progress:
            eta = parse_duration(ev.progress["eta"])
            st.eta_s = None if eta is None else max(0.0, eta - age)
        if age >= stale_s:
            st.note = f"no log line for {_ago(age)}"
        elif not ev.progress:
            st.note = "starting"
    else:
        st.state = "stopped"
        st.note = f"no progress for {_ago(age)}; {resumes}"
    return st


def stable_status(size, wsd, results, workdir, smk, stale_s, now, branches) -> RunStatus:
    """A WSD size's warmup-stable run: trained in segments (logs/wsd_segment/<size>/), each
    ending where a branch's cooldown starts; done once every branch has its state."""
    stable = wsd["stable"]
    last_stop = max(wsd["stops"].values())
    st = RunStatus(stable.id, "stable", "planned", steps=last_stop)
    if all(b.state in ("trained", "done", "reused", "diverged") for b in branches):
        st.state, st.step = "done", last_stop
        return st
    logs = sorted((results / "logs" / "wsd_segment" / size).glob("*.log"), key=_mtime)
    rel = os.path.relpath(results, workdir)
    segments = [smk.started(f"{rel}/runs/{stable.id}/{b}.state.pt") for b in wsd["stops"]]
    started = max((s for s in segments if s), default=None)  # the latest handed out
    log = logs[-1] if logs else None
    if log is not None and (ev := read_log(log)).end == "segment":
        st.step = ev.step
        if ev.step >= last_stop:
            st.state = "done"
        elif started:
            st.state = "queued"
        else:
            st.state, st.note = "stopped", f"at step {ev.step}, between segments"
        return st
    out = in_progress(st, stable, log, started, results / "runs" / stable.id, stale_s, now)
    out.steps = last_stop
    return out


def _fresh(path: Path, stale_s: float, now: float) -> bool:
    return path.exists() and now - path.stat().st_mtime < stale_s


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _ago(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min" if s >= 60 else f"{s:.0f} s"


# ----------------------------------------------------------------------------- the study


def study_status(
    configfile: str | os.PathLike | dict,
    workdir: str | os.PathLike = ".",
    stale_s: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Every run of the study, in the order they train (sweeps, WSD stable runs, rungs),
    and the totals. `stale_s` (default: 6 × train.log_every_s, at least 2 min) is how old
    a log may be for its run to count as running."""
    workdir = Path(workdir)
    study = load_config(configfile)
    now = time.time() if now is None else now
    stale_s = stale_s if stale_s is not None else max(120.0, 6 * study.train.log_every_s)
    results = workdir / "results" / study.study
    smk = Snakemake(workdir, os.path.relpath(results, workdir))
    rungs = plan(study)
    sweeps, wsd = sweep_plan(study, rungs), wsd_plan(study, rungs)

    def one(r: Rung, kind: str) -> RunStatus:
        return run_status(r, kind, results, workdir, smk, stale_s, now)

    rows = [one(s, "sweep") for runs in sweeps.values() for s in runs]
    ladder = [one(r, "ladder") for r in rungs]
    for size, w in wsd.items():
        branches = [b for b, r in zip(ladder, rungs, strict=True) if size_of(r) == size]
        rows.append(stable_status(size, w, results, workdir, smk, stale_s, now, branches))
    rows += ladder
    basis = estimate(rows, own_steps(study, rungs), results, study.cluster.flops_per_s)
    return {
        "study": study.study,
        "results": str(results),
        "time": now,
        "snakemake_running": smk.locked,
        "runs": [asdict(s) for s in rows],
        "totals": totals(rows, basis),
        "tracking": list(study.tracking.tools),
    }


def estimate(
    rows, runs: dict[str, tuple[Rung, int, int]], results: Path, flops_per_s
) -> dict[str, Any]:
    """Each run's estimated GPU-hours (est_gpu_hours): plan.csv's, else (sweeps, WSD stable
    runs, no plan.csv yet) at the throughput `ladder plan` assumes (cluster.flops_per_s, else
    plan.DEFAULT_FLOPS_PER_S), for the steps the run trains itself (plan.own_steps: a WSD
    stable run to its last branch point, a branch from there), as `ladder plan`'s "trained in
    all". Returns that basis, and the FLOP/s per device the finished runs reached in their
    training steps (a value for cluster.flops_per_s)."""
    planned, basis = plan_estimates(results)
    throughput = Throughput.choose(None, flops_per_s)
    rungs = {rid: run[0] for rid, run in runs.items()}
    for s in rows:
        r, s.first_step, end = runs[s.rung]
        whole = planned.get(s.rung) or gpu_hours(r, throughput.flops_per_s)
        s.est_gpu_hours = whole * (end - s.first_step) / r.steps
    done = [s for s in rows if s.train_s and s.state in ("trained", "done")]
    device_s = sum(s.train_s * rungs[s.rung].gpus for s in done)
    measured = sum(rungs[s.rung].row()["flops"] for s in done) / device_s if device_s else None
    default = f"{throughput.flops_per_s:.3g} FLOP/s per GPU, {throughput.basis}"
    return {"basis": basis or default, "measured_flops_per_s": measured}


def totals(rows: list[RunStatus], basis: dict[str, Any]) -> dict[str, Any]:
    counts = {state: sum(s.state == state for s in rows) for state in STATES}
    left, unknown = 0.0, 0
    for s in rows:
        if s.state in ("done", "reused", "trained", "diverged"):
            continue
        if s.est_gpu_hours is None:
            unknown += 1
            continue
        own = (s.steps or 0) - s.first_step  # steps the run trains itself
        frac = 1 - max(0, (s.step or 0) - s.first_step) / own if own > 0 else 1
        left += s.est_gpu_hours * max(0.0, frac)
    return {
        "runs": len(rows),
        "counts": counts,
        "gpu_hours_spent": sum(s.gpu_hours or 0 for s in rows),
        "gpu_hours_saved": sum(s.gpu_hours_saved or 0 for s in rows),
        "gpu_hours_left": None if unknown and not left else left,
        "gpu_hours_left_unknown_runs": unknown,
        "estimate_basis": basis["basis"],
        "measured_flops_per_s": basis["measured_flops_per_s"],
        "wall_hours": sum(s.wall_s or 0 for s in rows) / 3600,
    }


# ----------------------------------------------------------------------------- the table


def _num(x, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def _dur(s) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


COLUMNS = [  # header, width, align, cell
    ("run", 0, "<", lambda s: s["rung"]),
    ("state", 9, "<", lambda s: s["state"]),
    ("step", 11, ">", lambda s: f"{s['step']}/{s['steps']}" if s["step"] is not None else ""),
    ("tokens", 8, ">", lambda s: format_count(s["tokens"]) if s["tokens"] else ""),
    ("loss", 7, ">", lambda s: _num(s["loss"], ".4f")),
    ("tok/s", 9, ">", lambda s: _num(s["tokens_per_s"], ",.0f")),
    ("ETA", 7, ">", lambda s: _dur(s["eta_s"])),
    ("bits/B", 7, ">", lambda s: _num(s["bits_per_byte"], ".4f")),
    ("wall", 7, ">", lambda s: _dur(s["wall_s"])),
    ("GPU-h", 8, ">", lambda s: _gpu_h(s)),
    ("note", 0, "<", lambda s: s["note"]),
]


def _gpu_h(s) -> str:
    if s["gpu_hours"] is not None:
        return f"{s['gpu_hours']:.3g}"
    return f"~{s['est_gpu_hours']:.3g}" if s["est_gpu_hours"] is not None else ""


def render(status: dict[str, Any]) -> str:
    """The table: one line per run, then the totals (and where the curves are)."""
    runs = status["runs"]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["time"]))
    smk = "Snakemake is running" if status["snakemake_running"] else "Snakemake is not running"
    lines = [f"study {status['study']} · {status['results']} · {stamp} · {smk}", ""]
    first = max([len("run"), *(len(s["rung"]) for s in runs)])
    for row in [[h for h, *_ in COLUMNS], *([cell(s) for *_, cell in COLUMNS] for s in runs)]:
        cells = [
            f"{text:{align}{width or first}}"
            for (_, width, align, _), text in zip(COLUMNS[:-1], row, strict=False)
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    t = status["totals"]
    counts = {k: v for k, v in t["counts"].items() if v and k != "done"}
    done = f"{t['counts']['done'] + t['counts']['reused']}/{t['runs']} done"
    lines += ["", "total: " + ", ".join([done, *(f"{n} {k}" for k, n in counts.items())])]
    spent, left = t["gpu_hours_spent"], t["gpu_hours_left"]
    if left is None:
        left_text = "left: unknown"
    else:
        left_text = f"~{left:.3g} left ({t['estimate_basis']})"
        if t["gpu_hours_left_unknown_runs"]:
            left_text += f"; {t['gpu_hours_left_unknown_runs']} runs without an estimate"
    saved = (
        f", {t['gpu_hours_saved']:.3g} saved by {t['counts']['reused']} reused runs"
        if t["counts"]["reused"]
        else ""
    )
    lines.append(f"GPU-hours: {spent:.3g} spent{saved}, {left_text}; ~x: a run's estimate")
    if t["measured_flops_per_s"]:
        lines.append(
            f"finished runs: {t['wall_hours']:.3g} h of wall time (a CPU run counts no "
            f"GPU-hours), {t['measured_flops_per_s']:.3g} FLOP/s per device while training"
        )
    if "tensorboard" in status["tracking"]:
        lines.append(f"curves: tensorboard --logdir {status['results']}/{TENSORBOARD_DIR}")
    if "wandb" in status["tracking"]:
        lines.append(
            f"W&B: {status['results']}/wandb (offline runs: "
            f"wandb sync {status['results']}/wandb/offline-run-*)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder status", description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/config.yaml", help="study YAML")
    ap.add_argument(
        "-d",
        "--directory",
        default=".",
        help="where Snakemake runs (results/ and .snakemake/ are there; default: here)",
    )
    ap.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=10.0,
        metavar="S",
        help="redraw every S seconds (default 10) until Ctrl-C",
    )
    ap.add_argument("--json", action="store_true", help="print the status as JSON")
    ap.add_argument(
        "--stale",
        type=float,
        metavar="S",
        help="a log this many seconds old means its run stopped "
        "(default: 6 × train.log_every_s, at least 120)",
    )
    args = ap.parse_args(argv)
    try:
        while True:
            status = study_status(args.configfile, args.directory, args.stale)
            text = json.dumps(status, indent=2) if args.json else render(status)
            if args.watch:
                sys.stdout.write("\033[H\033[J")  # home, clear the screen
            print(text, flush=True)
            if not args.watch:
                return 0
            time.sleep(args.watch)
    except ConfigError as e:
        return failed("ladder status", e)
    except KeyboardInterrupt:
        return 0
