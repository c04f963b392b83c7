"""A rung across several nodes: two `ladder launch` node tasks on this machine (as srun
would start them: SLURM_NODEID 0 and 1, one c10d rendezvous on localhost, gloo on the
CPU) train like one process; a dead node ends the other with an error, not a hang; the
SLURM resources of a 2-node rung, through the executor plugin's own sbatch builder; an
explicit train.nodes through plan, resources and launcher; and a real 2-node rung through
the SLURM profile on scripts/slurm/cluster.sh's two-node cluster (two slurmd on this host;
skipped where SLURM is missing, a failure then under LADDER_REQUIRE_SLURM=1)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import ENV, ROOT, make_shards, read_log, run, snakemake, tiny_rung


def descendants(pid: int) -> list[int]:
    """A process and every process below it (Linux /proc)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return [pid, *(d for k in kids for d in descendants(int(k)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nodes(rung, shards: Path, out: Path, nodes: int = 2) -> list[subprocess.Popen]:
    """One launcher per "node", as `srun` starts them; node 0 first, so it hosts the
    rendezvous store (on a real cluster the endpoint's host does)."""
    port, procs = free_port(), []
    for node in range(nodes):
        env = {**ENV, "LADDER_NODE_TASK": "1", "SLURM_NODEID": str(node),
               "SLURM_JOB_ID": "27", "SLURM_LAUNCH_NODE_IPADDR": "127.0.0.1"}  # fmt: skip
        env.pop("SLURM_JOB_NODELIST", None)
        cmd = [sys.executable, "-m", "ladder.cli", "launch", "--nodes", str(nodes),
               "--rdzv-port", str(port), "--", sys.executable, "-m", "ladder.cli", "train",
               "--rung-json", rung.to_json(), "--tokens-dir", str(shards),
               "--out-dir", str(out)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))  # fmt: skip
        deadline = time.monotonic() + 60
        while node == 0 and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
    return procs


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("tokens"))


def test_two_nodes_match_one_process(shards, tmp_path):
    rung = tiny_rung(tokens=20 * 128, gpus=2, eval_points=2)
    assert run(rung, shards, tmp_path / "single") == 0
    procs = start_nodes(rung, shards, tmp_path / "nodes")
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    assert "ladder launch: node 0 of 2" in outs[0] and "ladder launch: node 1 of 2" in outs[1]
    assert json.loads((tmp_path / "nodes/train.json").read_text())["world_size"] == 2
    a, b = read_log(tmp_path / "single"), read_log(tmp_path / "nodes")
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):  # same global batch; only the reduction differs
        assert x["step"] == y["step"]
        assert float(y["loss_nats"]) == pytest.approx(float(x["loss_nats"]), abs=1e-4)


def test_a_dead_node_ends_the_other_with_an_error(shards, tmp_path):
    rung = tiny_rung(tokens=4000 * 128, gpus=2, checkpoint_minutes=0.001)
    procs = start_nodes(rung, shards, tmp_path / "run")
    ckpt = tmp_path / "run/ckpt/state.pt"
    deadline = time.monotonic() + 240
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ckpt.exists(), "training did not start"
    # a lost node: its launcher, torchrun agent and worker all go at once (the worker
    # is in a session of its own, so a process group kill would miss it)
    for pid in descendants(procs[1].pid):
        os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    out = procs[0].communicate(timeout=180)[0]
    print(f"node 0 ended {time.monotonic() - t0:.1f} s after node 1 died")
    assert procs[0].returncode != 0
    assert "ChildFailedError" in out or "RendezvousConnectionError" in out, out[-3000:]
    assert not (tmp_path / "run/train.json").exists()  # no complete-looking run
    assert ckpt.exists()  # the retry resumes from here


def test_two_node_rung_sbatch_from_the_plugin(tmp_path, monkeypatch):
    """The resources of a dry run, fed to the plugin's own sbatch builder."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    from tests.test_devices import job_resources

    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["ladder"]["widths"] = [8, 32]
    cfg["ladder"]["overrides"] = {"L2-d32-T16.4K": {"gpus": 4}}
    cfg["cluster"] = {"gpus_per_node": 2, "rdzv_port": 29511, "mem_mb": 1000}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("LADDER_SLURM_GPU_MODEL", "h100")  # the site's, as on a cluster
    proc = snakemake(tmp_path, "-n", "-p", "--workflow-profile", "none", configfile=path,
                     timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_resources(proc)
    big, small = jobs["train:L2-d32-T16.4K"], jobs["train:L1-d8-T16.4K"]
    assert (big["nodes"], big["tasks"], big["tasks_per_gpu"]) == ("2", "2", "0")
    assert big["mpi"] == "srun" and big["gres"] == "gpu:h100:2"
    assert "gpu" not in big and "gpu_model" not in big
    assert "nodes" not in small and small["gpu_model"] == "h100"
    assert "--nodes 2 --cpus-per-node" in proc.stdout and "--rdzv-port 29511" in proc.stdout

    def typed(res: dict[str, str]) -> SimpleNamespace:
        out = {k: int(v) if v.lstrip("-").isdigit() else v for k, v in res.items()}
        return SimpleNamespace(get=out.get, **out)

    job = SimpleNamespace(resources=typed(big), threads=int(big.get("_cores", 1)))
    params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": "c", "account": "",
              "partition": "", "workdir": ""}  # fmt: skip
    sbatch = get_submit_command(job, params) + set_gres_string(job)
    print(sbatch)
    assert "--nodes=2" in sbatch and "--ntasks=2" in sbatch and "--gres=gpu:h100:2" in sbatch
    assert "--ntasks-per-gpu" not in sbatch and "--gpus=" not in sbatch
    assert f"--mem {2 * 1000}" in sbatch  # per node


def test_plan_shows_nodes_and_rejects_a_partial_node(tmp_path, capsys):
    from ladder import plan as P

    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["ladder"]["overrides"] = {"L2-d32-T16.4K": {"gpus": 16}}
    cfg["cluster"] = {"gpus_per_node": 8, "flops_per_s": 1e12}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert P.main(["--configfile", str(path), "--out", str(tmp_path / "plan.csv")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("L2-d32"))
    assert "2x8" in line.split()
    rows = (tmp_path / "plan.csv").read_text().splitlines()
    head, big = rows[0].split(","), next(r for r in rows if r.startswith("L2-d32")).split(",")
    assert (big[head.index("nodes")], big[head.index("gpus_per_node")]) == ("2", "8")
    cfg["ladder"]["overrides"] = {"L2-d32-T16.4K": {"gpus": 12}}
    path.write_text(yaml.safe_dump(cfg))
    assert P.main(["--configfile", str(path), "--out", str(tmp_path / "p2.csv")]) == 2
    err = capsys.readouterr().err
    assert "ladder.overrides.L2-d32-T16.4K.gpus" in err and "multiple" in err


def test_explicit_nodes_in_plan_resources_and_launcher(tmp_path, capsys):
    """train.nodes (here a rung's override) spreads its gpus over that many nodes without
    cluster.gpus_per_node: plan, plan.csv, the train rule's resources and `ladder launch
    --nodes` say so; evaluation stays one process on one node."""
    from ladder import plan as P
    from tests.test_devices import job_resources

    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["ladder"]["widths"] = [8, 32]
    cfg["ladder"]["overrides"] = {"L2-d32-T16.4K": {"gpus": 4, "nodes": 2}}
    cfg["cluster"] = {"rdzv_port": 29512, "mem_mb": 1000}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert P.main(["--configfile", str(path), "--out", str(tmp_path / "plan.csv")]) == 0
    lines = {x.split()[0]: x.split() for x in capsys.readouterr().out.splitlines() if x}
    assert "2x2" in lines["L2-d32-T16.4K"] and "1x1" in lines["L1-d8-T16.4K"]
    rows = (tmp_path / "plan.csv").read_text().splitlines()
    head = rows[0].split(",")
    big = next(r for r in rows if r.startswith("L2-d32")).split(",")
    small = next(r for r in rows if r.startswith("L1-d8")).split(",")
    assert (big[head.index("nodes")], big[head.index("gpus_per_node")]) == ("2", "2")
    assert (small[head.index("nodes")], small[head.index("gpus_per_node")]) == ("1", "1")
    proc = snakemake(tmp_path, "-n", "-p", "--workflow-profile", "none", configfile=path,
                     timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_resources(proc)
    train, evaluate = jobs["train:L2-d32-T16.4K"], jobs["evaluate:L2-d32-T16.4K"]
    assert (train["nodes"], train["tasks"], train["mpi"], train["gres"]) == (
        "2",
        "2",
        "srun",
        "gpu:2",
    )
    assert train["mem_mb"] == "2000"  # per node: mem_mb × its 2 GPUs
    assert "nodes" not in evaluate and evaluate["gpu"] == "1"
    assert "launch --gpu-percent 400 --nodes 2 --cpus-per-node" in proc.stdout
    assert "--rdzv-port 29512" in proc.stdout


def test_a_checkpoint_resumes_on_another_node_count():
    from dataclasses import replace

    from ladder.train import RUNTIME_FIELDS, changed_fields

    rung = tiny_rung(gpus=2)
    state = {"rung": rung.to_json()}  # as a checkpoint saved on one node keeps it
    assert changed_fields(state, replace(rung, nodes=2), RUNTIME_FIELDS) == []


# ----------------------------------------------------------------------------- two slurmd

SLURM_NODES = 2


@pytest.fixture(scope="module")
def two_node_cluster():
    """scripts/slurm/cluster.sh's two-node cluster (LADDER_SLURM_NODES=2: two slurmd on
    this host, half of its CPUs and one fake GPU each), in test_slurm's turn at the
    machine's one test cluster (its lock), always stopped before the turn ends."""
    from tests.test_slurm import CLUSTER_SH, _skip_or_fail, cluster_turn, missing

    reason = missing()
    if reason:
        _skip_or_fail(reason)
    env = {**os.environ, "LADDER_SLURM_NODES": str(SLURM_NODES), "LADDER_SLURM_GPUS": "1"}
    with cluster_turn():
        try:
            subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True)
            start = subprocess.run(
                ["bash", str(CLUSTER_SH), "start"], env=env, capture_output=True, text=True
            )
            if start.returncode != 0:  # e.g. a slurmd built without multiple-slurmd support
                _skip_or_fail(f"could not start a two-node test cluster: {start.stderr.strip()}")
            yield
        finally:
            subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True)


@pytest.mark.slow
def test_two_node_rung_through_the_slurm_profile(two_node_cluster, tmp_path):
    """The ideal check: the plugin submits a 2-node job, srun starts one launcher per
    node, torchrun's c10d joins them (gloo on the CPU), and the losses are a one-process
    run's. The data stages run locally first (only training needs the cluster)."""
    from ladder.config import load_config
    from ladder.plan import plan
    from tests.test_slurm import slurm_cmd, write_config

    config = write_config(
        tmp_path / "two_nodes.yaml",
        ladder={"widths": [8]},
        train={"gpus": SLURM_NODES, "nodes": SLURM_NODES},
        cluster={"mem_mb": 2000, "min_runtime_min": 5, "data_cpus": 1},
    )
    (rung,) = plan(load_config(config))
    tokens = tmp_path / "results/tiny/tokens"
    data = subprocess.run(slurm_cmd(config, "--cores", "1", "results/tiny/tokens/meta.json",
                                    slurm=False),
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert data.returncode == 0, (data.stdout + data.stderr)[-3000:]
    run_dir = tmp_path / f"results/tiny/runs/{rung.id}"
    proc = subprocess.run(
        slurm_cmd(config, f"results/tiny/runs/{rung.id}/train.json", "--retries", "0"),
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    log = tmp_path / f"results/tiny/logs/train/{rung.id}.log"
    text = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, output[-3000:] + text[-3000:]
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    jobs = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", run_id, "-o", "%T|%k|%D|%N"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    train = [j.split("|") for j in jobs if "rule_train" in j]
    assert len(train) == 1 and train[0][0] == "COMPLETED", jobs
    assert train[0][2] == str(SLURM_NODES) and "localhost" in train[0][3], train  # both nodes
    print(f"train job {train[0]}; launcher lines:")
    print("\n".join(x for x in text.splitlines() if x.startswith("ladder launch")))
    assert "node 0 of 2" in text and "node 1 of 2" in text, text[-3000:]
    assert json.loads((run_dir / "train.json").read_text())["world_size"] == SLURM_NODES
    # the same rung as one process on this machine: the same global batch and losses
    ref = tmp_path / "ref"
    assert run(rung, tokens, ref, "--eval-tokens", "8192") == 0
    a, b = read_log(ref), read_log(run_dir)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x["step"] == y["step"]
        assert float(y["loss_nats"]) == pytest.approx(float(x["loss_nats"]), abs=1e-4)
