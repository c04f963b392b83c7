"""Train one rung: AdamW, LR schedules, mixed precision, exact resume after a kill, DDP.

AdamW with warmup + cosine/constant/WSD, gradient accumulation, bf16 autocast and
torch.compile on CUDA, atomic checkpoints, DDP under torchrun. See docs/training.md.

    ladder train --rung-json '<Rung JSON>' --tokens-dir results/s/tokens --out-dir runs/<rung>
    torchrun --standalone --nproc-per-node 2 -m ladder.cli train ...   (DDP; `ladder train`
    re-launches itself like this when the rung asks for gpus > 1 on a CUDA machine)

Why it is exact and cheap to resume: the windows of step s are drawn by a generator
seeded with (seed, s), for the whole step regardless of world size (rank r takes its
slice), so the data position *is* the step counter, and DDP sees the same data as one
process. A checkpoint (RUNDIR/ckpt/state.pt, temp file + rename) holds weights,
optimizer, grad scaler, step, RNG states and the log so far; it is written every
`checkpoint_minutes` and when SIGTERM/SIGUSR1 arrives (what SLURM sends before a
time limit or preemption; the job then exits 128+signal so the scheduler retries it).
On CPU a resumed run ends with the same weights and loss, bit for bit.

Outputs: RUNDIR/model/ (save_pretrained), train_log.csv, and train.json last; each is
written to a temp name and renamed, so a killed job never leaves a complete-looking run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ladder.artifacts import write_text
from ladder.evaluate import (
    IGNORE,
    DataError,
    LossModel,
    autocast_for,
    check_ids,
    load_meta,
    mean_loss,
    mlm_mask,
    open_split,
    parse_rung,
    resolve_device,
    resolve_precision,
    targets_of,
    val_slice,
)
from ladder.model import build_model, count_params, flops_per_token, param_groups
from ladder.plan import Rung, format_count

LOG_COLUMNS = ["step", "tokens", "loss_nats", "lr", "tokens_per_s", "val_loss_nats"]
# Rung fields that change how a run executes but not what it computes: a checkpoint
# written under other values of these is still resumed (e.g. on more GPUs).
RUNTIME_FIELDS = {"device", "compile", "threads", "gpus", "log_every_s", "checkpoint_minutes"}
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' datasheets, matched in order
# against torch.cuda.get_device_name(); LADDER_PEAK_FLOPS overrides (e.g. 989e12).
PEAK_BF16_FLOPS = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("H20", 148e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
]


class Divergence(RuntimeError):
    """The loss became NaN or inf; the message names the step."""


# ----------------------------------------------------------------------------- schedule


def lr_at(step: int, r: Rung) -> float:
    """Learning rate of step `step` (0-based) of `r.steps`.

    Linear warmup over round(warmup_frac·steps) steps, then
    - cosine: half a cosine from lr to min_lr_frac·lr, reached at the last step;
    - constant: lr;
    - wsd: lr until the last round(decay_frac·steps) steps, then the "1 − sqrt" cooldown
      to min_lr_frac·lr (Hägele et al. 2024, https://arxiv.org/abs/2405.18392, §3).
    """
    n, peak = r.steps, r.lr
    low = r.lr * r.min_lr_frac
    warm = min(n, round(r.warmup_frac * n))
    if step < warm:
        return peak * (step + 1) / warm
    if r.schedule == "constant":
        return peak
    if r.schedule == "cosine":
        p = (step - warm) / max(1, n - 1 - warm)
        return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    if r.schedule == "wsd":
        decay = min(n - warm, round(r.decay_frac * n))
        start = n - decay
        if step < start or decay == 0:
            return peak
        q = (step - start + 1) / decay
        return low + (peak - low) * (1 - math.sqrt(q))
    raise ValueError(f"schedule '{r.schedule}' is not one of cosine, constant, wsd")


def eval_steps(r: Rung) -> set[int]:
    """Completed-step counts at which the val loss is logged: log-spaced, always the end."""
    pts = np.geomspace(1, r.steps, r.eval_points) if r.eval_points > 0 else []
    return {int(round(p)) for p in pts} | {r.steps}


# ----------------------------------------------------------------------------- data


def step_windows(data: np.ndarray, r: Rung, step: int, width: int) -> np.ndarray:
    """All windows (seqs, width) of one optimizer step, from a (seed, step) generator."""
    seqs = r.batch_tokens // r.seq_len
    starts = np.random.default_rng([r.seed, step]).integers(0, len(data) - width + 1, seqs)
    return np.asarray(data[starts[:, None] + np.arange(width)]).astype(np.int64)


def step_batch(data: np.ndarray, r: Rung, step: int, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of one step for all ranks; labels are IGNORE where not predicted."""
    if r.family == "bert":
        win = step_windows(data, r, step, r.seq_len)
        return mlm_mask(win, (r.seed, step), r.mlm_probability, meta["mask_id"], meta["vocab_size"])
    win = step_windows(data, r, step, r.seq_len + 1)
    return win[:, :-1], win[:, 1:]


# ----------------------------------------------------------------------------- helpers


def peak_flops(device: torch.device) -> float | None:
    if os.environ.get("LADDER_PEAK_FLOPS"):
        return float(os.environ["LADDER_PEAK_FLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((f for key, f in PEAK_BF16_FLOPS if key in name), None)


def resolve_compile(value: Any, device: torch.device) -> bool:
    """compile auto → on for CUDA (the big win there), off on CPU (compile time dominates)."""
    v = str(value).lower()
    if v == "auto":
        return device.type == "cuda"
    if v not in ("true", "false"):
        raise ValueError(f"compile: {value!r} is not one of auto, true, false")
    return v == "true"


def make_optimizer(model: torch.nn.Module, r: Rung, device: torch.device):
    """AdamW; weight decay on matrices and embeddings only, not on biases and norms
    (nanoGPT's rule). Fused kernels where this torch has them (CUDA, and CPU >= 2.4)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": r.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    kw = dict(lr=r.lr, betas=(r.beta1, r.beta2), eps=1e-8)
    try:
        return torch.optim.AdamW(groups, fused=device.type in ("cuda", "cpu"), **kw)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, **kw)


def fmt_time(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def log_csv(rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LOG_COLUMNS)
    for row in rows:
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, r: Rung) -> dict | None:
    """The checkpoint if it belongs to this rung (same result-affecting fields), else None."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    old, new = json.loads(state["rung"]), json.loads(r.to_json())
    diff = sorted(k for k in new if k not in RUNTIME_FIELDS and old.get(k) != new[k])
    if diff:
        print(f"ignoring {path}: it was written for other values of {', '.join(diff)}")
        return None
    return state


# Fields a WSD branch may change: a cooldown continues the stable run's state but has its
# own id, length and (to keep the warmup's step count) warmup fraction.
BRANCH_FIELDS = RUNTIME_FIELDS | {"id", "steps", "tokens", "warmup_frac", "design"}


def load_branch_state(path: Path, r: Rung) -> dict:
    """A state saved by `--state-out` of another rung, to continue as this rung (WSD
    cooldown branches; Hägele et al. 2024). Valid only if every step it has taken is a step
    this rung would take: same shape, data, optimizer, and learning rate at each step."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    old = Rung.from_json(state["rung"])
    new = json.loads(r.to_json())
    diff = sorted(
        k for k in new if k not in BRANCH_FIELDS and json.loads(state["rung"]).get(k) != new[k]
    )
    bad = [s for s in range(state["step"]) if lr_at(s, old) != lr_at(s, r)]
    if diff or bad or state["step"] > r.steps:
        why = f"fields {diff}" if diff else f"the learning rate at step {bad[0]}" if bad else ""
        why = why or f"its step {state['step']} > {r.steps}"
        raise ValueError(f"{path} cannot start rung {r.id}: it differs in {why}")
    return state


def replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


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


# ----------------------------------------------------------------------------- training


def train(r: Rung, *args, **kwargs) -> int:
    """Train rung `r` into out_dir (see `_train`). SIGTERM/SIGUSR1 are caught from the very
    start: one that arrives while the job is still loading is acted on after its first
    step (checkpoint, exit 128+signal), instead of killing a job that could have resumed."""
    caught: list[int] = []
    handlers = {
        sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
        for sig in (signal.SIGTERM, signal.SIGUSR1)
    }
    try:
        return _train(r, *args, caught=caught, **kwargs)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _train(
    r: Rung,
    tokens_dir: str,
    out_dir: str,
    val_tokens: int | None,
    resume: bool,
    init_state: str | None = None,
    stop_step: int | None = None,
    state_out: str | None = None,
    caught: list[int] | None = None,
) -> int:
    """Train rung `r` into out_dir. A WSD stable segment passes `stop_step` and `state_out`
    (train to that step, save the full state there, write no model); a cooldown branch
    passes `init_state` (start from such a state unless its own checkpoint is newer).
    `caught` collects the signals received; they are acted on at the end of a step."""
    caught = [] if caught is None else caught
    t_start = time.time()
    end = r.steps if stop_step is None else stop_step
    if not 0 < end <= r.steps:
        raise ValueError(f"--stop-step {stop_step} must be in [1, {r.steps}]")
    import transformers

    transformers.utils.logging.disable_progress_bar()  # the job log is for progress lines
    out = Path(out_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    ddp = world > 1
    torch.set_num_threads(r.threads)
    device = resolve_device(r.device)
    if ddp and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.set_float32_matmul_precision("high")  # TF32 for any fp32 matmul
    precision = resolve_precision(r.precision, device)
    compiled = resolve_compile(r.compile, device)
    master = rank == 0

    # data: checked before any compute, so a bad shard fails in seconds
    meta = load_meta(tokens_dir)
    data = open_split(tokens_dir, "train", meta)
    val = open_split(tokens_dir, "val", meta)
    check_ids(data, r.vocab_size, f"{tokens_dir}/train.bin")
    check_ids(val, r.vocab_size, f"{tokens_dir}/val.bin")
    if r.family == "bert" and meta.get("mask_id") is None:
        raise DataError(f"{tokens_dir}/meta.json: mask_id is null; bert needs a mask token")
    width = r.seq_len + (r.family != "bert")
    if len(data) < width:
        raise DataError(f"{tokens_dir}/train.bin has {len(data)} tokens; need >= {width}")
    seqs = r.batch_tokens // r.seq_len
    if r.batch_tokens % r.seq_len or seqs % world:
        raise ValueError(
            f"batch_tokens {r.batch_tokens} must be a multiple of seq_len × world size "
            f"({r.seq_len} × {world})"
        )
    local = seqs // world
    micro = max(k for k in range(1, min(local, r.micro_batch) + 1) if local % k == 0)

    if ddp:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
    if master:
        # a previous complete run must not survive a failed rerun looking complete
        for stale in ("train.json", "train_log.csv"):
            (out / stale).unlink(missing_ok=True)
        for path in [out / "model", *out.glob(".model.tmp*")]:  # incl. a killed save's temp
            shutil.rmtree(path, ignore_errors=True)

    model = build_model(r.shape, r.seed).to(device)
    groups_real = count_params(model, r.shape)
    groups_plan = param_groups(r.shape)
    if groups_real != groups_plan and master:
        print(f"warning: parameter groups differ from the analytic count: {groups_real}")
    loss_model = LossModel(model, r.family, compiled_loss=compiled)
    opt = make_optimizer(model, r, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    autocast = autocast_for(precision, device)

    ckpt_path = out / "ckpt" / "state.pt"
    state = load_checkpoint(ckpt_path, r) if resume else None
    if state is None and init_state:
        state = load_branch_state(Path(init_state), r)
        if master:
            print(f"{r.id}: continuing from {init_state} (step {state['step']})", flush=True)
    start, rows, wall_before, train_s_before = 0, [], 0.0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        start, rows = state["step"], state["log"]
        wall_before, train_s_before = state["wall_s"], state["train_s"]
        if master:
            print(f"resuming {r.id} from step {start} ({ckpt_path})", flush=True)
    resumed_from = start

    if compiled:
        model.base_model.compile()  # in place: state_dict and save_pretrained unchanged
    step_model = loss_model
    if ddp:
        step_model = torch.nn.parallel.DistributedDataParallel(
            loss_model,
            device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,  # buffers (RoPE) are constants; saves a collective
        )

    # validation slice for the learning curve (a prefix of evaluate.py's slice)
    v_tokens = val_tokens or 4 * r.batch_tokens
    v_in, v_lab = val_slice(val, r.family, r.seq_len, v_tokens, r.mlm_probability, meta)
    n_val = max(1, len(v_in) // micro) * micro if len(v_in) >= micro else len(v_in)
    v_in, v_lab = v_in[:n_val], v_lab[:n_val]
    evals = eval_steps(r)

    fpt = flops_per_token(r.shape)
    peak = peak_flops(device)
    sync_every_step = device.type != "cuda"  # on GPU, read losses at log intervals only
    pending: list[tuple[int, float, torch.Tensor]] = []  # (step, lr, loss tensor)
    t_train = time.perf_counter()
    t_flush, tokens_flush = t_train, start * r.batch_tokens
    t_log, last_ckpt = t_train, time.monotonic()
    train_s = 0.0

    def flush() -> None:
        """Move pending losses to the host (one sync), check them, append log rows."""
        nonlocal t_flush, tokens_flush
        if not pending:
            return
        losses = torch.stack([p[2] for p in pending]).tolist()
        now = time.perf_counter()
        done = pending[-1][0] * r.batch_tokens
        rate = (done - tokens_flush) / max(now - t_flush, 1e-9)
        t_flush, tokens_flush = now, done
        for (s, lr, _), loss in zip(pending, losses, strict=True):
            if not math.isfinite(loss):
                raise Divergence(f"{r.id}: loss is {loss} at step {s} (lr {lr:.3g}); stopping")
            rows.append([s, s * r.batch_tokens, loss, lr, rate, None])
        pending.clear()

    def checkpoint(step: int) -> None:
        flush()  # never save weights after a NaN
        save_checkpoint(
            ckpt_path,
            {
                "rung": r.to_json(),
                "step": step,
                "model": model.state_dict(),
                "optim": opt.state_dict(),
                "scaler": scaler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "log": rows,
                "wall_s": wall_before + time.time() - t_start,
                "train_s": train_s_before + train_s,
            },
        )

    try:
        for step in range(start, end):
            lr = lr_at(step, r)
            for g in opt.param_groups:
                g["lr"] = lr
            inputs, labels = step_batch(data, r, step, meta)
            # predicted tokens of the whole step on all ranks: the exact normalisation
            n_pred = max(1, int((labels != IGNORE).sum()))
            inputs = inputs[rank * local : (rank + 1) * local]
            labels = labels[rank * local : (rank + 1) * local]
            batches = [
                to_device(inputs[m : m + micro], labels[m : m + micro], r.family, device)
                for m in range(0, local, micro)
            ]
            # DDP averages gradients over ranks, hence × world: the step's gradient is
            # that of the mean loss over every predicted token of every rank
            loss_sum = train_step(step_model, opt, scaler, autocast, batches, world / n_pred, r)
            if ddp:
                torch.distributed.all_reduce(loss_sum)
            pending.append((step + 1, lr, loss_sum / n_pred))
            done = step + 1

            now = time.perf_counter()
            due_log = now - t_log >= r.log_every_s
            if sync_every_step or due_log or done in evals or done == end:
                flush()
            if done in evals and master:
                train_s += time.perf_counter() - t_train
                vloss, _ = mean_loss(loss_model, v_in, v_lab, micro, device, autocast)
                rows[-1][5] = vloss
                t_train = time.perf_counter()
                t_flush = t_train  # the eval is not training time
            if due_log and master:
                t_log = now
                rate = rows[-1][4]
                mfu = f" | MFU {fpt * rate / (peak * world):.1%}" if peak else ""
                print(
                    f"{r.id} step {done}/{r.steps} | tokens {format_count(done * r.batch_tokens)}"
                    f" | loss {rows[-1][2]:.4f} | {rate:,.0f} tok/s{mfu}"
                    f" | ETA {fmt_time((r.steps - done) * r.batch_tokens / max(rate, 1e-9))}",
                    flush=True,
                )
            stop = caught[0] if caught else 0
            if ddp:
                # ranks may see the signal at different steps: agree, so that all stop
                # after the same step and none waits forever in the next all-reduce
                flag = torch.tensor([float(stop)], device=device)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                stop = int(flag.item())
            if stop:
                train_s += time.perf_counter() - t_train
                if master:
                    checkpoint(done)
                    name = signal.Signals(stop).name
                    print(f"{r.id}: {name} at step {done}; checkpoint saved", flush=True)
                return 128 + stop
            if master and time.monotonic() - last_ckpt >= r.checkpoint_minutes * 60:
                train_s += time.perf_counter() - t_train
                checkpoint(done)
                last_ckpt = time.monotonic()
                t_train = t_flush = time.perf_counter()
        flush()
        train_s += time.perf_counter() - t_train
    finally:
        if ddp:
            torch.distributed.destroy_process_group()

    if not master:
        return 0
    if state_out:  # a stable segment: hand the whole state on, no model
        train_s_before, train_s = 0.0, train_s_before + train_s
        ckpt_path = Path(state_out)
        checkpoint(end)
        shutil.rmtree(out / "ckpt", ignore_errors=True)
        print(f"{r.id}: saved the state at step {end} to {state_out}", flush=True)
        return 0
    if start == r.steps and not rows:
        raise RuntimeError("checkpoint holds no log rows")
    # outputs: model/ and train_log.csv via temp + rename, train.json last
    tmp = out / f".model.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    replace_dir(tmp, out / "model")
    write_text(out / "train_log.csv", log_csv(rows))
    train_s_total = train_s_before + train_s
    tokens_run = (r.steps - resumed_from) * r.batch_tokens
    rate = tokens_run / train_s if train_s > 0 else None
    summary = {
        "rung": r.id,
        "family": r.family,
        **groups_real,
        "params_match_plan": groups_real == groups_plan,
        "tokens": r.tokens,
        "steps": r.steps,
        "batch_tokens": r.batch_tokens,
        "micro_batch": micro,
        "grad_accum": local // micro,
        "flops_per_token": fpt,
        "flops": fpt * r.tokens,
        "wall_s": wall_before + time.time() - t_start,
        "train_s": train_s_total,
        "tokens_per_s": rate,
        "mfu": fpt * rate / (peak * world) if (peak and rate) else None,
        "peak_flops_per_device": peak,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "precision": precision,
        "compile": compiled,
        "world_size": world,
        "loss_nats": rows[-1][2],
        "val_loss_nats": rows[-1][5],
        "resumed_from_step": resumed_from,
        "torch": torch.__version__,
    }
    write_text(out / "train.json", json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(out / "ckpt", ignore_errors=True)  # done: the model is the artifact
    print(
        f"{r.id}: done, {r.steps} steps, loss {summary['loss_nats']:.4f}, "
        f"val {summary['val_loss_nats']:.4f}, {fmt_time(summary['wall_s'])}",
        flush=True,
    )
    return 0


def relaunch_under_torchrun(r: Rung, argv: list[str]) -> None:
    """A rung with gpus > 1 on a CUDA machine: replace this process by torchrun (exec, so
    SLURM's signals reach torchrun, which forwards them to every rank)."""
    n = int(r.gpus)
    if torch.cuda.device_count() < n:
        raise ValueError(f"rung asks for gpus={n} but {torch.cuda.device_count()} are visible")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc-per-node={n}", "-m", "ladder.cli", "train", *argv]
    # torchrun forwards SIGTERM to its workers but dies of SIGUSR1 (default action);
    # ignoring it here is inherited through exec, so the agent survives while every
    # worker, which installs its own handler, checkpoints (SLURM signals all processes).
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    sys.stdout.flush()
    os.execv(sys.executable, cmd)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="ladder train", description=__doc__.splitlines()[0])
    ap.add_argument("--rung-json", required=True, help="the rung as JSON, or @file.json")
    ap.add_argument("--tokens-dir", required=True, help="train.bin, val.bin, meta.json")
    ap.add_argument("--out-dir", required=True, help="the run directory (model/, train.json)")
    ap.add_argument(
        "--val-tokens",
        type=int,
        default=None,
        help="val tokens for the learning curve (default: 4 × batch_tokens)",
    )
    ap.add_argument("--no-resume", action="store_true", help="ignore any checkpoint")
    ap.add_argument("--init-state", help="start from this saved state (WSD cooldown branch)")
    ap.add_argument("--stop-step", type=int, help="stop after this step (WSD stable segment)")
    ap.add_argument("--state-out", help="with --stop-step: save the full state here")
    args = ap.parse_args(argv)
    if (args.stop_step is None) != (args.state_out is None):
        ap.error("--stop-step and --state-out go together")
    try:
        r = parse_rung(args.rung_json)
        if (
            r.gpus > 1
            and "WORLD_SIZE" not in os.environ
            and resolve_device(r.device).type == "cuda"
        ):
            relaunch_under_torchrun(r, argv)
        return train(
            r,
            args.tokens_dir,
            args.out_dir,
            args.val_tokens,
            not args.no_resume,
            init_state=args.init_state,
            stop_step=args.stop_step,
            state_out=args.state_out,
        )
    except (DataError, ValueError, OSError) as e:
        print(f"ladder train: error: {e}", file=sys.stderr)
        return 2
    except Divergence as e:
        print(f"ladder train: diverged: {e}", file=sys.stderr)
        return 3
