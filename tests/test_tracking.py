"""Experiment tracking with the real packages: TensorBoard event files read back with
TensorBoard's own reader, W&B offline run files read record by record; a resumed rung
continues its W&B run and rewrites its TensorBoard run; the fitted laws reach both.
W&B runs offline in temp folders: nothing logs in or reaches a server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ladder import fit
from ladder import train as T
from ladder.config import load_config
from ladder.fit.table import write_fits
from ladder.plan import plan, wsd_plan
from ladder.report import cli as report_cli
from ladder.tracking import Tracker, Tracking, continues, headline
from tests.conftest import (
    log_rows,
    make_shards,
    runs_table,
    tensorboard_scalars,
    tiny_rung,
    wait_for,
    wandb_runs,
    wsd_study,
)

pytest.importorskip("tensorboard")
pytest.importorskip("wandb")

BOTH = {"tools": ["tensorboard", "wandb"]}
CURVES = ("train/loss", "train/lr", "train/tokens_per_s")


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, with its settings, cache and data in temp folders."""
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("LADDER_TRACKING", raising=False)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("tokens"))


def train(rung, shards: Path, study: Path, *extra: str) -> int:
    """`ladder train` in this process, then W&B's teardown (what the end of a process does),
    which writes the run file out."""
    import wandb

    out = study / "runs" / rung.id
    try:
        return T.main(["--rung-json", rung.to_json(), "--tokens-dir", str(shards),
                       "--out-dir", str(out), "--tracking", json.dumps(BOTH), *extra])  # fmt: skip
    finally:
        wandb.teardown()


# ----------------------------------------------------------------------------- readers


def tensorboard_texts(logdir: Path) -> dict[str, str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        value = tensor_util.make_ndarray(acc.Tensors(tag)[-1].tensor_proto)
        out[tag.removesuffix("/text_summary")] = value.item().decode()
    return out


def unfence(text: str):
    """The JSON in a TensorBoard text's ```json block."""
    return json.loads(text.removeprefix("```json\n").removesuffix("\n```"))


def assert_tensorboard_holds_the_log(logdir: Path, out: Path) -> None:
    """Every train_log.csv value, against the step and under tokens/ against tokens
    (TensorBoard stores float32)."""
    scalars = tensorboard_scalars(logdir)
    rows = log_rows(out)
    for key, column in zip(CURVES, ("loss_nats", "lr", "tokens_per_s"), strict=True):
        want = [(int(r["step"]), pytest.approx(r[column], rel=1e-6)) for r in rows]
        assert scalars[key] == want, key
        by_tokens = [(int(r["tokens"]), pytest.approx(r[column], rel=1e-6)) for r in rows]
        assert scalars[f"tokens/{key}"] == by_tokens, key
    # only the rows with a val loss (pytest.approx of None is an error since pytest 9)
    vals = [(int(r["step"]), pytest.approx(r["val_loss_nats"], rel=1e-6))
            for r in rows if r["val_loss_nats"] is not None]  # fmt: skip
    assert vals and scalars["val/loss"] == vals
    assert "train/mfu" not in scalars  # no peak FLOP/s on CPU


# ----------------------------------------------------------------------------- a rung


@pytest.fixture(scope="module")
def tracked(shards, tmp_path_factory):
    """One rung trained with TensorBoard and W&B on, in results/<study>/ layout."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("wandb-home")
    mp.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        mp.setenv(var, str(home / var.lower()))
    study = tmp_path_factory.mktemp("results") / "tinystudy"
    rung = tiny_rung(tokens=128 * 30, eval_points=3)
    assert train(rung, shards, study) == 0
    mp.undo()
    return rung, study


def test_tensorboard_holds_train_log(tracked):
    rung, study = tracked
    logdir = study / "tensorboard" / rung.id
    assert_tensorboard_holds_the_log(logdir, study / "runs" / rung.id)
    texts = tensorboard_texts(logdir)
    assert unfence(texts["spec"]) == json.loads(json.dumps(rung.row()))
    summary = unfence(texts["train.json"])
    assert summary == json.loads((study / "runs" / rung.id / "train.json").read_text())


def test_wandb_offline_run_holds_train_log(tracked):
    rung, study = tracked
    (run,) = wandb_runs(study)
    assert run["run"].run_group == "tinystudy" and run["run"].display_name == rung.id
    assert run["run"].project == "ladder" and run["run"].job_type == "grid"
    config = {u.key: json.loads(u.value_json) for u in run["run"].config.update}
    assert {k: config[k] for k in rung.row()} == json.loads(json.dumps(rung.row()))
    assert config["study"] == "tinystudy"
    rows = log_rows(study / "runs" / rung.id)
    history = run["history"]
    assert [h["_step"] for h in history] == [int(r["step"]) for r in rows]
    for h, r in zip(history, rows, strict=True):
        assert h["tokens"] == r["tokens"] and h["train/loss"] == r["loss_nats"]
        assert h["train/lr"] == r["lr"] and h["train/tokens_per_s"] == r["tokens_per_s"]
        assert h.get("val/loss") == r["val_loss_nats"]
    info = json.loads((study / "runs" / rung.id / "train.json").read_text())
    assert run["summary"]["loss_nats"] == info["loss_nats"]
    state = json.loads((study / "runs" / rung.id / "tracking.json").read_text())
    assert state == {"wandb_id": run["id"], "wandb_step": rung.steps}


def test_a_fresh_start_is_a_new_run(tracked, shards, tmp_path):
    """--no-resume retrains from step 0: a new W&B run, the TensorBoard run replaced."""
    rung, study = tracked
    assert train(rung, shards, study, "--no-resume") == 0
    first, second = wandb_runs(study)
    assert first["id"] != second["id"] and len(second["history"]) == rung.steps
    logdir = study / "tensorboard" / rung.id
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
    assert_tensorboard_holds_the_log(logdir, study / "runs" / rung.id)


# ----------------------------------------------------------------------------- resume


def test_resumed_rung_continues_the_same_run(shards, tmp_path):
    """Stopped by SLURM's time-limit warning (SIGUSR1: checkpoint, exit 138), then resumed:
    one W&B run (two offline folders of one id whose steps continue without a repeat) and a
    TensorBoard run equal to train_log.csv."""
    rung = tiny_rung(tokens=128 * 300, checkpoint_minutes=0.002, eval_points=4)
    study = tmp_path / "results" / "resumed"
    out = study / "runs" / rung.id
    cmd = [sys.executable, "-m", "ladder.cli", "train", "--rung-json", rung.to_json(),
           "--tokens-dir", str(shards), "--out-dir", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LADDER_TRACKING": json.dumps(BOTH)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for(out / "ckpt" / "state.pt", proc, timeout_s=180)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=120) == 128 + signal.SIGUSR1, proc.stdout.read().decode()
    stopped = json.loads((out / "tracking.json").read_text())

    assert train(rung, shards, study) == 0
    info = json.loads((out / "train.json").read_text())
    assert info["resumed_from_step"] == stopped["wandb_step"]
    assert 0 < info["resumed_from_step"] < rung.steps
    assert_tensorboard_holds_the_log(study / "tensorboard" / rung.id, out)
    assert len(list((study / "tensorboard" / rung.id).glob("events.out.tfevents.*"))) == 1

    first, second = wandb_runs(study)
    assert first["id"] == second["id"] == stopped["wandb_id"]
    steps = [h["_step"] for h in first["history"] + second["history"]]
    rows = log_rows(out)
    assert steps == [int(r["step"]) for r in rows]  # all of train_log.csv, once, in order
    assert second["history"][0]["_step"] == stopped["wandb_step"] + 1
    history = {h["_step"]: h for h in first["history"] + second["history"]}
    for r in rows:
        assert history[int(r["step"])]["train/loss"] == r["loss_nats"]
        assert history[int(r["step"])]["train/lr"] == r["lr"]


def test_wsd_segments_share_one_run_and_a_branch_has_its_own(shards, tmp_path):
    """A WSD size's stable run is trained in segments (each continuing the last one's
    state): one W&B run and one TensorBoard run; a cooldown branch started from a segment's
    state is a run of its own, its curve from step 1."""
    cfg = load_config(wsd_study())
    short, long = plan(cfg)
    (size,) = wsd_plan(cfg, [short, long]).values()
    stable = size["stable"]
    study = tmp_path / "results" / "w"
    seg1, seg2 = tmp_path / "seg1.pt", tmp_path / "seg2.pt"
    assert train(stable, shards, study, "--stop-step", "6", "--state-out", str(seg1)) == 0
    assert train(stable, shards, study, "--init-state", str(seg1), "--stop-step", "12",
                 "--state-out", str(seg2)) == 0  # fmt: skip
    assert train(long, shards, study, "--init-state", str(seg2)) == 0

    segment1, segment2, branch = wandb_runs(study)
    assert segment1["id"] == segment2["id"] != branch["id"]
    assert segment1["run"].job_type == "wsd-stable" and branch["run"].job_type == "wsd"
    steps = [h["_step"] for h in segment1["history"] + segment2["history"]]
    assert steps == list(range(1, 13))
    assert [h["_step"] for h in branch["history"]] == list(range(1, long.steps + 1))
    tb = tensorboard_scalars(study / "tensorboard" / stable.id)
    assert [step for step, _ in tb["train/loss"]] == list(range(1, 13))
    assert_tensorboard_holds_the_log(study / "tensorboard" / long.id, study / "runs" / long.id)


def test_continues_only_its_own_state():
    assert not continues({"step": 0, "log": []}, "R")
    assert continues({"step": 5, "rung": json.dumps({"id": "R"})}, "R")
    assert not continues({"step": 5, "rung": json.dumps({"id": "S-stable"})}, "R")  # a branch


# ----------------------------------------------------------------------------- settings


def test_settings_from_argument_or_environment(tmp_path, monkeypatch):
    assert Tracking.from_arg(None).tools == ()
    monkeypatch.setenv("LADDER_TRACKING", json.dumps({"tools": ["wandb"], "study": "s"}))
    assert Tracking.from_arg(None) == Tracking(tools=("wandb",), study="s")
    (tmp_path / "t.json").write_text(json.dumps({"tools": ["tensorboard"]}))
    assert Tracking.from_arg(f"@{tmp_path / 't.json'}").tools == ("tensorboard",)
    with pytest.raises(ValueError, match="allowed: tensorboard, wandb"):
        Tracking.from_arg('{"tools": ["mlflow"]}')
    with pytest.raises(ValueError, match="unknown key"):
        Tracking.from_arg('{"tool": ["wandb"]}')
    assert Tracking(wandb_mode="online").mode() == "offline"  # WANDB_MODE wins


def test_tracking_off_imports_neither_package(tmp_path):
    code = (
        "import sys, json; import ladder.train, ladder.report.cli\n"
        "from ladder.tracking import Tracker, Tracking\n"
        "from ladder.rung import Rung\n"
        f"r = Rung.from_json({tiny_rung().to_json()!r})\n"
        f"t = Tracker().open(Tracking.from_arg(None), r, {str(tmp_path)!r}, False)\n"
        "t.log(1, 128, {'train/loss': 1.0}); t.close()\n"
        "assert not {'wandb', 'tensorboard'} & set(sys.modules), 'imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LADDER_TRACKING"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_a_failing_tool_is_switched_off(tmp_path, capsys):
    """Tracking never stops a rung: a tool that cannot start warns and is left out."""
    blocker = tmp_path / "results"
    blocker.write_text("a file where the study folder should be")
    tr = Tracking(tools=("tensorboard",), dir=str(blocker))
    tracker = Tracker().open(tr, tiny_rung(), tmp_path / "runs" / "R", False)
    assert tracker.runs == {}
    tracker.log(1, 128, {"train/loss": 1.0})
    tracker.flush()
    tracker.close()
    assert "warning: tracking: tensorboard switched off" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the study


def test_report_puts_the_fitted_laws_beside_the_curves(tmp_path):
    import wandb

    study = tmp_path / "results" / "lawstudy"
    study.mkdir(parents=True)
    df = runs_table([1e17, 1e18, 1e19], [1e6 * 2**i for i in range(5)])
    df.to_csv(study / "runs.csv", index=False)
    fits = fit.fit_table(df, bootstrap=20, seed=0)
    write_fits(study / "fits.json", fits)
    argv = [str(study / "runs.csv"), str(study / "fits.json"), "--out", str(study / "report"),
            "--tracking", json.dumps(BOTH)]  # fmt: skip
    assert report_cli.main(argv) == 0
    wandb.teardown()
    numbers = headline(json.loads((study / "fits.json").read_text()))
    assert numbers["chinchilla/alpha"] == pytest.approx(0.34, rel=0.3)
    assert "chinchilla/alpha_lo" in numbers and "chinchilla/a" in numbers

    texts = tensorboard_texts(study / "tensorboard" / "laws")
    assert f"| chinchilla/alpha | {numbers['chinchilla/alpha']:.6g} |" in texts["laws"]
    assert texts["report"] == (study / "report" / "report.md").read_text()

    (run,) = wandb_runs(study)
    assert run["id"] == "lawstudy-laws" and run["run"].job_type == "laws"
    assert run["run"].run_group == "lawstudy"
    assert {k: run["summary"][k] for k in numbers} == numbers
    assert run["summary"]["report_md"] == (study / "report" / "report.md").read_text()
