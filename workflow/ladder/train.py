"""Train one rung: AdamW, LR schedules, mixed precision, exact resume after a kill, DDP.

AdamW with warmup + cosine/constant/WSD, gradient accumulation, bf16 autocast and
torch.compile on CUDA, atomic checkpoints, DDP under torchrun. See docs/training.md.

    ladder train --rung-json '<Rung JSON>' --tokens-dir results/s/tokens --out-dir runs/<rung>
    torchrun --standalone --nproc-per-node 2 -m ladder.cli train ...   (DDP; `ladder train`
    re-launches itself like this when the rung asks for gpus > 1 on a CUDA machine)

A job reads top to bottom in `train`: `setup` (device, data, model, optimizer), `restore`
(a checkpoint or a WSD branch's start state), `train_loop` (each step: lr → batch → step
→ log / eval → checkpoint), `finish` (the one exit: the outputs, a WSD segment's state,
a signal's checkpoint or a divergence's record). The sections below follow that order;
`Clock` keeps the job's times, `Progress` its log rows (`LogRow`).

Why it is exact and cheap to resume: the windows of step s are drawn by a generator
seeded with (seed, s) (ladder.shards.step_batch), so the data position *is* the step
counter, and DDP sees the same data as one process. A checkpoint (RUNDIR/ckpt/state.pt)
holds weights, optimizer, grad scaler, step, RNG states and the log so far; it is
written every `checkpoint_minutes` and when SIGTERM/SIGUSR1 arrives (what SLURM sends
before a time limit or preemption; the job then exits 128+signal so the scheduler
retries it). On CPU a resumed run ends with the same weights and loss, bit for bit.

Outputs: RUNDIR/model/ (save_pretrained), train_log.csv, and train.json last; each (and
the checkpoint) is written atomically by ladder.artifacts, so a killed job never leaves
a complete-looking run. A rung with keep_steps (config tasks.checkpoints) also keeps the
model after each of those steps, for task scoring: RUNDIR/checkpoints/step<N>/ (or
--checkpoints-out), save_pretrained plus checkpoint.json. They are staged in RUNDIR/ckpt/
beside the resume checkpoint, which outlives a killed job, and moved into place when the
job ends (a WSD stable segment's: those of its own steps).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import io
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ladder import devices, mup
from ladder.artifacts import (
    CHECKPOINT,
    KEPT_DIR,
    KEPT_JSON,
    KEPT_STAGING,
    MODEL_DIR,
    TOKENS_META_JSON,
    TRAIN_JSON,
    TRAIN_LOG_CSV,
    atomic_dir,
    atomic_file,
    leftover_temps,
    split_file,
    write_json,
    write_text,
)
from ladder.errors import DataError, failed
from ladder.loss import IGNORE, LossModel, mean_loss, targets_of
from ladder.model import build_model, count_params, flops_per_token, param_groups, save_model
from ladder.rung import Rung, format_count
from ladder.runtime import (
    autocast_for,
    job_threads,
    peak_flops,
    resolve_compile,
    resolve_device,
    resolve_precision,
    set_threads,
    use_cuda,
)
from ladder.schedule import Schedule
from ladder.shards import (
    EVAL_TOKENS,
    TokenSequence,
    check_ids,
    load_meta,
    open_split,
    step_batch,
    val_slice,
)
from ladder.tracking import Tracker, Tracking, continues


@dataclass
class LogRow:
    """One row of train_log.csv: after step `step` (1-based), `tokens` into the run, that
    step's training loss and learning rate, the training speed since the previous read of
    the losses, and the val loss at the learning curve's points (else None)."""

    step: int
    tokens: int
    loss_nats: float
    lr: float
    tokens_per_s: float
    val_loss_nats: float | None = None

    def saved(self) -> list:
        """As a checkpoint keeps it: a plain list in LOG_COLUMNS order (what torch.load's
        weights_only accepts; checkpoints written before LogRow hold the same lists)."""
        return list(astuple(self))


LOG_COLUMNS = [f.name for f in fields(LogRow)]  # train_log.csv's columns, in this order
# Rung fields that change how a run executes but not what it computes: a checkpoint
# written under other values of these is still resumed (e.g. on more GPUs).
RUNTIME_FIELDS = {
    "device",
    "compile",
    "threads",
    "gpus",
    "nodes",
    "log_every_s",
    "checkpoint_minutes",
}


# ----------------------------------------------------------------------------- schedule


def lr_at(step: int, r: Rung) -> float:
    """Learning rate of step `step` (0-based) of `r.steps`: warmup, then cosine, constant or
    WSD (ladder.schedule, which `ladder fit` also uses to recompute every step's lr)."""
    return Schedule.of(r).lr_at(step)


def eval_steps(r: Rung) -> set[int]:
    """Completed-step counts at which the val loss is logged: log-spaced, always the end."""
    pts = np.geomspace(1, r.steps, r.eval_points) if r.eval_points > 0 else []
    return {int(round(p)) for p in pts} | {r.steps}


# ----------------------------------------------------------------------------- job


def train(
    r: Rung,
    tokens_dir: str,
    out_dir: str,
    val_tokens: int | None,
    resume: bool,
    eval_tokens: int = EVAL_TOKENS,
    init_state: str | None = None,
    stop_step: int | None = None,
    state_out: str | None = None,
    threads: int | None = None,
    tracking: Tracking | None = None,
    kept_out: str | None = None,
) -> int:
    """Train rung `r` into out_dir; returns the exit code (0, or 128+signal). A run that
    diverges (NaN/inf loss) writes its outputs marked diverged and returns 0.

    A WSD stable segment passes `stop_step` and `state_out` (train to that step, save the
    full state there, write no model); a cooldown branch passes `init_state` (start from
    such a state unless its own checkpoint is newer). SIGTERM/SIGUSR1 are caught from the
    very start: one that arrives while the job is still loading is acted on after its
    first step (checkpoint, exit 128+signal), instead of killing a job that could resume.
    `tracking`: the TensorBoard / W&B settings (ladder.tracking; None: off). `kept_out`:
    where the models kept at r.keep_steps go: by default out_dir/checkpoints, written (empty
    if none) by every run, so that it is an output of every rung; a WSD stable segment
    keeps models only where it is given one.
    """
    if kept_out is None and stop_step is None:
        kept_out = str(Path(out_dir) / KEPT_DIR)
    seg = Segment.of(r, stop_step, init_state, state_out, kept_out)
    # the tracker is closed however the job ends (its last rows are kept; ladder.tracking)
    with catch_signals(signal.SIGTERM, signal.SIGUSR1) as caught, Tracker() as tracker:
        clock = Clock()
        # setup: the data is checked before any compute, so a bad shard fails in seconds
        run = setup(r, tokens_dir, out_dir, val_tokens, eval_tokens, threads, seg.kept_out)
        progress, stop, diverged, ended = Progress(start=0, rows=[]), 0, None, False
        try:
            # restore: a killed job goes on from its checkpoint, a WSD branch from its
            # stable run's state; the step counter is also the data position
            past = restore(run, resume, seg.init_state)
            progress = Progress.restored(past)
            if run.master:
                prune_kept(run, progress.start)
            if run.master and tracking:
                run.tracker = tracker.open(tracking, r, run.out, continues(past, r.id))
            check_stable_run(past, r)  # a branch of a diverged stable run is diverged too
            distribute(run)
            clock.start(progress.start * r.batch_tokens, past["wall_s"], past["train_s"])
            # loop: to the segment's end, or to the end of the step a signal arrived in
            kept = frozenset(r.kept if seg.kept_out else ())
            stop = train_loop(run, progress, clock, seg.end, caught, kept)
            ended = True
        except Divergence as e:  # a result, not an error: `finish` records it
            diverged, ended = e, True
        finally:
            clock.pause()
            if run.master:
                track(run, progress)  # the rows up to a divergence or a signal, too
            if run.ddp:
                leave_group(run, together=ended)
        # finish: every way the job ends, in one place
        return finish(run, progress, clock, seg, tracker, stop, diverged)


def leave_group(run: Run, together: bool) -> None:
    """Tear the DDP process group down before the interpreter exits. The DDP wrapper goes
    first: its reducer holds the group, which would otherwise outlive
    destroy_process_group and be destroyed at interpreter exit, where gloo's threads can
    abort the process (SIGABRT, "terminate called without an active exception") after a
    run that succeeded. `together`: the loop ended the same way on every rank (done, a
    signal or a divergence, all agreed by a collective), so a barrier lets no rank close
    its connections while a peer still uses them; after an error it would hang."""
    run.step_model = None
    if together:
        torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def finish(
    run: Run,
    progress: Progress,
    clock: Clock,
    seg: Segment,
    tracker: Tracker,
    stop: int,
    diverged: Divergence | None,
) -> int:
    """The job's outputs by how its loop ended, written by rank 0; returns the exit code.
    - a caught signal `stop`: the checkpoint, exit 128+signal (the scheduler retries the
      job and it resumes there);
    - a divergence: recorded as the rung's result (`write_diverged`, or for a WSD stable
      segment `save_diverged_state`), exit 0, as a retry would only diverge again;
    - all steps done: model/, train_log.csv, train.json (`write_outputs`), or for a WSD
      stable segment its state for the branches (`save_state`), exit 0."""
    code = 128 + stop if stop else 0
    tracker.exit_code = code
    if not run.master:
        return code
    r = run.r
    if stop:
        save_checkpoint(run, progress, clock, run.out / CHECKPOINT)
        name = signal.Signals(stop).name
        print(f"{r.id}: {name} at step {progress.step}; checkpoint saved", flush=True)
        return code
    if seg.kept_out:  # before the outputs below remove ckpt/, where they are staged
        publish_kept(run, Path(seg.kept_out))
    if diverged is not None:
        print(f"ladder train: diverged: {diverged}", file=sys.stderr, flush=True)
        if seg.state_out:
            save_diverged_state(run, progress, diverged, seg.state_out)
        else:
            tracker.summary(write_diverged(run, progress, clock, diverged, seg.init_state))
    elif seg.state_out:
        save_state(run, progress, clock, seg.state_out)
    else:
        tracker.summary(write_outputs(run, progress, clock))
    return 0


# ----------------------------------------------------------------------------- setup


@dataclass
class Run:
    """One training job, set up: the rung, where it runs, its data, model and optimizer."""

    r: Rung
    out: Path  # the run directory
    world: int  # processes (DDP ranks)
    rank: int
    device: torch.device
    precision: str
    compiled: bool
    peak: float | None  # the device's peak FLOP/s, for MFU
    meta: dict[str, Any]
    data: TokenSequence  # the train split's shards as one sequence
    local: int  # sequences of a step on this rank
    micro: int  # sequences per forward pass
    model: torch.nn.Module
    params: dict[str, int]  # parameter groups counted on the real model
    loss_model: LossModel
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Any
    val_inputs: np.ndarray  # evaluate's validation slice, all of its windows
    val_labels: np.ndarray
    val_curve: np.ndarray  # the windows scored at the learning curve's intermediate points
    step_model: torch.nn.Module | None = None  # what a step runs; set by `distribute`
    tracker: Tracker = field(default_factory=Tracker)  # TensorBoard / W&B; set in `train`

    @property
    def ddp(self) -> bool:
        return self.world > 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup(
    r: Rung,
    tokens_dir: str,
    out_dir: str,
    val_tokens: int | None,
    eval_tokens: int,
    threads: int | None = None,
    kept_out: str | None = None,
) -> Run:
    """Threads (the rung's, at most the job's `threads` shared by its ranks) and device,
    the data (checked before any compute, so a bad shard fails in seconds), the DDP
    process group, stale outputs removed (with the kept models' `kept_out`), model and
    optimizer built."""
    import transformers

    transformers.utils.logging.disable_progress_bar()  # the job log is for progress lines
    # global rank and world size (data slices, who writes); this node's share of them
    # (its CPU threads and GPU) from torchrun's LOCAL_* variables, which differ across nodes
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    set_threads(job_threads(r.threads, threads, local_world))
    device = resolve_device(r.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        use_cuda(device)
    precision = resolve_precision(r.precision, device)
    compiled = resolve_compile(r.compile, device)
    meta, data, val = open_data(tokens_dir, r)
    local, micro = split_batch(r, world)
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(out_dir)
    if rank == 0:
        clear_outputs(out, kept_out)
    model = build_model(r.shape, r.seed, r.base_width).to(device)
    params = count_params(model, r.shape)
    if params != param_groups(r.shape) and rank == 0:
        print(f"warning: parameter groups differ from the analytic count: {params}")
    val_inputs, val_labels, val_curve = curve_slice(val, r, meta, val_tokens, eval_tokens, micro)
    return Run(
        r=r,
        out=out,
        world=world,
        rank=rank,
        device=device,
        precision=precision,
        compiled=compiled,
        peak=peak_flops(device),
        meta=meta,
        data=data,
        local=local,
        micro=micro,
        model=model,
        params=params,
        loss_model=LossModel(model, r.family, compiled_loss=compiled),
        opt=make_optimizer(model, r, device),
        scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        autocast=autocast_for(precision, device),
        val_inputs=val_inputs,
        val_labels=val_labels,
        val_curve=val_curve,
    )


def open_data(tokens_dir: str, r: Rung) -> tuple[dict[str, Any], TokenSequence, TokenSequence]:
    """meta.json and the train and val token sequences (their shards), checked to fit
    rung `r`."""
    meta = load_meta(tokens_dir)
    data = open_split(tokens_dir, "train", meta)
    val = open_split(tokens_dir, "val", meta)
    check_ids(data, r.vocab_size, f"{tokens_dir}/{split_file('train', 'bin')}")
    check_ids(val, r.vocab_size, f"{tokens_dir}/{split_file('val', 'bin')}")
    if r.family == "bert" and meta.get("mask_id") is None:
        raise DataError(
            f"{tokens_dir}/{TOKENS_META_JSON}: mask_id is null; bert needs a mask token"
        )
    width = r.seq_len + (r.family != "bert")
    if len(data) < width:
        raise DataError(
            f"{tokens_dir}: the train split holds {len(data)} tokens (meta.json's train "
            f"shards); rung {r.id} needs >= {width} (seq_len + 1): give data more text"
        )
    return meta, data, val


def split_batch(r: Rung, world: int) -> tuple[int, int]:
    """(sequences of a step on each rank, sequences per forward pass): the largest divisor
    of the rank's share that is at most micro_batch."""
    seqs = r.batch_tokens // r.seq_len
    if r.batch_tokens % r.seq_len or seqs % world:
        raise ValueError(
            f"batch_tokens {r.batch_tokens} must be a multiple of seq_len × world size "
            f"({r.seq_len} × {world})"
        )
    local = seqs // world
    micro = max(k for k in range(1, min(local, r.micro_batch) + 1) if local % k == 0)
    return local, micro


def clear_outputs(out: Path, kept_out: str | None = None) -> None:
    """A previous complete run must not survive a failed rerun looking complete."""
    for stale in (TRAIN_JSON, TRAIN_LOG_CSV):
        (out / stale).unlink(missing_ok=True)
    folders = [out / MODEL_DIR] + ([Path(kept_out)] if kept_out else [])
    for folder in folders:
        for path in [folder, *leftover_temps(folder)]:  # incl. a killed save's
            shutil.rmtree(path, ignore_errors=True)


def curve_slice(
    val: np.ndarray, r: Rung, meta: dict, val_tokens: int | None, eval_tokens: int, micro: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validation windows: `ladder evaluate`'s whole slice (its first eval_tokens tokens,
    windowed and masked the same way), and which of them the learning curve scores at its
    intermediate points -- about val_tokens tokens (default 4 × batch_tokens, cut to whole
    micro-batches) spread evenly over the slice, not its first few windows. The curve's last
    point scores the whole slice, so it is eval.json's loss for the same weights: one
    validation loss per checkpoint."""
    v_in, v_lab = val_slice(val, r.family, r.seq_len, eval_tokens, r.mlm_probability, meta)
    want = max(1, (val_tokens or 4 * r.batch_tokens) // r.seq_len)
    want = min(want // micro * micro if want >= micro else want, len(v_in))
    pick = np.unique(np.linspace(0, len(v_in) - 1, want).round().astype(int))
    return v_in, v_lab, pick


def make_optimizer(model: torch.nn.Module, r: Rung, device: torch.device):
    """AdamW; weight decay on matrices and embeddings only, not on biases and norms
    (nanoGPT's rule); under μP the hidden matrices get their own group at lr/m
    (ladder.mup.optimizer_groups). Each group's `lr_mult` scales the schedule's lr.
    Fused kernels where this torch has them (CUDA, and CPU >= 2.4)."""
    if r.base_width is not None:
        m = mup.width_mult(r.d_model, r.base_width)
        groups = mup.optimizer_groups(model, r.family, m, r.weight_decay)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": r.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        for g in groups:
            g["lr_mult"] = 1.0
    kw = dict(lr=r.lr, betas=(r.beta1, r.beta2), eps=1e-8)
    try:
        return torch.optim.AdamW(groups, fused=device.type in ("cuda", "cpu"), **kw)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, **kw)


def distribute(run: Run) -> None:
    """The module a step runs: the loss model, its body compiled in place (state_dict and
    save_pretrained unchanged), wrapped in DDP under torchrun. Called after `restore`."""
    if run.compiled:
        run.model.base_model.compile()
    run.step_model = run.loss_model
    if run.ddp:
        run.step_model = torch.nn.parallel.DistributedDataParallel(
            run.loss_model,
            device_ids=[run.device.index] if run.device.type == "cuda" else None,
            **no_buffer_sync(),
        )


def no_buffer_sync() -> dict[str, bool]:
    """DDP's keyword for not syncing buffers every forward pass: the buffers (RoPE's
    frequencies) are constants, so it saves a collective. Newer torch (2.13) deprecates
    `broadcast_buffers` for `forward_sync_buffers` and warns in every rank's log; the GPU
    image's torch 2.11 has only the old one."""
    params = inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
    key = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return {key: False}


# ----------------------------------------------------------------------------- restore


def restore(run: Run, resume: bool, init_state: str | None) -> dict[str, Any]:
    """Load this rung's checkpoint (unless not `resume`), else the WSD branch start state
    `init_state`, into the model, optimizer, grad scaler and RNGs. Returns the state's step,
    log and times to continue from (zeros for a fresh start)."""
    r, ckpt = run.r, run.out / CHECKPOINT
    state = load_checkpoint(ckpt, r) if resume else None
    if state is None and init_state:
        state = load_branch_state(Path(init_state), r)
        if run.master:
            print(f"{r.id}: continuing from {init_state} (step {state['step']})", flush=True)
    if state is None:
        return {"step": 0, "log": [], "wall_s": 0.0, "train_s": 0.0}
    if state.get("diverged"):  # the stable run this WSD branch continues diverged
        return state
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optim"])
    run.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if run.device.type == "cuda" and state.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(state["rng_cuda"], run.device)
    if run.master:
        print(f"resuming {r.id} from step {state['step']} ({ckpt})", flush=True)
    return state


def load_checkpoint(path: Path, r: Rung) -> dict | None:
    """The checkpoint if it belongs to this rung (same result-affecting fields), else None."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    diff = changed_fields(state, r, RUNTIME_FIELDS)
    if diff:
        print(f"ignoring {path}: it was written for other values of {', '.join(diff)}")
        return None
    return state


def changed_fields(state: dict, r: Rung, allowed: set[str]) -> list[str]:
    """The fields of rung `r`, other than `allowed`, that differ in the rung `state` was
    saved for (a checkpoint's or a WSD state's), sorted."""
    old, new = json.loads(state["rung"]), json.loads(r.to_json())
    # a field the saved rung lacks (written before the field existed) had its default
    default = {f.name: f.default for f in fields(Rung)}
    return sorted(k for k in new if k not in allowed and old.get(k, default[k]) != new[k])


def save_checkpoint(run: Run, progress: Progress, clock: Clock, path: Path) -> None:
    """The full state after the last step to `path` (atomically). The pending losses are
    checked first: a checkpoint never holds weights after a NaN."""
    progress.flush(clock, run.r)
    cuda = run.device.type == "cuda"
    state = {
        "rung": run.r.to_json(),
        "step": progress.step,
        "model": run.model.state_dict(),
        "optim": run.opt.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state(run.device) if cuda else None,
        "log": progress.saved(),
        "wall_s": clock.wall(),
        "train_s": clock.train_total(),
    }
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


# ----------------------------------------------------------------------------- kept models


def keep_model(run: Run, progress: Progress, clock: Clock) -> None:
    """The model after this step, for task scoring: save_pretrained (as the final model)
    plus checkpoint.json, staged atomically in ckpt/kept/step<N>/ (not training time)."""
    clock.pause()
    r, step = run.r, progress.step
    with atomic_dir(run.out / KEPT_STAGING / f"step{step}") as tmp:
        save_model(run.model, r.shape, tmp, r.base_width)
        row = progress.rows[-1]
        record = {"rung": r.id, "step": step, "tokens": step * r.batch_tokens, **run.params,
                  "steps": r.steps, "loss_nats": row.loss_nats}  # fmt: skip
        write_json(tmp / KEPT_JSON, record)
    clock.resume()


def kept_step(path: Path) -> int | None:
    """N of a kept model's folder step<N>, else None (e.g. a killed save's temp folder)."""
    name = path.name
    return int(name[4:]) if name.startswith("step") and name[4:].isdigit() else None


def prune_kept(run: Run, start: int) -> None:
    """Staged models this job will not redo or cannot vouch for: those after the step it
    starts at (it trains them again) and any not among the rung's keep_steps."""
    staged = run.out / KEPT_STAGING
    for path in sorted(staged.iterdir()) if staged.is_dir() else []:
        step = kept_step(path)
        if step is None or step > start or step not in run.r.kept:
            shutil.rmtree(path, ignore_errors=True)


def publish_kept(run: Run, dest: Path) -> None:
    """Move the staged models into `dest` (one folder of step<N>/, written atomically; empty
    when none was kept, e.g. a run that diverged first)."""
    staged = run.out / KEPT_STAGING
    with atomic_dir(dest) as tmp:
        for path in sorted(staged.iterdir()) if staged.is_dir() else []:
            if kept_step(path) is not None:
                os.replace(path, tmp / path.name)
    n = len(list(dest.iterdir()))
    print(f"{run.r.id}: kept {n} intermediate model(s) in {dest}", flush=True)


# ----------------------------------------------------------------------------- loop


def train_loop(
    run: Run,
    progress: Progress,
    clock: Clock,
    end: int,
    caught: list[int],
    kept: frozenset[int] = frozenset(),
) -> int:
    """Steps progress.start .. end-1, each top to bottom: lr → batch → step → log / eval /
    kept model → checkpoint. Returns 0 once all are done, or the caught signal after the
    step it arrived in (its losses checked; `finish` writes the checkpoint). `kept`: the
    steps whose model is kept (`keep_model`)."""
    r = run.r
    evals = eval_steps(r)
    # on one GPU, read losses at log intervals only; under DDP agreed_signal syncs every
    # step anyway, and every rank must meet a NaN at the same step, to stop together
    sync_every_step = run.device.type != "cuda" or run.ddp
    for step in range(progress.start, end):
        # the step: its loss stays on the device until the next flush
        lr = lr_at(step, r)
        loss = optimizer_step(run, step, lr)
        done = step + 1
        progress.pending.append((done, lr, loss))

        # log / eval: the losses are read (and checked) only when a row is needed
        due_log = clock.log_due(r.log_every_s)
        if sync_every_step or due_log or done in evals or done in kept or done == end:
            progress.flush(clock, r)
        if done in evals and run.master:
            validate(run, progress, clock, whole=done == r.steps)
        if done in kept and run.master:  # its losses checked: no weights after a NaN
            keep_model(run, progress, clock)
        if run.master and (due_log or done in evals or done == end):
            track(run, progress)
        if due_log and run.master:
            clock.logged()
            print(progress_line(run, progress.rows[-1]), flush=True)

        # checkpoint: at a signal (all ranks stop after the same step), or when it is time
        stop = agreed_signal(run, caught)
        if stop:
            progress.flush(clock, r)
            return stop
        if run.master and clock.checkpoint_due(r.checkpoint_minutes):
            clock.pause()
            save_checkpoint(run, progress, clock, run.out / CHECKPOINT)
            clock.checkpointed()
    progress.flush(clock, r)
    return 0


def optimizer_step(run: Run, step: int, lr: float) -> torch.Tensor:
    """Step `step` at learning rate `lr`; returns its mean loss over every predicted token
    of every rank, as a device tensor (no host sync)."""
    for g in run.opt.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)  # checkpoints from before lr_mult: 1
    batches, n_pred = rank_batches(run, step)
    # DDP averages gradients over ranks, hence × world: the step's gradient is
    # that of the mean loss over every predicted token of every rank
    scale = run.world / n_pred
    loss_sum = train_step(run.step_model, run.opt, run.scaler, run.autocast, batches, scale, run.r)
    if run.ddp:
        torch.distributed.all_reduce(loss_sum)
    return loss_sum / n_pred


def to_device(
    inputs: np.ndarray, labels: np.ndarray, family: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A micro-batch as (input ids, flat targets, bert's flat positions) on the device.
    Pinned host memory makes the copies truly asynchronous: a copy from pageable
    memory would block the host until the GPU caught up, every micro-batch."""
    tgt, pos = targets_of(labels, family)
    cuda = device.type == "cuda"

    def move(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.pin_memory().to(device, non_blocking=True) if cuda else t

    return move(inputs), move(tgt), None if pos is None else move(pos)


def rank_batches(run: Run, step: int) -> tuple[list, int]:
    """This rank's micro-batches of step `step` on the device, and the number of tokens
    the whole step predicts on all ranks (the exact normalisation of its loss)."""
    r, micro = run.r, run.micro
    inputs, labels = step_batch(run.data, r, step, run.meta)
    n_pred = max(1, int((labels != IGNORE).sum()))
    mine = slice(run.rank * run.local, (run.rank + 1) * run.local)
    inputs, labels = inputs[mine], labels[mine]
    batches = [
        to_device(inputs[m : m + micro], labels[m : m + micro], r.family, run.device)
        for m in range(0, run.local, micro)
    ]
    return batches, n_pred


def train_step(step_model, opt, scaler, autocast, batches, scale: float, r: Rung) -> torch.Tensor:
    """One optimizer step over micro-batches (gradient accumulation); returns the summed
    token loss as a device tensor (no host sync). Under DDP, gradients are all-reduced
    only with the last micro-batch (`no_sync` for the others)."""
    ddp = isinstance(step_model, torch.nn.parallel.DistributedDataParallel)
    loss_sum = None
    for i, (x, t, p) in enumerate(batches):
        last = i == len(batches) - 1
        with contextlib.nullcontext() if not ddp or last else step_model.no_sync():
            with autocast:
                loss = step_model(x, t, p)
            scaler.scale(loss * scale).backward()
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
    if r.grad_clip > 0:
        scaler.unscale_(opt)
        params = [p for g in opt.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, r.grad_clip, foreach=True)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)
    return loss_sum


@contextlib.contextmanager
def catch_signals(*signums: int) -> Iterator[list[int]]:
    """Collect `signums` into the yielded list as they arrive, instead of dying of them;
    the previous handlers come back on exit."""
    caught: list[int] = []
    handlers = {
        sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in signums
    }
    try:
        yield caught
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def agreed_signal(run: Run, caught: list[int]) -> int:
    """The signal to stop at after this step, or 0. Ranks may see a signal at different
    steps: they agree, so that all stop after the same step and none waits forever in the
    next all-reduce."""
    stop = caught[0] if caught else 0
    if run.ddp:
        flag = torch.tensor([float(stop)], device=run.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        stop = int(flag.item())
    return stop


# ----------------------------------------------------------------------------- log


@dataclass
class Progress:
    """Where the run is: the step this job started at, train_log.csv's rows so far, and
    the step losses still on the device (read at log intervals on GPU, not every step)."""

    start: int
    rows: list[LogRow]
    pending: list[tuple[int, float, torch.Tensor]] = field(default_factory=list)

    @classmethod
    def restored(cls, past: dict[str, Any]) -> Progress:
        """From a restored state (`restore`): its step and its log (rows as lists)."""
        return cls(start=past["step"], rows=[LogRow(*row) for row in past["log"]])

    @property
    def step(self) -> int:
        """The last logged step (after a `flush`: the steps done)."""
        return self.rows[-1].step if self.rows else self.start

    def saved(self) -> list[list]:
        """The rows as a checkpoint keeps them (`LogRow.saved`)."""
        return [row.saved() for row in self.rows]

    def flush(self, clock: Clock, r: Rung) -> None:
        """Move pending losses to the host (one sync), check them, append log rows."""
        if not self.pending:
            return
        losses = torch.stack([p[2] for p in self.pending]).tolist()
        rate = clock.rate(self.pending[-1][0] * r.batch_tokens)
        for (s, lr, _), loss in zip(self.pending, losses, strict=True):
            if not math.isfinite(loss):
                raise Divergence(f"{r.id}: loss is {loss} at step {s} (lr {lr:.3g})", s, loss, lr)
            self.rows.append(LogRow(s, s * r.batch_tokens, loss, lr, rate))
        self.pending.clear()


def validate(run: Run, progress: Progress, clock: Clock, whole: bool) -> None:
    """The learning curve's val loss, into the last log row (not training time): on the
    curve's windows, or on evaluate's whole slice (`whole`, the last point)."""
    clock.pause()
    pick = slice(None) if whole else run.val_curve
    vloss, _ = mean_loss(
        run.loss_model,
        run.val_inputs[pick],
        run.val_labels[pick],
        run.micro,
        run.device,
        run.autocast,
    )
    progress.rows[-1].val_loss_nats = vloss
    clock.resume()


def mfu(run: Run, tokens_per_s: float | None) -> float | None:
    """Model FLOPs utilisation at `tokens_per_s` over all ranks: None where the device's
    peak FLOP/s is unknown (CPU) or no speed was measured."""
    if not (run.peak and tokens_per_s):
        return None
    return flops_per_token(run.r.shape) * tokens_per_s / (run.peak * run.world)


def fmt_time(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def progress_line(run: Run, row: LogRow) -> str:
    """`<rung> step 120/245 | tokens 492K | loss 3.1207 | 18,438 tok/s | MFU 41.2% | ETA 0m23s`"""
    r, done, rate = run.r, row.step, row.tokens_per_s
    util = mfu(run, rate)
    util_part = f" | MFU {util:.1%}" if util is not None else ""
    return (
        f"{r.id} step {done}/{r.steps} | tokens {format_count(done * r.batch_tokens)}"
        f" | loss {row.loss_nats:.4f} | {rate:,.0f} tok/s{util_part}"
        f" | ETA {fmt_time((r.steps - done) * r.batch_tokens / max(rate, 1e-9))}"
    )


def log_csv(rows: list[LogRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LOG_COLUMNS)
    for row in rows:
        w.writerow(["" if v is None else v for v in astuple(row)])
    return buf.getvalue()


def track(run: Run, progress: Progress) -> None:
    """The log rows not yet sent, to the trackers (ladder.tracking): train/loss, train/lr,
    train/tokens_per_s, train/mfu (when the peak is known), val/loss (at eval points)."""
    for row in progress.rows[run.tracker.sent :]:
        metrics = {"train/loss": row.loss_nats, "train/lr": row.lr}
        metrics["train/tokens_per_s"] = row.tokens_per_s
        util = mfu(run, row.tokens_per_s)
        if util is not None:
            metrics["train/mfu"] = util
        if row.val_loss_nats is not None:
            metrics["val/loss"] = row.val_loss_nats
        run.tracker.log(row.step, row.tokens, metrics)
    run.tracker.flush()


# ----------------------------------------------------------------------------- clock


class Clock:
    """A job's times, on one monotonic clock. wall: earlier jobs' (from the checkpoint)
    plus since this job started; train: the same for training steps only (evals and
    checkpoints excluded); rate: tokens/s since the losses were last read; and when the
    next progress line and checkpoint are due."""

    def __init__(self) -> None:
        self.t_job = time.monotonic()
        self.train_s = 0.0  # this job's training time
        self.start(tokens=0)

    def start(self, tokens: int, wall_before: float = 0.0, train_before: float = 0.0) -> None:
        """Training begins, `tokens` into the run, after earlier jobs' wall and train time."""
        self.wall_before, self.train_before = wall_before, train_before
        self.t_train = self.t_rate = self.t_log = self.t_ckpt = time.monotonic()
        self.training = True
        self.tokens_rate = tokens

    def wall(self) -> float:
        return self.wall_before + time.monotonic() - self.t_job

    def train_total(self) -> float:
        return self.train_before + self.train_s

    def pause(self) -> None:
        """Stop counting training time (an eval, a checkpoint or the end); once."""
        if self.training:
            self.train_s += time.monotonic() - self.t_train
            self.training = False

    def resume(self) -> None:
        self.t_train = self.t_rate = time.monotonic()
        self.training = True

    def rate(self, tokens: int) -> float:
        """Tokens/s since the last call (or `resume`), the run now `tokens` in."""
        now = time.monotonic()
        rate = (tokens - self.tokens_rate) / max(now - self.t_rate, 1e-9)
        self.t_rate, self.tokens_rate = now, tokens
        return rate

    def log_due(self, every_s: float) -> bool:
        """`every_s` seconds since the last progress line (`logged` marks it printed)."""
        return time.monotonic() - self.t_log >= every_s

    def logged(self) -> None:
        self.t_log = time.monotonic()

    def checkpoint_due(self, minutes: float) -> bool:
        return time.monotonic() - self.t_ckpt >= minutes * 60

    def checkpointed(self) -> None:
        self.t_ckpt = time.monotonic()
        self.resume()


# ----------------------------------------------------------------------------- WSD segments

# A WSD study trains the stable (constant-lr) part once, in segments, and each cooldown
# branch from the stable run's state at its decay start (Hägele et al. 2024): a segment
# stops at `--stop-step` and saves its whole state (`--state-out`, no model); the next
# segment and each branch start from such a state (`--init-state`).

# Fields a WSD branch may change: a cooldown continues the stable run's state but has its
# own id, length and (to keep the warmup's step count) warmup fraction.
# (and the steps it keeps: the stable run keeps those before the branches' cooldowns)
BRANCH_FIELDS = RUNTIME_FIELDS | {"id", "steps", "tokens", "warmup_frac", "design", "keep_steps"}


@dataclass(frozen=True)
class Segment:
    """The steps a job trains, 0 (or where it resumes) to `end`, and the WSD states it
    starts from (`init_state`) and ends in (`state_out`); a plain run has neither.
    `kept_out`: the folder its kept models go to (None: it keeps none)."""

    end: int
    init_state: str | None = None
    state_out: str | None = None
    kept_out: str | None = None

    @classmethod
    def of(
        cls,
        r: Rung,
        stop_step: int | None,
        init_state: str | None,
        state_out: str | None,
        kept_out: str | None = None,
    ):
        end = r.steps if stop_step is None else stop_step
        if not 0 < end <= r.steps:
            raise ValueError(f"--stop-step {stop_step} must be in [1, {r.steps}]")
        return cls(end, init_state, state_out, kept_out)


def load_branch_state(path: Path, r: Rung) -> dict:
    """A state saved by `--state-out` of another rung, to continue as this rung (WSD
    cooldown branches; Hägele et al. 2024). Valid only if every step it has taken is a step
    this rung would take: same shape, data, optimizer, and learning rate at each step."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    old = Rung.from_json(state["rung"])
    diff = changed_fields(state, r, BRANCH_FIELDS)
    bad = [s for s in range(state["step"]) if lr_at(s, old) != lr_at(s, r)]
    if diff or bad or state["step"] > r.steps:
        why = f"fields {diff}" if diff else f"the learning rate at step {bad[0]}" if bad else ""
        why = why or f"its step {state['step']} > {r.steps}"
        raise ValueError(f"{path} cannot start rung {r.id}: it differs in {why}")
    return state


def check_stable_run(past: dict[str, Any], r: Rung) -> None:
    """Raises the Divergence of the stable run whose state `past` is (`save_diverged_state`),
    so that its later segments and branches are recorded as diverged too."""
    if past.get("diverged"):
        d = past["diverged"]
        msg = f"{r.id}: the stable run it continues diverged at step {d['step']}"
        raise Divergence(msg, d["step"], float(d["loss"]), d["lr"])


def save_state(run: Run, progress: Progress, clock: Clock, path: str) -> None:
    """A WSD stable segment's end: the whole state at its last step to `path` for the
    next segment and the cooldown branches (--init-state), and no model."""
    save_checkpoint(run, progress, clock, Path(path))
    shutil.rmtree((run.out / CHECKPOINT).parent, ignore_errors=True)
    print(f"{run.r.id}: saved the state at step {progress.step} to {path}", flush=True)


def save_diverged_state(run: Run, progress: Progress, err: Divergence, path: str) -> None:
    """A WSD stable segment that diverged: a state without weights that says so, which
    each later segment and branch passes on (`check_stable_run`), so they are recorded as
    diverged too instead of failing."""
    state = {
        "rung": run.r.to_json(),
        "step": progress.step if progress.rows else 0,
        "log": progress.saved(),
        "diverged": err.record(),
    }
    with atomic_file(Path(path)) as tmp:
        torch.save(state, tmp)
    shutil.rmtree((run.out / CHECKPOINT).parent, ignore_errors=True)
    print(f"{run.r.id}: diverged at step {err.step}; saved that to {path}", flush=True)


def branch_start_weights(init_state: str | None, before: int) -> tuple[dict, int] | None:
    """(model state, its step) of the WSD state a branch started from, if it has weights
    from before step `before`; else None."""
    if not init_state:
        return None
    state = torch.load(init_state, map_location="cpu", weights_only=True)
    if "model" in state and state["step"] < before:
        return state["model"], state["step"]
    return None


# ----------------------------------------------------------------------------- outputs


def train_summary(
    run: Run, progress: Progress, clock: Clock, done: int | None = None
) -> dict[str, Any]:
    """train.json (its keys: docs/training.md); `done`: the steps taken (all of them
    unless the run diverged)."""
    r, device, last = run.r, run.device, progress.rows[-1] if progress.rows else None
    fpt = flops_per_token(r.shape)
    done = r.steps if done is None else done
    tokens_run = max(0, done - progress.start) * r.batch_tokens
    rate = tokens_run / clock.train_s if clock.train_s > 0 else None  # this job's steps
    return {
        "rung": r.id,
        "family": r.family,
        "parametrization": r.parametrization,
        "mup_base_width": r.base_width,
        **run.params,
        "params_match_plan": run.params == param_groups(r.shape),
        "tokens": r.tokens,
        "steps": r.steps,
        "batch_tokens": r.batch_tokens,
        "micro_batch": run.micro,
        "grad_accum": run.local // run.micro,
        "flops_per_token": fpt,
        "flops": fpt * r.tokens,
        "wall_s": clock.wall(),
        "train_s": clock.train_total(),
        "tokens_per_s": rate,
        "mfu": mfu(run, rate),
        "peak_flops_per_device": run.peak,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "device_type": device.type,  # "device" is the GPU's product name on CUDA
        "precision": run.precision,
        "compile": run.compiled,
        "world_size": run.world,
        "threads": torch.get_num_threads(),
        "loss_nats": last.loss_nats if last else None,
        "val_loss_nats": last.val_loss_nats if last else None,
        "resumed_from_step": progress.start,
        "torch": torch.__version__,
        "diverged": False,
    }


def write_outputs(run: Run, progress: Progress, clock: Clock) -> dict[str, Any]:
    """model/, train_log.csv, then train.json last; then the checkpoint goes (the model is
    the artifact now). Returns train.json's contents."""
    r = run.r
    if progress.start == r.steps and not progress.rows:
        raise RuntimeError("checkpoint holds no log rows")
    with atomic_dir(run.out / MODEL_DIR) as tmp:
        save_model(run.model, r.shape, tmp, r.base_width)
    write_text(run.out / TRAIN_LOG_CSV, log_csv(progress.rows))
    summary = train_summary(run, progress, clock)
    write_json(run.out / TRAIN_JSON, summary)
    shutil.rmtree((run.out / CHECKPOINT).parent, ignore_errors=True)
    print(
        f"{r.id}: done, {r.steps} steps, loss {summary['loss_nats']:.4f}, "
        f"val {summary['val_loss_nats']:.4f}, {fmt_time(summary['wall_s'])}",
        flush=True,
    )
    return summary


# ----------------------------------------------------------------------------- divergence


class Divergence(RuntimeError):
    """The loss became NaN or inf at `step` (completed steps, 1-based) under learning rate
    `lr`; the message names the rung and the step. Not an error of the job: the rung is
    recorded as diverged (`write_diverged`), which is what a sweep's high lr is for."""

    def __init__(self, message: str, step: int, loss: float, lr: float) -> None:
        super().__init__(message)
        self.step, self.loss, self.lr = step, loss, lr

    def record(self) -> dict[str, Any]:
        """What train.json (and a WSD state) keep of it; the loss as text (JSON has no NaN)."""
        return {"step": self.step, "loss": str(self.loss), "lr": self.lr}


def write_diverged(
    run: Run, progress: Progress, clock: Clock, err: Divergence, init_state: str | None
) -> dict[str, Any]:
    """A diverged rung's outputs, so that the study goes on without it: model/ with the
    last finite weights (`last_finite_weights`), train_log.csv up to the last finite step,
    and train.json with `diverged: true`, the step, the loss and the last finite loss.
    The job then exits 0: the divergence is a result, and rerunning it (a retry) would
    diverge again at the same step. Returns train.json's contents."""
    r, last = run.r, progress.rows[-1] if progress.rows else None
    weights, model_step = last_finite_weights(run, err.step, init_state)
    run.model.load_state_dict(weights)
    with atomic_dir(run.out / MODEL_DIR) as tmp:
        save_model(run.model, r.shape, tmp, r.base_width)
    write_text(run.out / TRAIN_LOG_CSV, log_csv(progress.rows))
    summary = train_summary(run, progress, clock, done=err.step)
    summary.update(
        loss_nats=None,
        val_loss_nats=None,
        diverged=True,
        diverged_at_step=err.step,
        diverged_loss=str(err.loss),
        diverged_lr=err.lr,
        last_finite_step=last.step if last else 0,
        last_finite_loss_nats=last.loss_nats if last else None,
        model_step=model_step,
    )
    write_json(run.out / TRAIN_JSON, summary)
    shutil.rmtree((run.out / CHECKPOINT).parent, ignore_errors=True)
    print(
        f"{r.id}: diverged at step {err.step} of {r.steps} (loss {err.loss}, lr {err.lr:.3g}); "
        f"recorded in {TRAIN_JSON} as diverged, with the weights of step {model_step}",
        flush=True,
    )
    return summary


def last_finite_weights(run: Run, before: int, init_state: str | None) -> tuple[dict, int]:
    """(model state, its step): the newest weights this job can vouch for at a divergence
    at step `before`: its own checkpoint (written only after its losses were checked), else
    the state a WSD branch started from, else the initial weights (rebuilt from the seed)."""
    own = load_checkpoint(run.out / CHECKPOINT, run.r)
    if own is not None and own["step"] < before:
        return own["model"], own["step"]
    return branch_start_weights(init_state, before) or (
        build_model(run.r.shape, run.r.seed, run.r.base_width).state_dict(),
        0,
    )


# ----------------------------------------------------------------------------- CLI


def torchrun_args(r: Rung, env: dict[str, str]) -> list[str]:
    """torchrun's arguments for this node: `--standalone` on one node; on a node of a
    multi-node job (`ladder launch --nodes` set LADDER_NNODES etc., ladder.devices) one
    agent per node meeting in a c10d rendezvous on the first node. c10d numbers the nodes
    in the order they join (torchrun ignores --node-rank with it, and warns, so SLURM's
    node id only names the node in the log); only global rank 0 writes, and every rank
    restores the same checkpoint, so nothing depends on which node holds rank 0."""
    nodes = int(env.get(devices.NNODES_ENV, "1"))
    if nodes == 1:
        return ["--standalone", f"--nproc-per-node={int(r.gpus)}"]
    return [
        f"--nnodes={nodes}",
        f"--nproc-per-node={int(r.gpus) // nodes}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={env[devices.RDZV_ENDPOINT_ENV]}",
        f"--rdzv-id={env.get(devices.RDZV_ID_ENV, 'ladder')}",
    ]


def relaunch_under_torchrun(r: Rung, argv: list[str]) -> None:
    """A rung with gpus > 1 on a CUDA machine, or any node of a multi-node job: replace
    this process by torchrun (exec, so SLURM's signals reach torchrun, which forwards them
    to every rank)."""
    args = torchrun_args(r, dict(os.environ))
    n = int(r.gpus) // int(os.environ.get(devices.NNODES_ENV, "1"))  # on this node
    if resolve_device(r.device).type == "cuda" and torch.cuda.device_count() < n:
        raise ValueError(f"rung asks for {n} GPUs here but {torch.cuda.device_count()} are visible")
    cmd = [sys.executable, "-m", "torch.distributed.run", *args]
    cmd += ["-m", "ladder.cli", "train", *argv]
    # torchrun forwards SIGTERM to its workers but dies of SIGUSR1 (default action);
    # ignoring it here is inherited through exec, so the agent survives while every
    # worker, which installs its own handler, checkpoints (SLURM signals all processes).
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    sys.stdout.flush()
    os.execv(sys.executable, cmd)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ladder train", description=__doc__.splitlines()[0])
    ap.add_argument("--rung-json", required=True, help="the rung as JSON, or @file.json")
    ap.add_argument("--tokens-dir", required=True, help="meta.json and its token shards")
    ap.add_argument("--out-dir", required=True, help="the run directory (model/, train.json)")
    ap.add_argument(
        "--val-tokens",
        type=int,
        default=None,
        help="val tokens scored at the learning curve's intermediate points, spread over the "
        "evaluation slice (default: 4 × batch_tokens)",
    )
    ap.add_argument(
        "--eval-tokens",
        type=int,
        default=EVAL_TOKENS,
        help="the evaluation slice (eval.max_tokens, as `ladder evaluate --max-tokens`): the "
        f"last point of the learning curve scores all of it (default {EVAL_TOKENS})",
    )
    ap.add_argument("--no-resume", action="store_true", help="ignore any checkpoint")
    ap.add_argument("--init-state", help="start from this saved state (WSD cooldown branch)")
    ap.add_argument("--stop-step", type=int, help="stop after this step (WSD stable segment)")
    ap.add_argument("--state-out", help="with --stop-step: save the full state here")
    ap.add_argument(
        "--checkpoints-out",
        help="the folder of the models kept at the rung's keep_steps, step<N>/ each, written "
        "(empty if none) when the job ends (default: OUT_DIR/checkpoints; a WSD stable "
        "segment, with --stop-step, keeps models only where this is given)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        help="CPU threads granted to the job (default: $OMP_NUM_THREADS, which Snakemake "
        "sets to the job's {threads}); caps the rung's threads, shared by its DDP ranks",
    )
    ap.add_argument(
        "--tracking",
        help="TensorBoard / W&B settings, JSON or @file (default: $LADDER_TRACKING, which "
        "the Snakefile sets from the study's `tracking` section; see ladder.tracking)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser()
    args = ap.parse_args(argv)
    if (args.stop_step is None) != (args.state_out is None):
        ap.error("--stop-step and --state-out go together")
    try:
        r = Rung.from_arg(args.rung_json)
        # one node: DDP on its GPUs; a node of a multi-node job: always (also on the CPU,
        # where its ranks use gloo), else every node would train the rung on its own
        multi_node = int(os.environ.get(devices.NNODES_ENV, "1")) > 1
        cuda = resolve_device(r.device).type == "cuda"
        if "WORLD_SIZE" not in os.environ and (multi_node or (r.gpus > 1 and cuda)):
            relaunch_under_torchrun(r, argv)
        return train(
            r,
            args.tokens_dir,
            args.out_dir,
            args.val_tokens,
            not args.no_resume,
            eval_tokens=args.eval_tokens,
            init_state=args.init_state,
            stop_step=args.stop_step,
            state_out=args.state_out,
            threads=args.threads,
            tracking=Tracking.from_arg(args.tracking),
            kept_out=args.checkpoints_out,
        )
    except (DataError, ValueError, OSError) as e:
        return failed("ladder train", e)
