"""`ladder status` on the tiny study: before it runs, while it runs (one rung frozen
mid-run, then stopped by SIGTERM; one diverging, one failing), and after a rerun; plus
the parsing it relies on (the trainer's progress line, Snakemake's job markers)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ladder import status as S
from ladder import train as T
from ladder.config import load_config
from ladder.estimates import Throughput
from ladder.plan import plan, trained_flops, wsd_plan
from tests.conftest import (
    TINY,
    log_rows,
    make_shards,
    snakemake_cmd,
    tensorboard_scalars,
    tiny_rung,
    wait_until,
    wandb_runs,
    wsd_study,
)

DIVERGES, FAILS, KILLED, PLAIN = "L1-d8-T16.4K", "L1-d16-T16.4K", "L2-d24-T16.4K", "L2-d32-T16.4K"
OVERRIDES = {
    DIVERGES: {"lr": 1.0e9},  # NaN within a few steps, recorded in train.json
    FAILS: {"device": "cpu", "precision": "fp16"},  # "precision fp16 needs a CUDA device"
    # 512 one-sequence steps, a progress line every 0.05 s, checkpoints every ~0.1 s
    KILLED: {"batch_tokens": 32, "log_every_s": 0.05, "checkpoint_minutes": 0.002},
}


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("peak", [None, 1e12])
def test_progress_line_parses_back(peak):
    r = tiny_rung(tokens=128 * 300)
    run = SimpleNamespace(r=r, peak=peak, world=1)
    line = T.progress_line(run, T.LogRow(120, 120 * 128, 3.12071, 1e-3, 18438.4))
    p = S.PROGRESS.match(line).groupdict()
    assert (p["id"], int(p["step"]), int(p["steps"])) == (r.id, 120, r.steps)
    assert S.parse_count(p["tokens"]) == pytest.approx(120 * 128, rel=5e-3)  # 3 digits
    assert float(p["loss"]) == 3.1207 and p["rate"] == "18,438"
    assert (p["mfu"] is None) == (peak is None)
    assert S.parse_duration(p["eta"]) == int(180 * 128 / 18438.4)
    for s in (0, 59, 61, 3599, 3600, 3661, 86400 + 5):
        assert S.parse_duration(T.fmt_time(s)) == (s if s < 3600 else s // 60 * 60)


def test_log_endings(tmp_path):
    def events(*lines: str) -> S.LogEvents:
        path = tmp_path / "job.log"
        path.write_text("\n".join(lines) + "\n")
        return S.read_log(path)

    prog = "R step 3/9 | tokens 384 | loss 5.1000 | 1,000 tok/s | ETA 0m01s"
    assert events(prog).end is None and events(prog).progress["step"] == "3"
    e = events(prog, "Traceback (most recent call last):", '  File "x"', "RuntimeError: boom")
    assert (e.end, e.message) == ("failed", "RuntimeError: boom")
    e = events(prog, "ladder train: diverged: R: loss is nan at step 4 (lr 1); stopping")
    assert (e.end, e.message) == ("diverged", "R: loss is nan at step 4 (lr 1); stopping")
    e = events(prog, "R: SIGTERM at step 3; checkpoint saved")
    assert (e.end, e.step) == ("stopped", 3)
    e = events("ladder train: error: boom", "resuming R from step 3 (ckpt)", prog)
    assert e.end is None  # a later attempt wrote on


def test_snakemake_markers(tmp_path):
    """The files Snakemake keeps while it runs (snakemake.persistence): a lock listing the
    study's files, and per started job its outputs' urlsafe-base64 names."""
    smk = tmp_path / ".snakemake"
    (smk / "locks").mkdir(parents=True)
    (smk / "incomplete").mkdir()
    out = "results/s/runs/R/train.json"
    marker = smk / "incomplete" / base64.urlsafe_b64encode(out.encode()).decode()
    marker.write_text(json.dumps({"external_jobid": "4242"}))
    assert S.Snakemake(tmp_path, "results/s").started(out) is None  # no lock: not running
    (smk / "locks" / "0.output.lock").write_text("results/s/runs/R/train.json\n")
    assert S.Snakemake(tmp_path, "results/s").started(out)[1] == "4242"
    assert S.Snakemake(tmp_path, "results/other").started(out) is None


# ----------------------------------------------------------------------------- the study


def study_config(tmp_path: Path, overrides: dict, tools=("tensorboard", "wandb")) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["ladder"]["overrides"] = overrides
    cfg["tracking"] = {"tools": list(tools)}
    path = tmp_path / f"tiny-{len(overrides)}-{len(tools)}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def states(workdir: Path, configfile: Path) -> dict[str, dict]:
    return {s["rung"]: s for s in S.study_status(configfile, workdir)["runs"]}


def trainer_pid(rung_id: str, work: Path) -> int | None:
    """The `ladder train` process of a rung (argv holds 'train' and its rung.json), not the
    `ladder store run` that wraps it (whose argv holds the training command too), and this
    test's own (its working directory is `work`): another suite on the machine may be training
    a rung of the same name."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if Path(os.readlink(proc / "cwd")).resolve() != work.resolve():
                continue
        except OSError:
            continue
        if b"store" in argv:
            continue
        if b"train" in argv and any(a.endswith(f"{rung_id}/rung.json".encode()) for a in argv):
            return int(proc.name)
    return None


@pytest.mark.slow
def test_status_before_during_and_after(tmp_path, capsys, monkeypatch):
    """The tiny study with TensorBoard and W&B (offline) on, so the jobs' tracking is
    exercised through Snakemake too: curves of every rung, a resumed rung's one W&B run."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    work = tmp_path / "work"
    work.mkdir()
    config = study_config(tmp_path, OVERRIDES)
    log = work / "results/tiny/logs/train" / f"{KILLED}.log"

    # before: nothing has run
    before = S.study_status(config, work)
    assert {s["state"] for s in before["runs"]} == {"planned"}
    assert before["totals"]["counts"]["planned"] == 4 and not before["snakemake_running"]

    # during: freeze KILLED at its first progress lines, let the others end
    smk = subprocess.Popen(snakemake_cmd(config, "--keep-going", workdir=work),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        progress = lambda: log.exists() and " step " in log.read_text()  # noqa: E731
        wait_until("a progress line", progress, proc=smk)
        pid = wait_until("the trainer", lambda: trainer_pid(KILLED, work), proc=smk)
        os.kill(pid, signal.SIGSTOP)
        ended = {DIVERGES: "diverged", FAILS: "failed", PLAIN: "done"}
        now = wait_until(
            "the other rungs to end",
            lambda: (
                (st := states(work, config))
                and all(st[r]["state"] == s for r, s in ended.items())
                and st
            ),
            proc=smk,
        )
        running = now[KILLED]
        assert running["state"] == "running" and 0 < running["step"] < running["steps"] == 512
        assert running["tokens"] == running["step"] * 32 and running["loss"] > 0
        assert running["tokens_per_s"] > 0 and running["eta_s"] is not None
        assert "precision fp16 needs a CUDA device" in now[FAILS]["note"]
        # the step a 1e9 lr diverges at depends on the CPU's floating point: the one
        # train.json recorded is what the status must show
        hot_json = work / "results/tiny/runs" / DIVERGES / "train.json"
        # its log says "diverged" a moment before train.json is in place: wait, then re-read
        wait_until("the diverged rung's train.json", hot_json.exists, proc=smk)
        now = states(work, config)
        hot = json.loads(hot_json.read_text())
        note = f"diverged at step {hot['diverged_at_step']} (loss {hot['diverged_loss']}"
        assert hot["diverged"] is True and now[DIVERGES]["note"].startswith(note)
        assert now[PLAIN]["bits_per_byte"] > 0 and now[PLAIN]["wall_s"] > 0
        assert now[PLAIN]["gpu_hours"] is not None  # 0 on a CPU, as runs.csv counts it
        assert S.main(["--configfile", str(config), "-d", str(work)]) == 0
        table = capsys.readouterr().out
        assert "Snakemake is running" in table
        assert f"curves: tensorboard --logdir {work}/results/tiny/tensorboard" in table
        assert re.search(rf"^{re.escape(KILLED)} +running +\d+/512 ", table, re.M), table

        os.kill(pid, signal.SIGTERM)  # what SLURM sends; acted on once it runs again
        os.kill(pid, signal.SIGCONT)
        smk.wait(timeout=300)
    finally:
        if smk.poll() is None:
            smk.kill()
    killed = states(work, config)[KILLED]
    assert killed["state"] == "stopped", killed
    assert killed["note"].startswith(f"SIGTERM at step {killed['step']}; resumes from")
    assert (work / "results/tiny/runs" / KILLED / "ckpt/state.pt").exists()

    # after: the two broken rungs fixed, the killed one resumed, the study finished
    fixed = study_config(tmp_path, {KILLED: OVERRIDES[KILLED]})
    evals = [f"results/tiny/runs/{r}/eval.json" for r in (DIVERGES, FAILS, KILLED, PLAIN)]
    # every rung; not the fits and report
    cmd = snakemake_cmd(fixed, "--keep-going", *evals, workdir=work)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    after = S.study_status(fixed, work)
    assert {s["state"] for s in after["runs"]} == {"done"}
    totals = after["totals"]
    assert totals["counts"]["done"] == 4 and totals["gpu_hours_left"] == 0
    assert totals["gpu_hours_spent"] == pytest.approx(sum(s["gpu_hours"] for s in after["runs"]))
    info = json.loads((work / "results/tiny/runs" / KILLED / "train.json").read_text())
    assert info["resumed_from_step"] == killed["step"]
    assert_tracked(work / "results/tiny")

    # tracking changes no result: turning it off retrains and re-evaluates nothing
    off = study_config(tmp_path, {KILLED: OVERRIDES[KILLED]}, tools=())
    cmd = snakemake_cmd(off, "--keep-going", "-n", *evals, workdir=work)
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert "Nothing to be done" in res.stdout + res.stderr, res.stdout[-3000:]


def assert_tracked(study: Path) -> None:
    """Through Snakemake (LADDER_TRACKING from the Snakefile): every rung's TensorBoard run
    holds its train_log.csv steps; the rung stopped and resumed is one W&B run."""
    for rung in (DIVERGES, FAILS, KILLED, PLAIN):
        steps = [int(r["step"]) for r in log_rows(study / "runs" / rung)]
        tb = tensorboard_scalars(study / "tensorboard" / rung)
        assert [step for step, _ in tb["train/loss"]] == steps, rung
    runs = [r for r in wandb_runs(study) if r["run"] and r["run"].display_name == KILLED]
    first, second = runs  # the job stopped by SIGTERM, then the one that resumed it
    assert first["id"] == second["id"]
    steps = [h["_step"] for h in first["history"] + second["history"]]
    assert steps == [int(r["step"]) for r in log_rows(study / "runs" / KILLED)]


def test_wsd_stable_run_is_one_row(tmp_path):
    """A WSD size's stable run is trained in segments (logs/wsd_segment/<size>/): one row,
    stopped between segments while Snakemake is not running, done at the last stop."""
    cfg = wsd_study()
    study = tmp_path / "results" / "w"
    shards = make_shards(study / "tokens")
    rows = S.study_status(cfg, tmp_path)["runs"]
    assert [(r["kind"], r["state"]) for r in rows] == [("stable", "planned")] + [
        ("ladder", "planned")
    ] * 2
    stable, short, long = (r["rung"] for r in rows)
    assert rows[0]["steps"] == 12
    # GPU-hours left count the stable run once and each branch's cooldown, as `ladder plan`
    study_cfg = load_config(cfg)
    rate = Throughput.choose(None, None).flops_per_s
    left = S.study_status(cfg, tmp_path)["totals"]["gpu_hours_left"]
    assert left == pytest.approx(trained_flops(study_cfg, plan(study_cfg)) / rate / 3600)

    spec = next(s for s in wsd_plan(load_config(cfg), plan(load_config(cfg))).values())["stable"]
    state = None
    for branch, stop in ((short, 6), (long, 12)):
        log = study / "logs" / "wsd_segment" / "L1-d16" / f"{branch}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        out = study / "runs" / stable / f"{branch}.state.pt"
        args = [
            "--rung-json",
            spec.to_json(),
            "--tokens-dir",
            str(shards),
            "--out-dir",
            str(out.parent),
            "--stop-step",
            str(stop),
            "--state-out",
            str(out),
        ]
        args += ["--init-state", str(state)] if state else []  # fmt: skip
        with open(log, "w") as f, contextlib.redirect_stdout(f):
            assert T.main(args) == 0
        state = out
        row = S.study_status(cfg, tmp_path)["runs"][0]
        if stop < 12:
            assert (row["state"], row["step"]) == ("stopped", 6)
            assert row["note"] == "at step 6, between segments"
    assert (row["state"], row["step"], row["steps"]) == ("done", 12, 12)
