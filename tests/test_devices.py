"""`ladder launch` gives every job its own GPU(s); the resources jobs ask SLURM for."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ladder import devices
from ladder.config import load_config
from ladder.plan import plan
from tests.conftest import ROOT, snakemake, wait_until

LAUNCH = [sys.executable, "-m", "ladder.devices"]
CLUSTER = load_config({"ladder": {"widths": [16]}}).cluster


@pytest.fixture
def locks(tmp_path, monkeypatch) -> Path:
    """A private lock directory, outside any SLURM job."""
    monkeypatch.setenv("LADDER_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    return tmp_path / "locks"


def launch(percent: int, command: str, visible: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
    return subprocess.Popen(
        [*LAUNCH, "--gpu-percent", str(percent), "--", "sh", "-c", command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


# ----------------------------------------------------------------------------- pool


@pytest.mark.parametrize(
    "visible, pool",
    [("0,1", ["0", "1"]), ("", []), ("-1", []), ("2,-1,3", ["2"]), ("GPU-ab12", ["GPU-ab12"])],
)
def test_pool_is_cuda_visible_devices_when_set(visible, pool):
    assert devices.gpu_pool({"CUDA_VISIBLE_DEVICES": visible}) == pool


def test_gpu_count_override(monkeypatch):
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    monkeypatch.setenv("LADDER_GPUS", "3")
    assert devices.gpu_count() == 3
    assert devices.workstation_gpu_percent([]) == 300
    monkeypatch.setenv("LADDER_GPUS", "0")
    assert devices.workstation_gpu_percent([]) is None  # no GPU: no limit, all on CPU


@pytest.mark.parametrize(
    "argv",
    [
        ["--executor", "slurm"],
        ["-e", "slurm"],
        ["--profile", "profiles/slurm"],
        ["--profile=profiles/slurm"],
    ],
)
def test_workstation_limit_stays_off_for_a_cluster(monkeypatch, argv):
    """The workflow profile is read last: its limit would cap every SLURM job's GPUs."""
    monkeypatch.setenv("LADDER_GPUS", "2")
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    assert devices.workstation_gpu_percent(argv) is None
    assert devices.workstation_gpu_percent(["--executor", "local"]) == 200
    monkeypatch.setenv("SNAKEMAKE_PROFILE", "slurm")
    assert devices.workstation_gpu_percent([]) is None


# ----------------------------------------------------------------------------- choice


def test_whole_gpus_go_to_idle_devices():
    assert devices.choose({"0": 0, "1": 0}, 100) == ["0"]
    assert devices.choose({"0": 25, "1": 0}, 100) == ["1"]
    assert devices.choose({"0": 0, "1": 0, "2": 0}, 200) == ["0", "1"]
    assert devices.choose({"0": 25, "1": 0}, 200) is None


def test_shares_pack_onto_the_busiest_device_that_fits():
    assert devices.choose({"0": 0, "1": 50}, 25) == ["1"]
    assert devices.choose({"0": 0, "1": 100}, 25) == ["0"]
    assert devices.choose({"0": 75, "1": 100}, 50) is None


def test_claims_are_counted_and_dropped_with_their_holder(locks):
    first = devices.claim(["0", "1"], 50)
    second = devices.claim(["0", "1"], 50)
    assert first[0].device == second[0].device  # two halves share one GPU
    whole = devices.claim(["0", "1"], 100)
    assert whole[0].device != first[0].device
    with pytest.raises(TimeoutError):
        devices.claim(["0", "1"], 25, wait=False)
    assert devices.used_percent(locks / "local", ["0", "1"]) == {"0": 100, "1": 100}


def test_a_job_larger_than_the_pool_fails_clearly(locks):
    with pytest.raises(ValueError, match="needs 2 GPU"):
        devices.claim(["0"], 200)


# ----------------------------------------------------------------------------- launch


def test_four_jobs_on_four_gpus_get_four_devices(locks):
    jobs = [launch(100, "echo $CUDA_VISIBLE_DEVICES; sleep 1", "0,1,2,3") for _ in range(4)]
    seen = [j.communicate(timeout=60)[0].split()[-1] for j in jobs]
    assert sorted(seen) == ["0", "1", "2", "3"]


def test_quarter_gpu_jobs_share_one_device_and_a_fifth_waits(locks):
    t0 = time.monotonic()
    jobs = [launch(25, "echo $CUDA_VISIBLE_DEVICES; sleep 2", "0") for _ in range(5)]
    outs = [j.communicate(timeout=60) for j in jobs]
    assert [o[0].split()[-1] for o in outs] == ["0"] * 5
    waited = [o for o in outs if "waiting for 25% GPU" in o[1]]
    assert len(waited) == 1  # four fit on the device; the fifth waited for a free share
    assert time.monotonic() - t0 >= 4  # two rounds of 2 s


def test_the_claim_lives_as_long_as_the_command(locks):
    job = launch(100, "sleep 2", "0")
    claimed = lambda: devices.used_percent(locks / "local", ["0"])["0"] != 0  # noqa: E731
    wait_until("the launcher to claim the GPU", claimed, 30, job, every_s=0.1)
    job.wait(timeout=60)
    assert devices.used_percent(locks / "local", ["0"])["0"] == 0  # released on exit


def wait_for_line(proc: subprocess.Popen, text: str, timeout_s: float = 60) -> None:
    """Read `proc`'s stdout until a line holds `text`. Fails clearly when the stream ends
    first (the child exited: readline returns '' at EOF, forever) or after `timeout_s`: a
    reader thread, as readline itself may block that long."""
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if text in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen = lambda: any(text in line for line in lines)  # noqa: E731
    wait_until(f"'{text}'", lambda: seen() or not reader.is_alive(), timeout_s,
               details=lambda: lines)  # fmt: skip
    assert seen(), f"stdout ended (exit status {proc.poll()}) before '{text}': {lines}"


def test_signals_reach_the_command_directly(locks, tmp_path):
    """The launcher execs, so SLURM's SIGTERM hits the trainer, which checkpoints."""
    mark = tmp_path / "got_sigterm"
    handler = (
        "import signal, sys, time, pathlib\n"
        "def h(*a):\n"
        f"    pathlib.Path({str(mark)!r}).write_text('yes'); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, h)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"}
    job = subprocess.Popen(
        [*LAUNCH, "--", sys.executable, "-c", handler], env=env, stdout=subprocess.PIPE, text=True
    )
    wait_for_line(job, "ready")
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=30) == 143
    assert mark.read_text() == "yes"


def test_no_gpu_runs_the_command_unchanged(locks):
    job = launch(100, "echo visible=[$CUDA_VISIBLE_DEVICES]; exit 3", "-1")
    out, _ = job.communicate(timeout=60)
    assert job.returncode == 3  # the command's own exit status
    assert "visible=[-1]" in out
    assert "ladder launch: no GPU; on the CPU (CUDA_VISIBLE_DEVICES='-1')" in out  # says so
    assert not (locks / "local").exists()


# ----------------------------------------------------------------------------- SLURM asks


def test_runtime_grows_with_flops_and_is_clamped():
    cluster = replace(CLUSTER, flops_per_s=1e12, min_runtime_min=10, runtime_factor=2)
    small = devices.runtime_min(1e14, 1, cluster)
    large = devices.runtime_min(1e16, 1, cluster)
    assert small == 10  # 200 s of compute: the minimum
    assert large == pytest.approx(2 * 1e16 / 1e12 / 60, abs=1)
    assert devices.runtime_min(1e16, 4, cluster) < large  # more GPUs, less time
    assert devices.runtime_min(1e16, 0.25, cluster) > large  # a share is slower
    assert devices.runtime_min(1e16, 1, replace(cluster, max_runtime_min=60)) == 60
    assert devices.runtime_min(1e16, 1, CLUSTER) == CLUSTER.default_runtime_min


def test_checkpoint_warning_only_when_the_job_is_long_enough():
    assert devices.signal_arg(240, CLUSTER) == "--signal=USR1@180"
    assert devices.signal_arg(5, CLUSTER) == ""
    assert devices.signal_arg(240, replace(CLUSTER, checkpoint_warning_s=0)) == ""


def test_site_from_environment_then_file(tmp_path):
    site = tmp_path / "slurm.yaml"
    site.write_text(yaml.safe_dump({"partition": "gpu", "account": "proj1", "gpu_model": "h100"}))
    got = devices.slurm_site({"SBATCH_ACCOUNT": "proj2"}, site)
    assert (got.partition, got.account, got.gpu_model, got.qos) == ("gpu", "proj2", "h100", None)
    assert devices.slurm_site({"LADDER_SLURM_PARTITION": "a100"}, site).partition == "a100"
    assert devices.slurm_site({}, tmp_path / "missing.yaml") == devices.Site()
    site.write_text("partion: gpu\n")
    with pytest.raises(ValueError, match="partion"):
        devices.slurm_site({}, site)


def job_resources(proc: subprocess.CompletedProcess) -> dict[str, dict[str, str]]:
    """rule:wildcard -> resources, from a dry run's job listing."""
    out, jobs, key = proc.stdout + proc.stderr, {}, None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("rule "):
            key = line[5:].rstrip(":")
        elif line.startswith("wildcards: rung="):
            key = f"{key}:{line.split('=', 1)[1]}"
        elif line.startswith("resources:") and key:
            pairs = (p.split("=", 1) for p in line[10:].split(", "))
            jobs[key] = {k.strip(): v for k, v in pairs}
    return jobs


def test_rules_ask_for_gpus_cpus_memory_and_runtime(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["ladder"]["widths"] = [8, 32]
    cfg["ladder"]["overrides"] = {"L1-d8-T16.4K": {"gpus": 0.25}, "L2-d32-T16.4K": {"gpus": 2}}
    cfg["cluster"] = {"flops_per_s": 1e6, "min_runtime_min": 1, "mem_mb": 1000}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--workflow-profile", "none", configfile=path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_resources(proc)
    small, large = jobs["train:L1-d8-T16.4K"], jobs["train:L2-d32-T16.4K"]
    assert (small["gpu"], small["gpu_percent"]) == ("1", "25")  # shares a GPU locally
    assert (large["gpu"], large["gpu_percent"], large["cpus_per_task"]) == ("2", "200", "2")
    assert large["mem_mb"] == "2000"
    assert int(large["runtime"]) > int(small["runtime"])
    assert jobs["evaluate:L2-d32-T16.4K"]["gpu"] == "1"  # evaluation is one process


# ----------------------------------------------------------------------------- profiles


def render(profile: str, env: dict[str, str], monkeypatch) -> dict:
    """A profile as Snakemake reads it (YTE), under the given environment."""
    import yte

    site_vars = (n for names in devices.SITE_KEYS.values() for n in names)
    for key in ("LADDER_GPUS", "SNAKEMAKE_PROFILE", *site_vars):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LADDER_SLURM_SITE", "/nonexistent/slurm.yaml")
    monkeypatch.setattr(sys, "argv", ["snakemake"])
    with open(ROOT / "profiles" / profile / "config.yaml") as f:
        return yte.process_yaml(f, require_use_yte=True)


def test_workstation_profile_limits_gpu_share_to_the_gpus_present(monkeypatch):
    assert render("default", {"LADDER_GPUS": "4"}, monkeypatch)["resources"] == {"gpu_percent": 400}
    assert "resources" not in render("default", {"LADDER_GPUS": "0"}, monkeypatch)


def test_slurm_profile_takes_partition_and_account_from_the_environment(monkeypatch):
    bare = render("slurm", {}, monkeypatch)
    assert bare["executor"] == "slurm" and bare["slurm-requeue"] is True
    assert bare["slurm-status-command"] == "squeue"
    assert "slurm_partition" not in bare["default-resources"] and "set-resources" not in bare
    site = render(
        "slurm",
        {"SBATCH_PARTITION": "all", "LADDER_SLURM_ACCOUNT": "p1", "LADDER_SLURM_GPU_MODEL": "h100"},
        monkeypatch,
    )
    # quoted: Snakemake evaluates resource values as Python (`all` is a builtin)
    assert site["default-resources"]["slurm_partition"] == "'all'"
    assert site["default-resources"]["slurm_account"] == "'p1'"
    # the GPU model is the GPU rules' own resource (a multi-node rung puts it in gres)
    assert "set-resources" not in site


def gpu_rules() -> set[str]:
    """Rules whose jobs take a GPU: those that run their command under `ladder launch`."""
    rules = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            if "ladder launch" in block:
                rules.add(block.split(":", 1)[0].strip())
    return rules


def test_slurm_gpu_model_reaches_every_gpu_rule(monkeypatch):
    """A WSD study's stable segments are most of its compute: they must land on the
    site's GPU model too, not on any GPU of the partition."""
    assert {"train", "evaluate", "wsd_segment"} <= gpu_rules()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            if block.split(":", 1)[0].strip() in gpu_rules():  # job_resources sets gpu_model
                assert "TRAIN_RESOURCES" in block or "EVAL_RESOURCES" in block, block[:60]
    monkeypatch.setenv("LADDER_SLURM_GPU_MODEL", "h100")
    monkeypatch.setenv("LADDER_SLURM_SITE", "/nonexistent/slurm.yaml")
    study = load_config({"ladder": {"widths": [16]}})
    w = type("W", (), {"rung": "r"})()
    rungs = {"r": plan(study)[0]}
    for stage in ("train", "evaluate"):
        assert devices.job_resources(stage, rungs, study)["gpu_model"](w) == "h100"
