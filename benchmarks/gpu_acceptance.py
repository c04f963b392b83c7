"""GPU acceptance: the first thing to run wherever a GPU is at hand (one command, < 8 min).

    python benchmarks/gpu_acceptance.py                        # on a CUDA machine (one H200)
    python benchmarks/gpu_acceptance.py --device cpu --quick   # smoke test, ~1 minute on CPU

Four sections, each on its own time budget; one that fails, crashes or runs out of time is
recorded as such and the others still run (the JSON is rewritten after each):
  throughput  benchmarks/train_throughput.py on llama shapes of N ≈ 25M, 110M, 350M
              (N = params with head, the N of 6·N): Ladder's training step vs HF eager and
              HF + torch.compile, tokens/s and MFU side by side
  sharing     two small rungs training at once on one GPU vs one alone: throughput ratio
  resume      SIGTERM to a rung mid-run (what SLURM sends), resume it, compare its losses
              with an uninterrupted run's (bf16 tolerance on a GPU; exact on CPU)
  evaluate    `ladder evaluate` on the trained rung, and from_pretrained onto the device:
              HF's own forward reproduces eval.json's loss
Targets (checked on CUDA only, set for one H200): MFU >= 50% at N >= 100M and >= 40% at
~25M; two rungs sharing a GPU >= 1.5x one alone. For reference, HF Llama measured on that
machine: 18-22% MFU eager, 35-41% under torch.compile.

It needs torch, transformers and numpy, nothing else: no snakemake, no pytest, no
jsonschema (the train and evaluate stages read a rung, ladder.rung, and never load a study
config). It imports `ladder` from this checkout (workflow/), writes synthetic
token shards to a temporary directory, and runs `python -m ladder.cli train|evaluate` as
subprocesses, as the workflow does. Output: one JSON (--out) and one table.
Exit code 0 when every section ran and every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "benchmarks")]

SECTIONS = ("throughput", "sharing", "resume", "evaluate")
# seconds per section on one H200: 460 s in all, so the run ends inside 8 minutes
BUDGET_S = {"throughput": 220, "sharing": 90, "resume": 110, "evaluate": 40}
PROGRESS = re.compile(r" step (\d+)/(\d+) \|.*\| ([\d,.]+) tok/s")


@dataclass(frozen=True)
class Profile:
    """Sizes of everything the run does: the GPU's, and --quick's tiny ones."""

    tp_shapes: tuple[str, ...]  # train_throughput --shapes items, small to large
    tp_args: tuple[str, ...]  # its other arguments
    n_layer: int  # the small rung trained by sharing, resume and evaluate
    d_model: int
    n_head: int
    vocab: int
    seq_len: int
    batch_tokens: int
    micro_batch: int
    lr: float
    log_every_s: float  # progress lines: the sharing and resume sections read them
    settle_lines: int  # progress lines to skip (compilation, warm-up) before measuring
    window_s: float  # how long the sharing section measures
    resume_s: float  # how long the resume rung should train, roughly
    resume_steps: int  # its steps when no measured rate sizes it
    shard_tokens: int  # synthetic train.bin; val.bin is a tenth
    eval_tokens: int
    resume_tol: float  # |final val loss, resumed - uninterrupted| allowed
    reload_rtol: float  # |eval.json loss - reloaded HF loss| / loss allowed


GPU = Profile(
    tp_shapes=("llama:6x384", "llama:12x768", "llama:24x1024"),
    tp_args=("--baselines", "eager,compile", "--micro-batch", "16", "--seq-len", "1024",
             "--vocab", "32768", "--steps", "30", "--warmup", "4"),
    n_layer=4, d_model=256, n_head=4, vocab=8192, seq_len=512, batch_tokens=65536,
    micro_batch=64, lr=3e-3, log_every_s=1.0, settle_lines=2, window_s=10.0, resume_s=10.0,
    resume_steps=400, shard_tokens=8_000_000, eval_tokens=262_144, resume_tol=0.02,
    reload_rtol=0.01,
)  # fmt: skip
QUICK = Profile(
    tp_shapes=("llama:2x64",),
    tp_args=("--baselines", "eager", "--micro-batch", "4", "--seq-len", "32", "--vocab",
             "256", "--steps", "4", "--warmup", "1", "--rounds", "2"),
    n_layer=1, d_model=16, n_head=2, vocab=300, seq_len=16, batch_tokens=128, micro_batch=4,
    lr=1e-2, log_every_s=0.2, settle_lines=2, window_s=1.0, resume_s=3.0, resume_steps=150,
    shard_tokens=40_000, eval_tokens=2_048, resume_tol=1e-6, reload_rtol=1e-4,
)  # fmt: skip


class SectionTimeout(Exception):
    """A section ran out of its time budget."""


# ----------------------------------------------------------------------------- setup


def child_env(work: Path, device: str) -> dict[str, str]:
    """The environment of every subprocess: this checkout's ladder first."""
    paths = [str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    env.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    if device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    return env


def write_shards(d: Path, p: Profile) -> Path:
    """train.bin/val.bin/meta.json as ladder.shards reads them (the tokenize stage's
    format): a noisy walk through the vocabulary, so a model has something to learn."""
    import numpy as np

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    top = p.vocab - 2
    meta: dict[str, Any] = {
        "dtype": "uint16",
        "vocab_size": p.vocab,
        "eos_id": 0,
        "mask_id": p.vocab - 1,
        "tokenizer": "synthetic",
    }
    for split, n in (("train", p.shard_tokens), ("val", max(p.shard_tokens // 10, 4096))):
        i = np.arange(n)
        walk = (i * 7 + i // 5) % top
        ids = np.where(rng.random(n) < 0.2, rng.integers(0, top, n), walk).astype(np.uint16)
        ids.tofile(d / f"{split}.bin")
        meta[split] = {"n_tokens": n, "n_bytes": 4 * n, "n_docs": 1}
    (d / "meta.json").write_text(json.dumps(meta, indent=2))
    return d


def small_rung(p: Profile, device: str, steps: int, rid: str):
    """The rung the sharing, resume and evaluate sections train (compile and precision
    auto: compiled bf16 on CUDA, eager fp32 on CPU, as a study would run it)."""
    from train_throughput import rung_for

    from ladder.model import ModelShape, default_d_ff

    shape = ModelShape(
        family="llama",
        n_layer=p.n_layer,
        d_model=p.d_model,
        n_head=p.n_head,
        n_kv_head=p.n_head,
        d_ff=default_d_ff("llama", p.d_model),
        vocab_size=p.vocab,
        seq_len=p.seq_len,
        tie_embeddings=False,
    )
    base = rung_for(shape, p.micro_batch, "auto", "auto", device)
    return replace(
        base,
        id=rid,
        steps=steps,
        tokens=steps * p.batch_tokens,
        lr=p.lr,
        batch_tokens=p.batch_tokens,
        schedule="cosine",
        warmup_frac=0.05,
        log_every_s=p.log_every_s,
        checkpoint_minutes=60.0,
        threads=1 if device == "cpu" else 2,
    )


# ----------------------------------------------------------------------------- jobs


class Job:
    """A subprocess whose output lines are kept with their arrival times (and logged)."""

    def __init__(self, name: str, cmd: list[str], ctx: Context):
        self.name = name
        self.log = ctx.work / "logs" / f"{name}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            cmd,
            env=ctx.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            start_new_session=True,  # its own process group: killed as one
        )
        ctx.jobs.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with open(self.log, "w") as log:
            for line in self.proc.stdout:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                log.write(line)
                log.flush()

    def progress(self) -> list[tuple[float, int, float]]:
        """(arrival time, step, tokens/s) of each progress line so far."""
        out = []
        for t, line in list(self.lines):
            m = PROGRESS.search(line)
            if m:
                out.append((t, int(m[1]), float(m[3].replace(",", ""))))
        return out

    def wait(self, deadline: float) -> int:
        try:
            rc = self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise SectionTimeout(f"{self.name} still running at the section's deadline") from None
        self.reader.join(timeout=5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def tail(self, n: int = 15) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


@dataclass
class Context:
    device: str  # "cuda" or "cpu"
    p: Profile
    work: Path
    env: dict[str, str]
    tokens: Path
    jobs: list[Job] = field(default_factory=list)  # the running section's
    rate_alone: float | None = None  # the small rung's tokens/s alone (sharing → resume)
    trained: tuple[Path, Any] | None = None  # a finished run directory and its rung

    def train(self, name: str, rung, run_dir: Path, *extra: str) -> Job:
        cmd = [sys.executable, "-m", "ladder.cli", "train", "--rung-json", rung.to_json(),
               "--tokens-dir", str(self.tokens), "--out-dir", str(run_dir), *extra]  # fmt: skip
        return Job(name, cmd, self)


def until(deadline: float, what: str, ready) -> None:
    """Poll `ready()` until it is true; SectionTimeout at the deadline."""
    while not ready():
        if time.monotonic() > deadline:
            raise SectionTimeout(f"no {what} before the section's deadline")
        time.sleep(0.05)


def check(what: str, value: Any, shown: str, target: str, met: bool | None) -> dict[str, Any]:
    """One line of the verdict (`shown`: the value as the table prints it); met is None
    where the target does not apply (CPU)."""
    return {"what": what, "value": value, "shown": shown, "target": target, "met": met}


# ----------------------------------------------------------------------------- sections


def throughput(ctx: Context, deadline: float) -> dict[str, Any]:
    """train_throughput.py, one subprocess per shape (small first), each with what is left
    of the budget: a shape that runs out of time loses no earlier shape's numbers."""
    from ladder.rung import format_count

    shapes, checks, out = [], [], {}
    for spec in ctx.p.tp_shapes:
        if deadline - time.monotonic() < 20:
            shapes.append({"shape": spec, "status": "skipped: section budget spent"})
            continue
        result = ctx.work / f"throughput-{spec.replace(':', '-')}.json"
        script = str(REPO / "benchmarks" / "train_throughput.py")
        cmd = [sys.executable, script, "--device", ctx.device, "--shapes", spec,
               *ctx.p.tp_args, "--json", str(result)]  # fmt: skip
        job = Job(f"throughput-{spec.replace(':', '-')}", cmd, ctx)
        try:
            rc = job.wait(deadline)
        except SectionTimeout:
            job.kill()
            shapes.append({"shape": spec, "status": "timeout", "log": job.tail()})
            continue
        if rc != 0 or not result.exists():
            shapes.append({"shape": spec, "status": f"exit {rc}", "log": job.tail()})
            continue
        res = json.loads(result.read_text())
        out.update({k: v for k, v in res.items() if k != "shapes"})
        row = {**res["shapes"][0], "status": "ok"}
        shapes.append(row)
        n = row["params_with_head"]
        goal = 0.5 if n >= 100e6 else 0.4
        mfu = row["ladder_mfu"]
        met = None if ctx.device == "cpu" or mfu is None else mfu >= goal
        what = f"ladder MFU, {row['shape']} (N {format_count(n)})"
        shown = f"{mfu:.1%}" if mfu is not None else "-"
        checks.append(check(what, mfu, shown, f">= {goal:.0%}", met))
    bad = [s["shape"] for s in shapes if s["status"] != "ok"]
    if bad:
        checks.append(
            check(f"throughput shapes measured ({', '.join(bad)} not)", None, "-", "all", False)
        )
    return {**out, "shapes": shapes, "checks": checks}


def sharing(ctx: Context, deadline: float) -> dict[str, Any]:
    """The small rung alone, then two at once on the same device; each measured over
    `window_s` of progress lines once past `settle_lines` (compilation, warm-up), and
    stopped with SIGTERM (a checkpoint, exit 143) since only its speed matters here."""
    from ladder.model import param_groups

    p = ctx.p
    rung = small_rung(p, ctx.device, steps=10**6, rid="share")

    def measure(jobs: list[Job]) -> list[float]:
        def settled() -> bool:
            started = all(len(j.progress()) > p.settle_lines for j in jobs)
            return started or any(j.proc.poll() is not None for j in jobs)

        until(deadline, "steady progress lines", settled)
        dead = [j for j in jobs if j.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead[0].name} exited early:\n{dead[0].tail()}")
        t0 = time.monotonic()
        until(deadline, "measurement window", lambda: time.monotonic() - t0 > p.window_s)
        for j in jobs:
            j.proc.send_signal(signal.SIGTERM)
        for j in jobs:
            j.wait(deadline)
        return [median_rate(j, since=t0) for j in jobs]

    [alone] = measure([ctx.train("share-alone", rung, ctx.work / "share-alone")])
    ctx.rate_alone = alone
    pair = measure([ctx.train(f"share-{i}", rung, ctx.work / f"share-{i}") for i in (1, 2)])
    ratio = sum(pair) / alone
    met = None if ctx.device == "cpu" else ratio >= 1.5
    return {
        "rung": rung.id,
        "params_total": param_groups(rung.shape)["params_total"],
        "tokens_per_s_alone": alone,
        "tokens_per_s_shared": pair,
        "ratio": ratio,
        "checks": [
            check("2 rungs sharing the device / 1 alone", ratio, f"{ratio:.2f}x", ">= 1.5x", met)
        ],
    }


def median_rate(job: Job, since: float) -> float:
    """The median tokens/s of a job's progress lines since `since` (a window of several
    log intervals, so there are a few)."""
    rates = sorted(r for t, _, r in job.progress() if t >= since)
    if not rates:
        raise RuntimeError(f"{job.name}: no progress line in the measurement window")
    return rates[len(rates) // 2]


def resume(ctx: Context, deadline: float) -> dict[str, Any]:
    """An uninterrupted run and, beside it, the same rung stopped by SIGTERM about a
    quarter in and restarted: the restart resumes from the checkpoint, and its log and
    final losses match the uninterrupted run's (bit for bit on CPU; bf16 noise on GPU)."""
    p = ctx.p
    steps = p.resume_steps
    if ctx.rate_alone:  # sized to train ~resume_s at the speed the sharing section saw
        steps = int(min(20_000, max(100, ctx.rate_alone * p.resume_s / p.batch_tokens)))
    rung = small_rung(p, ctx.device, steps=steps, rid="resume")
    ref_dir, cut_dir = ctx.work / "resume-reference", ctx.work / "resume-interrupted"
    ref = ctx.train("resume-reference", rung, ref_dir)
    cut = ctx.train("resume-interrupted", rung, cut_dir)

    def quarter_in() -> bool:
        return any(s >= steps // 4 for _, s, _ in cut.progress()) or cut.proc.poll() is not None

    until(deadline, "progress line a quarter into the run", quarter_in)
    cut.proc.send_signal(signal.SIGTERM)
    rc = cut.wait(deadline)
    if rc != 128 + signal.SIGTERM:
        raise RuntimeError(f"interrupted run exited {rc}, not 143 (SIGTERM):\n{cut.tail()}")
    again = ctx.train("resume-restarted", rung, cut_dir)
    for job in (again, ref):
        if job.wait(deadline) != 0:
            raise RuntimeError(f"{job.name} failed:\n{job.tail()}")
    a = json.loads((ref_dir / "train.json").read_text())
    b = json.loads((cut_dir / "train.json").read_text())
    ctx.trained = (ref_dir, rung)
    step_diff = max_log_diff(ref_dir / "train_log.csv", cut_dir / "train_log.csv")
    d_val = b["val_loss_nats"] - a["val_loss_nats"]
    tol = p.resume_tol
    return {
        "rung": rung.id,
        "steps": steps,
        "resumed_from_step": b["resumed_from_step"],
        "loss_nats": [a["loss_nats"], b["loss_nats"]],
        "val_loss_nats": [a["val_loss_nats"], b["val_loss_nats"]],
        "max_step_loss_diff": step_diff,
        "precision": b["precision"],
        "compile": b["compile"],
        "checks": [
            check(
                "resumed from a mid-run step",
                b["resumed_from_step"],
                str(b["resumed_from_step"]),
                f"in (0, {steps})",
                0 < b["resumed_from_step"] < steps,
            ),
            check(
                "final val loss, resumed - uninterrupted",
                d_val,
                f"{d_val:+.2g}",
                f"|d| <= {tol:g}",
                abs(d_val) <= tol,
            ),
        ],
    }


def max_log_diff(a: Path, b: Path) -> float:
    """Largest |loss difference| between two train_log.csv files, step by step."""
    import csv

    with open(a) as fa, open(b) as fb:
        ra, rb = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    if [r["step"] for r in ra] != [r["step"] for r in rb]:
        return math.inf
    return max(
        abs(float(x["loss_nats"]) - float(y["loss_nats"])) for x, y in zip(ra, rb, strict=True)
    )


def evaluate(ctx: Context, deadline: float) -> dict[str, Any]:
    """`ladder evaluate` on the trained rung (the resume section's, else one trained here),
    then the saved model through from_pretrained onto the device: HF's own forward must
    give eval.json's loss on the same windows."""
    p = ctx.p
    run_dir, rung = ctx.trained or (None, None)
    if run_dir is None:
        rung = small_rung(p, ctx.device, steps=30, rid="evaluate")
        run_dir = ctx.work / "evaluate"
        if ctx.train("evaluate-train", rung, run_dir).wait(deadline) != 0:
            raise RuntimeError(f"training the rung to evaluate failed:\n{ctx.jobs[-1].tail()}")
    out = run_dir / "eval.json"
    cmd = [sys.executable, "-m", "ladder.cli", "evaluate", "--rung-json", rung.to_json(),
           "--model-dir", str(run_dir / "model"), "--tokens-dir", str(ctx.tokens),
           "--max-tokens", str(p.eval_tokens), "--batch-size", str(p.micro_batch),
           "--out", str(out)]  # fmt: skip
    job = Job("evaluate", cmd, ctx)
    if job.wait(deadline) != 0:
        raise RuntimeError(f"ladder evaluate failed:\n{job.tail()}")
    ev = json.loads(out.read_text())
    reloaded = reload_loss(ctx, run_dir / "model", rung.seq_len, p.eval_tokens, p.micro_batch)
    params = json.loads((run_dir / "train.json").read_text())["params_total"]
    rel = abs(reloaded["loss_nats"] - ev["loss_nats"]) / ev["loss_nats"]
    return {
        "run": run_dir.name,
        "eval": {
            k: ev[k]
            for k in ("loss_nats", "bits_per_byte", "eval_tokens", "device", "precision", "wall_s")
        },
        "reloaded": reloaded,
        "checks": [
            check(
                "eval loss: from_pretrained vs ladder evaluate (rel.)",
                rel,
                f"{rel:.2g}",
                f"<= {p.reload_rtol:g}",
                rel <= p.reload_rtol,
            ),
            check(
                "reloaded parameters = train.json's",
                reloaded["params"],
                f"{reloaded['params']:,}",
                f"= {params:,}",
                reloaded["params"] == params,
            ),
        ],
    }


def reload_loss(ctx: Context, model_dir: Path, seq_len: int, max_tokens: int, batch: int):
    """from_pretrained in this process, onto the device; the mean next-token loss of HF's
    forward (its logits, cross-entropy here) on evaluate's validation windows."""
    import torch
    import transformers as tf

    from ladder.runtime import autocast_for, resolve_precision
    from ladder.shards import load_meta, open_split, val_slice

    device = torch.device(ctx.device)
    t0 = time.monotonic()
    model = tf.AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
    load_s = time.monotonic() - t0
    meta = load_meta(ctx.tokens)
    inputs, labels = val_slice(
        open_split(ctx.tokens, "val", meta), "llama", seq_len, max_tokens, 0.15, meta
    )
    precision = resolve_precision("auto", device)
    total, count = 0.0, 0
    with torch.no_grad(), autocast_for(precision, device):
        for s in range(0, len(inputs), batch):
            x = torch.from_numpy(inputs[s : s + batch]).to(device)
            y = torch.from_numpy(labels[s : s + batch]).to(device)
            logits = model(input_ids=x, use_cache=False).logits
            total += torch.nn.functional.cross_entropy(
                logits.float().flatten(0, 1), y.flatten(), reduction="sum"
            ).item()
            count += y.numel()
    return {
        "loss_nats": total / count,
        "tokens": count,
        "params": sum(t.numel() for t in model.parameters()),
        "on": str(next(model.parameters()).device),
        "precision": precision,
        "load_s": load_s,
    }


# ----------------------------------------------------------------------------- report


def run_section(name: str, ctx: Context, budget_s: float) -> dict[str, Any]:
    """One section, its failure caught: status ok | failed (a check missed) | error |
    timeout. Whatever it started is killed when it ends."""
    print(f"[{name}] budget {budget_s:.0f} s", flush=True)
    t0 = time.monotonic()
    ctx.jobs = []
    try:
        data = SECTION_FUNCS[name](ctx, t0 + budget_s)
        missed = [c for c in data["checks"] if c["met"] is False]
        data["status"] = "failed" if missed else "ok"
    except SectionTimeout as e:
        data = {"status": "timeout", "error": str(e), "checks": []}
    except Exception as e:  # noqa: BLE001 (a broken section must not lose the others)
        data = {
            "status": "error",
            "error": f"{type(e).__name__}: {e}",
            "checks": [],
            "traceback": traceback.format_exc(),
        }
    finally:
        for job in ctx.jobs:
            job.kill()
    data["wall_s"] = time.monotonic() - t0
    data["budget_s"] = budget_s
    why = f": {data['error'].splitlines()[0]}" if data.get("error") else ""
    print(f"[{name}] {data['status']} in {data['wall_s']:.0f} s{why}", flush=True)
    return data


SECTION_FUNCS = {
    "throughput": throughput,
    "sharing": sharing,
    "resume": resume,
    "evaluate": evaluate,
}


def table(report: dict[str, Any]) -> str:
    """The summary: throughput side by side, then every check with its verdict."""
    dev = report["device"]
    lines = [
        f"GPU acceptance — {dev['name']} | torch {report['versions']['torch']} | "
        f"transformers {report['versions']['transformers']} | "
        f"{report['wall_s']:.0f} s"
    ]
    tp = report["sections"].get("throughput", {})
    rows = [s for s in tp.get("shapes", []) if s.get("status") == "ok"]
    if rows:
        sides = [k[: -len("_tokens_per_s")] for k in rows[0] if k.endswith("_tokens_per_s")]
        label = {"ladder": "ladder", "hf_eager": "HF eager", "hf_compile": "HF+compile"}
        head = f"{'shape':<16}{'N':>8}"
        head += "".join(f"{label.get(s, s) + ' tok/s':>22}{'MFU':>7}" for s in sides)
        lines += ["", head]
        for r in rows:
            line = f"{r['shape']:<16}{r['params_with_head'] / 1e6:>7.1f}M"
            for s in sides:
                mfu = r[f"{s}_mfu"]
                line += f"{r[f'{s}_tokens_per_s']:>22,.0f}{f'{mfu:.1%}' if mfu else '-':>7}"
            lines.append(line)
    lines += ["", f"{'section':<11}{'check':<54}{'value':>12}  {'target':<14}verdict"]
    for name, sec in report["sections"].items():
        if not sec["checks"]:
            what = sec.get("error", "").splitlines()[0][:53] if sec.get("error") else ""
            lines.append(f"{name:<11}{what:<54}{'':>12}  {'':<14}{sec['status'].upper()}")
        for c in sec["checks"]:
            verdict = {True: "pass", False: "FAIL", None: "n/a on cpu"}[c["met"]]
            lines.append(
                f"{name:<11}{c['what'][:53]:<54}{c['shown']:>12}  {c['target']:<14}{verdict}"
            )
    lines += ["", *details(report["sections"]), ""]
    cpu = report["device"]["type"] != "cuda"
    note = " (CPU smoke run: the GPU figures are still unmeasured)" if cpu else ""
    lines.append(f"overall: {'PASS' if report['ok'] else 'FAIL'}{note}")
    return "\n".join(lines)


def details(sections: dict[str, Any]) -> list[str]:
    """The numbers behind the sharing, resume and evaluate verdicts, one line each."""
    out = []
    sh = sections.get("sharing", {})
    if sh.get("tokens_per_s_shared"):
        a, b = sh["tokens_per_s_shared"]
        out.append(f"sharing:  alone {sh['tokens_per_s_alone']:,.0f} tok/s; "
                   f"two at once {a:,.0f} + {b:,.0f} tok/s")  # fmt: skip
    rs = sections.get("resume", {})
    if rs.get("loss_nats"):
        out.append(f"resume:   {rs['steps']} steps, {rs['precision']}, compile "
                   f"{rs['compile']}; final loss {rs['loss_nats'][1]:.4f} resumed vs "
                   f"{rs['loss_nats'][0]:.4f}; largest per-step difference "
                   f"{rs['max_step_loss_diff']:.2g}")  # fmt: skip
    ev = sections.get("evaluate", {})
    if ev.get("eval"):
        e, r = ev["eval"], ev["reloaded"]
        out.append(f"evaluate: {e['loss_nats']:.4f} nats/token, {e['bits_per_byte']:.4f} "
                   f"bits/byte over {e['eval_tokens']:,} tokens ({e['device']}, "
                   f"{e['precision']}); from_pretrained on {r['on']}: {r['loss_nats']:.4f} "
                   f"(load {r['load_s']:.1f} s)")  # fmt: skip
    return out


def device_name(dev) -> str:
    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--out", default="results/gpu_acceptance.json", help="the JSON to write")
    ap.add_argument("--quick", action="store_true", help="tiny shapes (the CPU smoke test)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    ap.add_argument(
        "--budget-s",
        default="",
        help="per-section time budgets, e.g. throughput=300,resume=60 "
        f"(default {','.join(f'{k}={v}' for k, v in BUDGET_S.items())})",
    )
    ap.add_argument("--work-dir", help="keep shards, runs and logs here (default: a temp dir)")
    args = ap.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    budgets = dict(BUDGET_S)
    for item in filter(None, args.budget_s.split(",")):
        key, value = item.split("=")
        budgets[key] = float(value)
    if not set(sections) <= set(SECTIONS) or not set(budgets) <= set(SECTIONS):
        ap.error(f"sections are {', '.join(SECTIONS)}")
    t_start = time.monotonic()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="ladder-gpu-acceptance-"))
    work.mkdir(parents=True, exist_ok=True)

    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # from_pretrained's loading bar
    device = args.device.split(":")[0]
    if device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_acceptance: error: CUDA is not available here (use --device cpu --quick "
            "for the CPU smoke test)",
            file=sys.stderr,
        )
        return 2
    from ladder.runtime import peak_flops

    dev = torch.device(device)
    ctx = Context(
        device=device,
        p=QUICK if args.quick else GPU,
        work=work,
        env=child_env(work, device),
        tokens=work / "tokens",
    )
    write_shards(ctx.tokens, ctx.p)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": {"type": device, "name": device_name(dev), "peak_flops": peak_flops(dev)},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "quick": args.quick,
        "work_dir": str(work),
        "budgets_s": {s: budgets[s] for s in sections},
        "sections": {},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in sections:
        report["sections"][name] = run_section(name, ctx, budgets[name])
        report["wall_s"] = time.monotonic() - t_start
        report["ok"] = all(s["status"] == "ok" for s in report["sections"].values())
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(table(report))
    print(f"\nwrote {out}")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
