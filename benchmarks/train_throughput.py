"""Training throughput: Ladder's trainer step vs a plain HF baseline, per shape.

    python benchmarks/train_throughput.py                  # CPU: small shapes, < 1 minute
    python benchmarks/train_throughput.py --device cuda    # the issue's GPU shapes
    python benchmarks/train_throughput.py --device cuda --shapes llama:12x768 \
        --baselines eager,compile --json out.json          # + HF under torch.compile

All sides train the same randomly initialised model on the same random tokens with the
same fused AdamW, gradient clipping and precision (bf16 autocast on CUDA, fp32 on CPU):
- ladder:   `ladder.train.train_step` on `LossModel` (chunked linear cross-entropy,
            no fp32 logits), torch.compile of the model body when compile is on
            (default: on CUDA), pinned asynchronous host→device copies;
- baselines (`--baselines`): `model(input_ids, labels=input_ids).loss`, HF's path, which
            upcasts all logits to fp32 for the loss: `eager` (default), and/or `compile`
            (the whole HF model under torch.compile).
It prints tokens/s, MFU and ladder/baseline. MFU = flops_per_token × tokens/s / peak,
flops_per_token = 6·N_with_head + 12·layers·seq·d_attn (ladder.model), and the peak is
the device's dense bf16 tensor-core rate (989 TFLOP/s on H100 SXM/H200); none on CPU.
Timing starts after warm-up steps (compilation happens there); the two sides run in
alternating blocks and each keeps its best block, so a busy machine hurts both alike.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ladder.loss import LossModel
from ladder.model import ModelShape, build_model, default_d_ff, flops_per_token, param_groups
from ladder.rung import Rung
from ladder.runtime import (
    autocast_for,
    peak_flops,
    resolve_compile,
    resolve_device,
    resolve_precision,
    set_threads,
)
from ladder.train import make_optimizer, to_device, train_step

# (family, n_layer, d_model, n_head): the reference shapes on GPU, small ones on CPU
GPU_SHAPES = [("gpt2", 6, 384, 6), ("gpt2", 12, 768, 12), ("llama", 24, 1024, 16)]
CPU_SHAPES = [("llama", 2, 64, 4), ("gpt2", 2, 128, 8), ("llama", 4, 128, 8)]


def rung_for(s: ModelShape, micro: int, compile_: str, precision: str, device: str) -> Rung:
    return Rung(
        id=f"{s.family}-{s.n_layer}x{s.d_model}", **s.__dict__, tokens=0, steps=1, seed=0,
        lr=1e-3, min_lr_frac=0.1, warmup_frac=0.0, schedule="constant", decay_frac=0.0,
        batch_tokens=micro * s.seq_len, micro_batch=micro, weight_decay=0.1, beta1=0.9,
        beta2=0.95, grad_clip=1.0, device=device, precision=precision, compile=compile_,
        threads=1, gpus=1, log_every_s=10, checkpoint_minutes=10, eval_points=0,
        mlm_probability=0.15,
    )  # fmt: skip


def clock(device: torch.device) -> float:
    """GPU: wall time after a sync. CPU: this process's CPU time, which a shared machine's
    other jobs disturb far less than wall time (the trainer uses one thread here)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def bench_shape(s: ModelShape, args, device: torch.device) -> dict:
    r = rung_for(s, args.micro_batch, args.compile, args.precision, str(device))
    precision = resolve_precision(r.precision, device)
    autocast = autocast_for(precision, device)
    rng = np.random.default_rng(0)
    data = [rng.integers(0, s.vocab_size, (args.micro_batch, s.seq_len + 1)) for _ in range(4)]
    n_pred = args.micro_batch * s.seq_len

    # ladder: exactly the trainer's step (train.train_step on LossModel)
    model = build_model(s, seed=0).to(device)
    compiled = resolve_compile(r.compile, device)
    if compiled:
        model.base_model.compile()
    loss_model = LossModel(model, s.family, compiled_loss=compiled)
    opt = make_optimizer(model, r, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    ladder_batches = [[to_device(w[:, :-1], w[:, 1:], s.family, device)] for w in data]

    def ladder_step(i: int) -> None:
        train_step(loss_model, opt, scaler, autocast, ladder_batches[i % 4], 1.0 / n_pred, r)

    # baselines: HF's own loss (labels=), eager or compiled, same optimizer, clipping,
    # precision
    base_batches = [torch.from_numpy(w[:, :-1]).to(device) for w in data]

    def hf_step(base, base_opt):
        def step(i: int) -> None:
            with autocast:
                loss = base(input_ids=base_batches[i % 4], labels=base_batches[i % 4]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(base.parameters(), r.grad_clip, foreach=True)
            base_opt.step()
            base_opt.zero_grad(set_to_none=True)

        return step

    steps = {"ladder": ladder_step}
    for name in args.baselines:
        base = build_model(s, seed=0).to(device)
        if name == "compile":
            base.compile()
        steps[f"hf_{name}"] = hf_step(base, make_optimizer(base, r, device))

    for i in range(args.warmup):  # compilation happens here, untimed
        for step in steps.values():
            step(i)
    # alternate timed blocks and keep each side's best: robust to a busy machine
    best = dict.fromkeys(steps, math.inf)
    block = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for name, step in steps.items():
            t0 = clock(device)
            for i in range(block):
                step(i)
            best[name] = min(best[name], (clock(device) - t0) / block)

    tokens = args.micro_batch * s.seq_len
    peak = peak_flops(device)
    groups = param_groups(s)
    out = {
        "shape": r.id,
        "params": groups["params_total"],
        "params_with_head": groups["params_with_head"],
        "flops_per_token": flops_per_token(s),
        "compile": compiled,
    }
    for name, t in best.items():
        out[f"{name}_tokens_per_s"] = tokens / t
        out[f"{name}_mfu"] = flops_per_token(s) * tokens / t / peak if peak else None
    for name in args.baselines:
        out[f"ratio_{name}"] = best[f"hf_{name}"] / best["ladder"]
    return out


def pct(v: float | None) -> str:
    return f"{v:.1%}" if v is not None else "-"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--shapes", default=None, help="e.g. gpt2:6x384,llama:24x1024 (head dim 64)")
    ap.add_argument("--seq-len", type=int, default=None, help="default 1024 GPU / 128 CPU")
    ap.add_argument("--vocab", type=int, default=None, help="default 32768 GPU / 2048 CPU")
    ap.add_argument("--micro-batch", type=int, default=None, help="default 16 GPU / 16 CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (30 GPU / 12 CPU)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timed blocks per side")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (5 GPU / 2 CPU)")
    ap.add_argument("--compile", default="auto", help="auto (on for CUDA), true, false")
    ap.add_argument("--precision", default="auto", help="auto (bf16 on CUDA), fp32, bf16")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument(
        "--baselines",
        default="eager",
        help="HF baselines, comma-separated: eager (HF as is), compile (under torch.compile)",
    )
    ap.add_argument("--json", help="also write the results here (one object per shape)")
    args = ap.parse_args(argv)
    args.baselines = [b for b in args.baselines.split(",") if b]
    if not set(args.baselines) <= {"eager", "compile"}:
        ap.error(f"--baselines: {args.baselines} are not all in eager, compile")
    import transformers

    transformers.logging.set_verbosity_error()  # HF's one-time notes about the loss type
    set_threads(args.threads)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.set_float32_matmul_precision("high")
    seq = args.seq_len or (1024 if gpu else 128)
    vocab = args.vocab or (32768 if gpu else 2048)
    args.micro_batch = args.micro_batch or 16
    args.steps = args.steps or (30 if gpu else 12)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 2)
    if args.shapes:
        spec = []
        for item in args.shapes.split(","):
            fam, dims = item.split(":")
            n_layer, d = (int(v) for v in dims.split("x"))
            spec.append((fam, n_layer, d, max(1, d // 64)))
    else:
        spec = GPU_SHAPES if gpu else CPU_SHAPES
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {args.threads} thread(s)"
    print(f"device: {name} | torch {torch.__version__} | seq {seq} | vocab {vocab} | "
          f"micro-batch {args.micro_batch} | {args.steps} timed steps")  # fmt: skip
    sides = [("ladder", "ladder")] + [(f"hf_{b}", f"HF {b}") for b in args.baselines]
    head = f"{'shape':<16}{'params':>9}"
    head += "".join(f"{t + ' tok/s':>17}{'MFU':>7}" for _, t in sides)
    print(head + "".join(f"{'vs ' + b:>11}" for b in args.baselines))
    results = []
    for fam, n_layer, d, n_head in spec:
        s = ModelShape(fam, n_layer, d, n_head, n_head, default_d_ff(fam, d), vocab, seq,
                       tie_embeddings=fam != "llama")  # fmt: skip
        res = bench_shape(s, args, device)
        results.append(res)
        line = f"{res['shape']:<16}{res['params'] / 1e6:>8.1f}M"
        for key, _ in sides:
            line += f"{res[key + '_tokens_per_s']:>17,.0f}{pct(res[key + '_mfu']):>7}"
        line += "".join(f"{res['ratio_' + b]:>10.2f}x" for b in args.baselines)
        print(line, flush=True)
        if args.json:  # after every shape: a later shape that runs out of time loses none
            info = {"device": name, "torch": torch.__version__, "seq_len": seq, "vocab": vocab,
                    "micro_batch": args.micro_batch, "peak_flops": peak_flops(device)}  # fmt: skip
            Path(args.json).write_text(json.dumps({**info, "shapes": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
