"""The paths a GPU run takes, taken on CPU: torch.compile of training and of the
learning curve's evaluation, bf16 autocast, DDP (gloo) with compile, the fused AdamW,
resuming a compiled run; and the GPU bookkeeping (GPU-hours of a rung on a named GPU).

A GPU run is `compile: auto` + `precision: auto`, i.e. compiled bf16: one compiled bf16
run (the module's `compiled` fixture) is shared by every check that needs one, so the
suite pays for one cold compile (inductor's on-disk cache serves the later ones).
benchmarks/gpu_acceptance.py checks what only a GPU can show."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ladder import aggregate, evaluate
from ladder import train as T
from tests.conftest import ENV, curve, make_shards, read_log, run, tiny_rung

torch.set_num_threads(1)
STEPS = 10
VAL_TOKENS = 8 * 16 + 1  # 8 windows of seq_len 16: whole micro-batches for train and eval


def gpu_rung(**train):
    """The tiny llama rung as a GPU would run it: compiled, bf16 autocast."""
    kw = {"compile": True, "precision": "bf16", "eval_points": 2, "lr": 1e-2, **train}
    return tiny_rung(tokens=128 * STEPS, **kw)


def train_in_process(rung, shards: Path, out: Path, *extra: str) -> int:
    torch._dynamo.reset()  # a fresh model each time: no stale guards, no recompile limit
    # --eval-tokens: the curve's last point scores the same slice `ladder evaluate` reads below
    return run(
        rung, shards, out, "--val-tokens", str(VAL_TOKENS), "--eval-tokens", str(VAL_TOKENS), *extra
    )


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def compiled(shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled")
    assert train_in_process(gpu_rung(), shards, out) == 0
    return out


@pytest.fixture(scope="module")
def eager_bf16(shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eager_bf16")
    assert train_in_process(gpu_rung(compile=False), shards, out) == 0
    return out


def losses(out: Path, key: str = "loss_nats") -> np.ndarray:
    return np.array([float(row[key]) for row in read_log(out) if row[key] != ""])


# ----------------------------------------------------------------------------- compile, bf16


def test_compiled_bf16_run_matches_eager(compiled, eager_bf16, shards, tmp_path):
    info = json.loads((compiled / "train.json").read_text())
    assert info["compile"] is True and info["precision"] == "bf16"
    assert info["device"] == "cpu" and info["device_type"] == "cpu"
    a, b = losses(compiled), losses(eager_bf16)
    assert len(a) == STEPS and a[-1] < a[0]  # it learns
    # the same steps in bf16, fused differently: rounding-level differences only
    np.testing.assert_allclose(a, b, rtol=0, atol=0.02)
    # the learning curve's val loss ran through the compiled body (no-grad graph)
    va, vb = losses(compiled, "val_loss_nats"), losses(eager_bf16, "val_loss_nats")
    assert len(va) == 2
    np.testing.assert_allclose(va, vb, rtol=0, atol=0.02)
    # in place compile: plain state_dict keys, so the saved model reloads as usual
    from safetensors import safe_open

    with safe_open(compiled / "model" / "model.safetensors", "pt") as f:
        assert not [k for k in f.keys() if "_orig_mod" in k]

    # `ladder evaluate` (eager, bf16 autocast as on a GPU) on the compiled run's model
    # measures the slice the compiled run's last val loss was measured on
    args = ["--rung-json", gpu_rung().to_json(), "--model-dir", str(compiled / "model"),
            "--tokens-dir", str(shards), "--max-tokens", str(VAL_TOKENS),
            "--batch-size", "4", "--out", str(tmp_path / "eval.json")]  # fmt: skip
    assert evaluate.main(args) == 0
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["precision"] == "bf16" and ev["eval_windows"] == 8
    assert ev["loss_nats"] == pytest.approx(va[-1], abs=0.02)


def test_bf16_autocast_trains_close_to_fp32(eager_bf16, shards, tmp_path):
    assert train_in_process(gpu_rung(compile=False, precision="fp32"), shards, tmp_path) == 0
    assert json.loads((eager_bf16 / "train.json").read_text())["precision"] == "bf16"
    fp32, bf16 = losses(tmp_path), losses(eager_bf16)
    assert np.all(np.isfinite(bf16)) and bf16[-1] < bf16[0]
    np.testing.assert_allclose(bf16, fp32, rtol=0, atol=0.05)  # bf16's 8-bit mantissa


def test_fused_adamw_is_used_and_matches_the_reference_implementation():
    rung = tiny_rung()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    ref_model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    ref_model.load_state_dict(model.state_dict())
    opt = T.make_optimizer(model, rung, torch.device("cpu"))
    assert all(g["fused"] for g in opt.param_groups)  # what a GPU run gets too
    assert [g["weight_decay"] for g in opt.param_groups] == [rung.weight_decay, 0.0]
    ref = torch.optim.AdamW(
        [
            {"params": [p for p in ref_model.parameters() if p.dim() >= 2],
             "weight_decay": rung.weight_decay},
            {"params": [p for p in ref_model.parameters() if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=rung.lr, betas=(rung.beta1, rung.beta2), eps=1e-8, foreach=False,
    )  # fmt: skip
    x = torch.randn(16, 8)
    for _ in range(3):
        for m, o in ((model, opt), (ref_model, ref)):
            m(x).square().mean().backward()
            o.step()
            o.zero_grad()
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- resume


def test_compiled_run_resumes_after_sigterm_exactly(compiled, shards, tmp_path, monkeypatch):
    """SIGTERM mid-run (what SLURM sends): checkpoint, exit 143; the restart compiles
    again and ends with the uninterrupted compiled run's log and weights."""
    step, calls = T.train_step, []

    def signalled_step(*a, **kw):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # caught: acted on after this step
        return step(*a, **kw)

    monkeypatch.setattr(T, "train_step", signalled_step)
    assert train_in_process(gpu_rung(), shards, tmp_path) == 128 + signal.SIGTERM
    assert (tmp_path / "ckpt" / "state.pt").exists() and not (tmp_path / "train.json").exists()
    monkeypatch.setattr(T, "train_step", step)
    assert train_in_process(gpu_rung(), shards, tmp_path) == 0
    info = json.loads((tmp_path / "train.json").read_text())
    assert info["resumed_from_step"] == 4 and info["compile"] is True
    assert curve(tmp_path) == curve(compiled)
    a = (tmp_path / "model" / "model.safetensors").read_bytes()
    assert a == (compiled / "model" / "model.safetensors").read_bytes()


# ----------------------------------------------------------------------------- DDP


def test_ddp_gloo_with_compile_matches_single_process(compiled, shards, tmp_path):
    """Two ranks, each compiling its model body inside DDP (as `gpus: 2` does on CUDA)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "ladder.cli", "train", "--rung-json", gpu_rung().to_json(),
           "--tokens-dir", str(shards), "--out-dir", str(tmp_path),
           "--val-tokens", str(VAL_TOKENS), "--eval-tokens", str(VAL_TOKENS)]  # fmt: skip
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    info = json.loads((tmp_path / "train.json").read_text())
    assert info["world_size"] == 2 and info["compile"] is True
    # each rank's forward pass is the single process's micro-batch of the same rank;
    # only the gradient reduction differs (see test_train.test_ddp_gloo_matches_single...)
    np.testing.assert_allclose(losses(tmp_path), losses(compiled), rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- bookkeeping


@pytest.mark.parametrize(
    "train_json, hours",
    [
        ({"device": "NVIDIA H200", "device_type": "cuda"}, 2.0),
        ({"device": "NVIDIA H100 80GB HBM3"}, 2.0),  # a train.json from before device_type
        ({"device": "cpu", "device_type": "cpu"}, 0.0),
        ({"device": "cpu"}, 0.0),
    ],
)
def test_gpu_hours_of_a_rung_trained_on_a_named_gpu(train_json, hours, tmp_path):
    """train.json names the GPU by product ("NVIDIA H200"), never "cuda": a GPU rung
    must still count its GPU-hours (wall_s × gpus)."""
    (tmp_path / "train.json").write_text(json.dumps({"wall_s": 3600.0, **train_json}))
    (tmp_path / "eval.json").write_text(json.dumps({"loss_nats": 3.0}))
    plan_row = {"id": "L1-d16-T1K", "gpus": 2, "flops_per_token": 1, "tokens": 1}
    assert aggregate.rung_row(plan_row, tmp_path)["gpu_hours"] == hours
