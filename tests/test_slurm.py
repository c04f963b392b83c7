"""The SLURM profile on a real one-node cluster (scripts/slurm/cluster.sh starts it).

The tiny study end to end, jobs seen in squeue and results equal to a local run; a
training job requeued (as on preemption) and then cancelled mid-way resumes from its
checkpoint and ends with the weights of an uninterrupted run; a failing job is
reported promptly. Skipped where SLURM is not installed; .ci/run installs it and sets
LADDER_REQUIRE_SLURM=1, which turns the skips into failures. A machine has one test
cluster: test sessions on it take turns (cluster_turn).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TINY, snakemake_cmd, wait_until

CLUSTER_SH = ROOT / "scripts/slurm/cluster.sh"
FAKE_GPUS = 2  # two jobs at a time on the two CPUs of a CI machine


def missing() -> str | None:
    sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    if shutil.which("sbatch") is None or shutil.which("slurmctld", path=sbin) is None:
        return "SLURM is not installed (apt-get install slurm-wlm munge; .ci/run does)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')"
    if os.geteuid() != 0:
        return "starting a test cluster needs root (SlurmUser=root, /etc/slurm)"
    return None


def _skip_or_fail(reason: str):
    if os.environ.get("LADDER_REQUIRE_SLURM") == "1":
        pytest.fail(f"LADDER_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


pytestmark = pytest.mark.slow


@contextlib.contextmanager
def cluster_turn(timeout_s: float = 2400):
    """This session's turn at the machine's one test cluster.

    There is one per machine (/etc/slurm/slurm.conf, fixed ports, LADDER_SLURM_DIR), and
    the fixture below stops and restarts it: a second test session doing that meanwhile
    (another checkout's tests, a second CI job) cancels this session's jobs mid-run, and
    its restart makes this session's Snakemake wait forever for jobs the new controller
    never heard of. So sessions take turns, in a lock next to the cluster's state.
    """
    path = Path(os.environ.get("LADDER_SLURM_DIR", "/tmp/ladder-slurm") + ".lock")
    with path.open("a") as lock:  # not inherited by the jobs (Python opens fds CLOEXEC)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    _skip_or_fail(f"another test session held the SLURM test cluster ({path})")
                time.sleep(5)
        yield


@pytest.fixture(scope="module")
def cluster():
    reason = missing()
    if reason:
        _skip_or_fail(reason)
    env = {**os.environ, "LADDER_SLURM_GPUS": str(FAKE_GPUS)}
    with cluster_turn():
        subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True)
        start = subprocess.run(
            ["bash", str(CLUSTER_SH), "start"], env=env, capture_output=True, text=True
        )
        if start.returncode != 0:
            _skip_or_fail(f"could not start a test cluster: {start.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True)


def write_config(path: Path, **changes) -> Path:
    """tiny.yaml with top-level sections updated (one level deep)."""
    cfg = yaml.safe_load(TINY.read_text())
    for key, value in changes.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(cfg))
    return path


def slurm_cmd(configfile: Path, *args: str, slurm: bool = True) -> list[str]:
    """snakemake_cmd in the caller's cwd: with the SLURM profile (its jobs, no --cores), or
    without it (args then name the cores)."""
    profile = []
    if slurm:
        # a short first status delay keeps the tiny jobs quick (MinJobAge 3600 >= 3 x 2)
        profile += ["--workflow-profile", str(ROOT / "profiles/slurm")]
        profile += ["--slurm-init-seconds-before-status-checks", "2"]
    return snakemake_cmd(configfile, *profile, *args, cores=None)


def jobs_of_run(output: str) -> list[dict[str, str]]:
    """The run's SLURM jobs as squeue shows them (finished ones stay for MinJobAge)."""
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", run_id, "-o", "%i|%T|%k|%l"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    keys = ("id", "state", "comment", "time_limit")
    return [dict(zip(keys, line.split("|"), strict=True)) for line in out.split()]


def minutes(limit: str) -> float:
    parts = [int(p) for p in re.split("[-:]", limit)]
    return sum(v * m for v, m in zip(reversed(parts), (1 / 60, 1, 60, 1440), strict=False))


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_runs(cluster, tmp_path_factory):
    """The tiny study through SLURM and, at the same time, locally."""
    local, remote = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    # flops_per_s is low so the tiny rungs get runtimes that differ (in minutes: 5 to 14
    # for training). Not below 5: on a loaded 2-CPU machine a tiny job takes ~60 s (two
    # Snakemake start-ups and torch), which a 1-minute limit turns into a TIMEOUT.
    # data_cpus: the encode job's CPUs must fit the node (2 CPUs), else it pends forever.
    cluster_cfg = {"flops_per_s": 1e7, "min_runtime_min": 5, "mem_mb": 2000, "data_cpus": 2}
    config = write_config(remote / "tiny.yaml", cluster=cluster_cfg)
    t0 = time.monotonic()
    local_run = subprocess.Popen(
        slurm_cmd(config, "--cores", "1", slurm=False),
        cwd=local, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    proc = subprocess.run(
        slurm_cmd(config), cwd=remote, capture_output=True, text=True, timeout=900
    )
    slurm_s = time.monotonic() - t0
    local_out = local_run.communicate(timeout=900)[0]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert local_run.returncode == 0, local_out[-4000:]
    print(f"tiny study: SLURM {slurm_s:.0f} s, both done {time.monotonic() - t0:.0f} s")
    return local / "results/tiny", remote / "results/tiny", output


def test_every_job_ran_in_slurm(tiny_runs):
    _, remote, output = tiny_runs
    jobs = jobs_of_run(output)
    assert {j["state"] for j in jobs} == {"COMPLETED"}
    rules = sorted(re.sub(r"_wildcards_.*", "", j["comment"]) for j in jobs)
    assert rules.count("rule_train") == rules.count("rule_evaluate") == 4
    assert {"rule_corpus", "rule_tokenizer", "rule_encode"} <= set(rules)
    # bookkeeping (plan, rung specs, table, fits, report) is local: seconds, no queue wait
    assert not {"rule_rung_spec", "rule_aggregate", "rule_fit", "rule_report"} & set(rules)
    # training asked for a GPU and got one through CUDA_VISIBLE_DEVICES; the launcher's
    # first line says which it got (or that it saw none, and what SLURM had set)
    logs = sorted((remote / "logs/train").glob("*.log"))
    assert len(logs) == 4
    for log in logs:
        text = log.read_text()
        assert re.search(r"^ladder launch: CUDA_VISIBLE_DEVICES=[01]\b", text, re.M), (log, text)


def test_larger_rungs_ask_for_more_time(tiny_runs):
    local, _, output = tiny_runs
    flops = {r["id"]: float(r["flops"]) for r in csv.DictReader((local / "plan.csv").open())}
    limits = {
        j["comment"].split("_wildcards_")[1]: minutes(j["time_limit"])
        for j in jobs_of_run(output)
        if j["comment"].startswith("rule_train")
    }
    small, large = min(flops, key=flops.get), max(flops, key=flops.get)
    assert limits[large] > limits[small]


def test_results_equal_the_local_run(tiny_runs):
    local, remote, _ = tiny_runs
    shard = "tokens/shards/train-00000.bin"
    assert (local / shard).read_bytes() == (remote / shard).read_bytes()
    rows = {p: list(csv.DictReader((p / "runs.csv").open())) for p in (local, remote)}
    assert len(rows[local]) == 4
    for a, b in zip(rows[local], rows[remote], strict=True):
        assert a["rung"] == b["rung"]
        for key in ("loss_nats", "bits_per_byte", "train_loss_nats", "params_total", "tokens"):
            assert a[key] == b[key], (a["rung"], key)
        model = f"runs/{a['rung']}/model/model.safetensors"
        assert (local / model).read_bytes() == (remote / model).read_bytes()


# ----------------------------------------------------------------------------- resume


class LogWatch:
    """Every line a training log held, across attempts (each attempt truncates it)."""

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def poll(self) -> list[str]:
        if self.path.exists():
            for line in self.path.read_text(errors="replace").splitlines():
                if line not in self.lines:
                    self.lines.append(line)
        return self.lines

    def wait_for(self, pattern: str, proc: subprocess.Popen, timeout_s: float = 240) -> str:
        """The last line matching `pattern`, once one appears."""

        def last_hit() -> str | None:
            hits = [line for line in self.poll() if re.search(pattern, line)]
            return hits[-1] if hits else None

        what = f"'{pattern}' in {self.path}"
        return wait_until(what, last_hit, timeout_s, proc, every_s=0.2, details=lambda: self.lines)


def running_train_job() -> str:
    out = subprocess.run(
        ["squeue", "--noheader", "--states=RUNNING", "-o", "%i|%k"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    ids = [line.split("|")[0] for line in out.split() if "rule_train" in line]
    assert len(ids) == 1, out
    return ids[0]


def wait_until_pending(job: str, timeout_s: float = 120) -> None:
    def state() -> str:
        return subprocess.run(
            ["squeue", "--noheader", "--jobs", job, "-o", "%T"], capture_output=True, text=True
        ).stdout.strip()

    wait_until(f"job {job} to be requeued (PENDING)", lambda: state() == "PENDING", timeout_s,
               every_s=0.2, details=lambda: f"state {state()}")  # fmt: skip


def copy_tokens(src: Path, dst: Path) -> None:
    """Reuse a finished study's data stages (copies without Snakemake metadata count as
    up to date, so only training runs)."""
    for part in ("corpus", "tokenizer", "tokens"):
        shutil.copytree(src / part, dst / "results/tiny" / part, copy_function=shutil.copy2)


def test_killed_rung_resumes_and_equals_an_uninterrupted_run(tiny_runs, tmp_path):
    _, remote, _ = tiny_runs
    copy_tokens(remote, tmp_path)
    steps = 1500  # long enough to be interrupted twice; ~15 s of CPU
    config = write_config(
        tmp_path / "resume.yaml",
        ladder={"widths": [16], "tokens": steps * 1024},
        train={"checkpoint_minutes": 0.01},
        cluster={"mem_mb": 2000, "min_runtime_min": 5},
    )
    from ladder.config import load_config
    from ladder.plan import plan

    (rung,) = plan(load_config(config))
    run = tmp_path / f"results/tiny/runs/{rung.id}"
    # the uninterrupted reference, trained locally meanwhile
    reference = subprocess.Popen(
        ["ladder", "train", "--rung-json", rung.to_json(),
         "--tokens-dir", str(tmp_path / "results/tiny/tokens"), "--out-dir", str(tmp_path / "ref")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    proc = subprocess.Popen(
        slurm_cmd(config, f"results/tiny/runs/{rung.id}/train.json"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log = LogWatch(tmp_path / f"results/tiny/logs/train/{rung.id}.log")
    try:
        # 1. preemption: SLURM requeues the job (same id), the trainer checkpoints on SIGTERM
        ckpt = run / "ckpt/state.pt"
        wait_until(f"{ckpt} to appear", ckpt.exists, 240, proc, every_s=0.2, details=log.poll)
        job = running_train_job()
        subprocess.run(["scontrol", "requeue", job], check=True)
        first = log.wait_for(r"SIGTERM at step \d+; checkpoint saved", proc)
        # a requeued job waits 2 minutes before it may start again; a cluster would
        # start it when nodes free up, the test once it is back in the queue
        wait_until_pending(job)
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
        step1 = int(re.search(r"step (\d+)", first).group(1))
        log.wait_for(rf"resuming {re.escape(rung.id)} from step {step1}\b", proc)
        # 2. scancel mid-way: Snakemake sees CANCELLED and resubmits (profile retries)
        time.sleep(1.5)
        subprocess.run(["scancel", job], check=True)
        second = log.wait_for(rf"SIGTERM at step (?!{step1}\b)\d+; checkpoint saved", proc)
        step2 = int(re.search(r"step (\d+)", second).group(1))
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert reference.wait(timeout=600) == 0, reference.stdout.read()[-3000:]
    assert step1 < step2 < steps
    log.poll()
    assert any(f"from step {step2}" in line for line in log.lines), log.lines
    summary = json.loads((run / "train.json").read_text())
    assert summary["resumed_from_step"] == step2
    assert "Trying to restart job" in out  # the retry after scancel
    states = {j["id"]: j["state"] for j in jobs_of_run(out)}
    assert states[job] == "CANCELLED" and "COMPLETED" in states.values()
    # the model of the twice-interrupted run equals the uninterrupted one, bit for bit
    ours = (run / "model/model.safetensors").read_bytes()
    assert ours == (tmp_path / "ref/model/model.safetensors").read_bytes()
    assert (run / "train_log.csv").read_text() != ""
    assert not (run / "ckpt").exists()  # done: the model is the artifact


# ----------------------------------------------------------------------------- failure


def test_a_failing_job_is_reported_promptly(tiny_runs, tmp_path):
    """Reported seconds after the job fails, with the trainer's message, and the run
    ends: no hang waiting for a status (sacct). Without the profile's retries (tested
    above), which would resubmit it twice more."""
    _, remote, _ = tiny_runs
    copy_tokens(remote, tmp_path)
    shard = tmp_path / "results/tiny/tokens/shards/train-00000.bin"
    data = bytearray(shard.read_bytes())
    data[0:2] = (999).to_bytes(2, "little")  # a token id beyond vocab_size 320 (uint16)
    shard.write_bytes(bytes(data))
    config = write_config(tmp_path / "bad.yaml", ladder={"widths": [8]})
    t0 = time.time()
    proc = subprocess.Popen(
        slurm_cmd(config, "results/tiny/runs/L1-d8-T16.4K/train.json", "--retries", "0"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines, first_error_at = [], None
    for line in proc.stdout:
        lines.append(line)
        if first_error_at is None and line.startswith("Error in rule train"):
            first_error_at = time.time()
    proc.wait(timeout=600)
    elapsed, out = time.time() - t0, "".join(lines)
    assert proc.returncode != 0
    assert first_error_at is not None, out[-4000:]
    assert "holds token id 999" in out  # the trainer's own message, from the job's log
    jobs = jobs_of_run(out)
    failed = [j for j in jobs if j["state"] != "COMPLETED"]
    assert [j["state"] for j in failed] == ["FAILED"]
    ended = subprocess.run(
        ["squeue", "--noheader", "--jobs", failed[0]["id"], "--states=all", "-o", "%e"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    failed_at = time.mktime(time.strptime(ended, "%Y-%m-%dT%H:%M:%S"))
    delay = first_error_at - failed_at
    print(f"failure reported {delay:.0f} s after the job ended; run over after {elapsed:.0f} s")
    assert delay < 30
    assert elapsed < 120
