"""A rung across several nodes: two `ladder launch` node tasks on this machine (as srun
would start them: SLURM_NODEID 0 and 1, one c10d rendezvous on localhost, gloo on the
CPU) train like one process; a dead node ends the other with an error, not a hang; and
the SLURM resources of a 2-node rung, through the executor plugin's own sbatch builder."""

from __future__ import annotations

import json
import os
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
