"""The trainer: schedules, every family end to end, exact resume after a kill, NaN
detection, and DDP on gloo. Tiny shapes and few steps; one CPU thread."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ladder import train as T
from ladder.loss import LossModel
from ladder.model import param_groups
from ladder.rung import Rung
from ladder.shards import step_batch
from tests.conftest import (
    ENV,
    VOCAB,
    assert_same_run,
    make_shards,
    read_log,
    run,
    start_subprocess,
    tiny_rung,
    wait_for,
    wait_until,
)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("tokens"))


# ----------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule", ["cosine", "constant", "wsd"])
def test_schedule_shapes(schedule):
    r = dataclasses.replace(
        tiny_rung(), steps=200, lr=1e-2, min_lr_frac=0.1, warmup_frac=0.1,
        decay_frac=0.25, schedule=schedule,
    )  # fmt: skip
    lrs = np.array([T.lr_at(s, r) for s in range(r.steps)])
    np.testing.assert_allclose(lrs[:20], 1e-2 * np.arange(1, 21) / 20)  # linear warmup
    assert lrs.max() == pytest.approx(1e-2)
    after = lrs[20:]
    if schedule == "constant":
        assert np.all(after == 1e-2)
        return
    assert np.all(np.diff(after) <= 1e-15)  # never rises after warmup
    assert lrs[-1] == pytest.approx(1e-3)  # reaches min_lr_frac · lr at the last step
    if schedule == "cosine":
        mid = 20 + (200 - 1 - 20) / 2
        assert T.lr_at(int(mid), r) == pytest.approx(5.5e-3, rel=0.02)  # half way down
    else:  # wsd: stable until the last 25%, then 1 - sqrt down to min
        assert np.all(lrs[20:150] == 1e-2) and lrs[150] < 1e-2
        q = (175 - 150 + 1) / 50
        assert lrs[175] == pytest.approx(1e-3 + 9e-3 * (1 - q**0.5))


def test_eval_steps_are_log_spaced_and_end():
    r = dataclasses.replace(tiny_rung(), steps=1000, eval_points=4)
    assert T.eval_steps(r) == {1, 10, 100, 1000}
    assert T.eval_steps(dataclasses.replace(r, eval_points=0)) == {1000}


def test_windows_depend_only_on_seed_and_step(shards):
    meta = json.loads((shards / "meta.json").read_text())
    data = np.fromfile(shards / "train.bin", dtype=np.uint16)
    r = tiny_rung()
    a, b = step_batch(data, r, 5, meta), step_batch(data, r, 5, meta)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[0][:, 1:], a[1][:, :-1])
    assert not np.array_equal(a[0], step_batch(data, r, 6, meta)[0])


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_family_trains_and_reloads(family, shards, tmp_path):
    import transformers as tf

    rung = tiny_rung(family, tokens=1280, lr=1e-2)
    assert run(rung, shards, tmp_path) == 0
    info = json.loads((tmp_path / "train.json").read_text())
    for key, value in param_groups(rung.shape).items():
        assert info[key] == value, key
    assert info["steps"] == rung.steps == 10 and info["tokens"] == 1280
    assert info["flops"] == info["flops_per_token"] * 1280
    assert info["mfu"] is None and info["device"] == "cpu" and info["precision"] == "fp32"
    assert info["world_size"] == 1 and info["resumed_from_step"] == 0
    assert not (tmp_path / "ckpt").exists()  # removed once the run is complete

    log = read_log(tmp_path)
    assert list(log[0]) == T.LOG_COLUMNS and len(log) == rung.steps
    assert log[-1]["val_loss_nats"] != "" and log[-1]["step"] == "10"
    assert float(log[-1]["loss_nats"]) < float(log[0]["loss_nats"])  # it learns
    assert float(log[-1]["loss_nats"]) == info["loss_nats"]

    auto = tf.AutoModelForMaskedLM if family == "bert" else tf.AutoModelForCausalLM
    model = auto.from_pretrained(tmp_path / "model")
    assert sum(p.numel() for p in model.parameters()) == info["params_total"]
    if family != "bert":  # the reloaded model predicts with the trained weights
        x = torch.from_numpy(np.fromfile(shards / "val.bin", np.uint16)[:16].astype(np.int64))
        with torch.no_grad():
            hf = model(input_ids=x[None], labels=x[None]).loss
            ours = LossModel(model, family)(x[None, :-1], x[1:]) / 15
        assert float(ours) == pytest.approx(float(hf), rel=1e-5)


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_final_val_loss_is_eval_jsons(family, shards, tmp_path):
    """One validation loss per checkpoint: the learning curve's last point scores evaluate's
    whole slice, so it equals eval.json's loss for the same weights (batch sizes differ: the
    sums differ in order only); the intermediate points score windows spread over that slice,
    not its first few."""
    from ladder import evaluate

    rung = tiny_rung(family, tokens=1280, lr=1e-2)
    assert run(rung, shards, tmp_path / "run", "--eval-tokens", "2000") == 0
    info = json.loads((tmp_path / "run" / "train.json").read_text())
    argv = ["--rung-json", rung.to_json(), "--model-dir", str(tmp_path / "run" / "model"),
            "--tokens-dir", str(shards), "--max-tokens", "2000", "--batch-size", "7",
            "--out", str(tmp_path / "eval.json")]  # fmt: skip
    assert evaluate.main(argv) == 0
    got = json.loads((tmp_path / "eval.json").read_text())
    assert info["val_loss_nats"] == pytest.approx(got["loss_nats"], rel=1e-6)
    assert float(read_log(tmp_path / "run")[-1]["val_loss_nats"]) == info["val_loss_nats"]
    meta = json.loads((shards / "meta.json").read_text())
    val = np.fromfile(shards / "val.bin", np.uint16)
    inputs, _, pick = T.curve_slice(val, rung, meta, None, 2000, micro=4)
    assert len(inputs) == got["eval_windows"] == (2000 - (family != "bert")) // 16
    assert len(pick) == 4 * rung.batch_tokens // 16  # 4 batches' worth, whole micro-batches
    assert pick[0] == 0 and pick[-1] == len(inputs) - 1  # spread over the whole slice
    assert np.all(np.diff(pick) >= len(inputs) // len(pick) - 1)


def test_bad_token_id_fails_clearly(tmp_path, capsys):
    d = make_shards(tmp_path / "tok", n_train=2000, n_val=500)
    np.full(10, VOCAB + 5, np.uint16).tofile(d / "val.bin")
    meta = json.loads((d / "meta.json").read_text())
    meta["val"]["n_tokens"] = 10
    (d / "meta.json").write_text(json.dumps(meta))
    assert run(tiny_rung(), d, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "val.bin holds token id 305" in err and "vocab_size is 300" in err


def test_nan_stops_at_the_step_it_occurs(shards, tmp_path, monkeypatch, capsys):
    forward, calls = LossModel.forward, []

    def poisoned(self, *a, **kw):
        loss = forward(self, *a, **kw)
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == 3 * 2:  # step 3's second micro-batch (2 per step)
                return loss * float("nan")
        return loss

    monkeypatch.setattr(LossModel, "forward", poisoned)
    rung = tiny_rung(eval_points=0, micro_batch=4)  # 8 sequences per step → 2 micro-batches
    assert run(rung, shards, tmp_path) == 0  # a divergence is a result, not a failure
    assert "loss is nan at step 3" in capsys.readouterr().err
    summary = json.loads((tmp_path / "train.json").read_text())
    assert summary["diverged"] is True and summary["diverged_at_step"] == 3
    assert summary["diverged_loss"] == "nan" and summary["loss_nats"] is None
    assert [int(row["step"]) for row in read_log(tmp_path)] == [1, 2]  # finite steps only
    assert summary["last_finite_loss_nats"] == float(read_log(tmp_path)[-1]["loss_nats"])
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert not (tmp_path / "ckpt").exists()  # nothing to resume: it would diverge again


def test_a_diverged_run_keeps_the_models_before_its_divergence(shards, tmp_path, monkeypatch):
    from tests.conftest import nan_loss_from

    nan_loss_from(monkeypatch, 6)
    rung = dataclasses.replace(tiny_rung(eval_points=0), keep_steps="2 4 8 12")
    assert run(rung, shards, tmp_path) == 0
    assert json.loads((tmp_path / "train.json").read_text())["diverged_at_step"] == 6
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step2", "step4"]


def test_threads_never_exceed_the_grant(shards, tmp_path, monkeypatch):
    """A rung asking for 64 threads in a job Snakemake granted 1 (OMP_NUM_THREADS, which
    it sets to {threads}) runs on 1; --threads caps the same way."""
    from ladder.runtime import job_threads

    assert job_threads(64, 1) == 1 and job_threads(2, 8) == 2 and job_threads(4, 8, 2) == 4
    assert job_threads(4, 2, processes=4) == 1  # DDP ranks share the grant, at least one each
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert job_threads(64) == 1
    assert run(tiny_rung(tokens=256, threads=64), shards, tmp_path) == 0
    assert json.loads((tmp_path / "train.json").read_text())["threads"] == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert run(tiny_rung(tokens=256, threads=64), shards, tmp_path / "b", "--threads", "1") == 0
    assert json.loads((tmp_path / "b" / "train.json").read_text())["threads"] == 1


# ----------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def long_rung() -> Rung:
    # long enough (~1-2 s of steps) to be interrupted; checkpoints every ~0.1 s
    return tiny_rung(tokens=128 * 300, checkpoint_minutes=0.002, eval_points=4)


@pytest.fixture(scope="module")
def reference(long_rung, shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert run(long_rung, shards, out) == 0
    return out


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_resume_after_kill_is_exact(how, long_rung, shards, reference, tmp_path):
    proc = start_subprocess(long_rung, shards, tmp_path)
    wait_for(tmp_path / "ckpt" / "state.pt", proc)
    proc.send_signal(how)
    rc = proc.wait(timeout=60)
    if how == signal.SIGTERM:  # graceful: checkpoint at the end of the step, exit 143
        assert rc == 128 + signal.SIGTERM, proc.stdout.read().decode()
    assert not (tmp_path / "train.json").exists() and not (tmp_path / "model").exists()
    assert run(long_rung, shards, tmp_path) == 0
    info = json.loads((tmp_path / "train.json").read_text())
    assert 0 < info["resumed_from_step"] < long_rung.steps
    assert_same_run(tmp_path, reference)


def test_kept_models_survive_a_kill_and_equal_an_uninterrupted_runs(long_rung, shards, tmp_path):
    """The models kept at keep_steps (tasks.checkpoints) are staged beside the checkpoint:
    a job killed after one was kept resumes past it without redoing it, and ends with the
    same checkpoints/ as a run never killed, bit for bit."""
    from ladder.artifacts import KEPT_STAGING

    rung = dataclasses.replace(long_rung, keep_steps="20 200")
    reference = tmp_path / "reference"
    assert run(rung, shards, reference) == 0
    out = tmp_path / "killed"
    proc = start_subprocess(rung, shards, out)
    wait_for(out / KEPT_STAGING / "step20", proc)

    def checkpoint_step() -> int:
        path = out / "ckpt" / "state.pt"
        return path.exists() and torch.load(path, weights_only=True)["step"] >= 20

    wait_until("a checkpoint after step 20", checkpoint_step, 240, proc, every_s=0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (out / "checkpoints").exists()  # published only when the job ends
    assert run(rung, shards, out) == 0
    assert 20 <= json.loads((out / "train.json").read_text())["resumed_from_step"] < rung.steps
    assert_same_run(out, reference)
    for step in (20, 200):
        kept = out / "checkpoints" / f"step{step}"
        same = reference / "checkpoints" / f"step{step}" / "model.safetensors"
        assert (kept / "model.safetensors").read_bytes() == same.read_bytes()
        record = json.loads((kept / "checkpoint.json").read_text())
        assert record["step"] == step and record["tokens"] == step * rung.batch_tokens
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step20", "step200"]
    assert not (out / "ckpt").exists()  # the staging went with the checkpoint


def test_checkpoint_of_another_config_is_ignored(long_rung, shards, tmp_path):
    other = dataclasses.replace(long_rung, lr=long_rung.lr / 2)
    proc = start_subprocess(other, shards, tmp_path)
    wait_for(tmp_path / "ckpt" / "state.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert run(long_rung, shards, tmp_path) == 0
    assert json.loads((tmp_path / "train.json").read_text())["resumed_from_step"] == 0


# ----------------------------------------------------------------------------- DDP


def test_ddp_gloo_matches_single_process(long_rung, shards, tmp_path):
    rung = dataclasses.replace(long_rung, steps=20, tokens=20 * 128, eval_points=2)
    single = tmp_path / "single"
    assert run(rung, shards, single) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "ladder.cli", "train", "--rung-json", rung.to_json(),
           "--tokens-dir", str(shards), "--out-dir", str(tmp_path / "ddp")]  # fmt: skip
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    info = json.loads((tmp_path / "ddp" / "train.json").read_text())
    assert info["world_size"] == 2
    a, b = read_log(single), read_log(tmp_path / "ddp")
    # Same windows per step (drawn for the whole step, then split across ranks) and here
    # the same split into forward passes (rank r = the single process's micro-batch r), so
    # only the gradient reduction differs: gloo sums the two ranks' gradients, scaled by
    # powers of two — exact in floating point, and in practice the runs are identical.
    # The tolerance allows for other reduction orders (NCCL, more ranks): rounding only.
    for x, y in zip(a, b, strict=True):
        assert float(y["loss_nats"]) == pytest.approx(float(x["loss_nats"]), abs=1e-5)
