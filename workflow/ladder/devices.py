"""Which GPUs a job gets, and what a job asks a scheduler for.

    ladder launch --gpu-percent 25 -- ladder train ...   (what the train rule runs)

Snakemake counts GPUs but does not say *which* ones a job may use, so on a workstation
two jobs would both land on GPU 0. `ladder launch` claims devices for one job, sets
CUDA_VISIBLE_DEVICES, and execs the command (torchrun is started by `ladder train`
itself when a rung has gpus > 1). A claim is a small file held with flock(2): the
kernel drops the lock when the job's last process exits, however it exits, so a
killed job never leaves a device claimed. Shares are in percent of one GPU: 100 is a
whole GPU, 25 lets four small rungs share one (on an H200 four concurrent tiny runs
gave 1.25x the throughput of one). With no GPU the command runs unchanged, on the CPU.
Either way the job's log starts with a `ladder launch:` line saying which it got.

The pool is CUDA_VISIBLE_DEVICES when set (so a user can hand Ladder GPUs 2,3, and a
SLURM job offers exactly its allocation), else every GPU the driver lists. Claims are
namespaced by SLURM_JOB_ID, because two SLURM jobs on one node may each see their own
GPU as device 0.

The rest are the numbers a SLURM job asks for, from the study's `cluster` section
(docs/cluster.md), and the helpers the Snakemake profiles call at start-up.
It imports no torch (and YAML only when asked): the launcher must start instantly.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ladder.errors import failed

if TYPE_CHECKING:  # the launcher imports no more than it needs
    from ladder.config import ClusterConfig, Study

FULL_GPU_PERCENT = 100
POLL_S = 2.0  # how often a waiting launcher looks for a free device


# ----------------------------------------------------------------------------- discovery


def nvidia_smi(query: str, fmt: str = "--format=csv,noheader") -> list[str] | None:
    """One value per GPU of `nvidia-smi --query-gpu=<query>`, in its (PCI bus) order; None
    where nvidia-smi is missing or fails. The one place Ladder asks the NVIDIA driver."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", fmt],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def listed_gpus() -> list[str]:
    """GPU indices the NVIDIA driver lists, in nvidia-smi (PCI bus) order; [] if none."""
    listed = nvidia_smi("index")
    if listed is not None:
        return listed
    # no nvidia-smi (e.g. a container without the utilities): the driver's own listing
    proc = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(proc.iterdir())))] if proc.is_dir() else []


def gpu_pool(env: dict[str, str] | None = None) -> list[str]:
    """The device ids a job may be given: CUDA_VISIBLE_DEVICES if set, else all GPUs."""
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d.strip() for d in visible.split(",") if d.strip()]
        # CUDA stops at the first invalid entry; "-1" or "" is the usual "no GPU"
        return ids[: ids.index("-1")] if "-1" in ids else ids
    return listed_gpus()


def gpu_count() -> int:
    """GPUs on this machine for the workstation profile; LADDER_GPUS overrides."""
    if os.environ.get("LADDER_GPUS"):
        return int(os.environ["LADDER_GPUS"])
    return len(gpu_pool())


def workstation_gpu_percent(argv: list[str] | None = None) -> int | None:
    """The `gpu_percent` limit for profiles/default: 100 per GPU present.

    None (no limit) with no GPU, so every job runs on the CPU at once, and when the
    command line (or SNAKEMAKE_PROFILE) picks a cluster executor or another profile: the
    workflow profile is read last and would cap every job's GPUs to this machine's count
    (`ladder launch` still keeps jobs apart, waiting for a free device if need be).
    """
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("SNAKEMAKE_PROFILE", "none") != "none":  # a profile from the environment
        return None
    for i, arg in enumerate(argv):
        if arg.startswith(("--profile", "--executor", "-e")):
            value = arg.split("=", 1)[1] if "=" in arg else " ".join(argv[i + 1 : i + 2])
            if value and value not in ("local", "none"):
                return None
    n = gpu_count()
    return n * FULL_GPU_PERCENT if n > 0 else None


# ----------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    device: str
    percent: int
    path: Path


def lock_dir() -> Path:
    """Per-user (LADDER_GPU_LOCK_DIR shares one between users), per SLURM job, and per
    node of a multi-node job: each node's launcher claims its own node's GPUs, and two
    nodes may share a /tmp (the two slurmd of scripts/slurm/cluster.sh on one host do)."""
    base = os.environ.get("LADDER_GPU_LOCK_DIR") or f"/tmp/ladder-gpus-{os.getuid()}"
    job = os.environ.get("SLURM_JOB_ID", "local")
    if os.environ.get(NODE_TASK_ENV) == "1" and "SLURM_NODEID" in os.environ:
        job += f"-node{os.environ['SLURM_NODEID']}"
    return Path(base) / job


def _safe(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", device)


def _held(path: Path) -> bool:
    """True if a live process holds this claim file's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we just took
    return False


def used_percent(directory: Path, pool: list[str]) -> dict[str, int]:
    """Share of each device held by live claims; removes the claims of dead jobs."""
    used = dict.fromkeys(pool, 0)
    by_name = {_safe(d): d for d in pool}
    for path in directory.glob("*.claim"):
        device = by_name.get(path.name.split("@", 1)[0])
        if device is None:
            continue
        if not _held(path):
            path.unlink(missing_ok=True)
            continue
        with contextlib.suppress(OSError, ValueError):
            used[device] += int(json.loads(path.read_text())["percent"])
    return used


def choose(used: dict[str, int], percent: int) -> list[str] | None:
    """Devices for a job of `percent` (> 100: that many whole GPUs), or None if busy.

    Whole GPUs go to idle devices in pool order; a share goes to the busiest device it
    still fits on (best fit), so small jobs pack together and leave whole GPUs free.
    """
    if percent >= FULL_GPU_PERCENT:
        n = math.ceil(percent / FULL_GPU_PERCENT)
        idle = [d for d, u in used.items() if u == 0]
        return idle[:n] if len(idle) >= n else None
    fits = [d for d, u in used.items() if u + percent <= FULL_GPU_PERCENT]
    return [max(fits, key=lambda d: used[d])] if fits else None


def claim(pool: list[str], percent: int, wait: bool = True) -> list[Claim]:
    """Claim devices; the lock fds are left open and inheritable, for exec."""
    n_needed = math.ceil(percent / FULL_GPU_PERCENT)
    if n_needed > len(pool):
        raise ValueError(
            f"the job needs {n_needed} GPU(s) but {len(pool)} are available "
            f"({', '.join(pool) or 'none'}); lower train.gpus or set CUDA_VISIBLE_DEVICES"
        )
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        # one launcher at a time looks and claims: a mutex around the read-modify-write
        mutex = os.open(directory / ".mutex", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(mutex, fcntl.LOCK_EX)
            devices = choose(used_percent(directory, pool), percent)
            if devices is not None:
                share = min(percent, FULL_GPU_PERCENT)
                return [_take(directory, d, share) for d in devices]
        finally:
            os.close(mutex)
        if not wait:
            raise TimeoutError("no free GPU")
        if not told:
            print(f"ladder launch: waiting for {percent}% GPU (pool {pool})", file=sys.stderr)
            told = True
        time.sleep(POLL_S)


def _take(directory: Path, device: str, percent: int) -> Claim:
    path = directory / f"{_safe(device)}@{os.getpid()}-{time.monotonic_ns()}.claim"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"percent": percent, "pid": os.getpid()}).encode())
    os.set_inheritable(fd, True)  # the lock lives as long as the exec'd job
    return Claim(device, percent, path)


# ----------------------------------------------------------------------------- launch


def launch_env(env: dict[str, str], devices: list[str]) -> dict[str, str]:
    env = dict(env)
    if "CUDA_VISIBLE_DEVICES" not in env:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's ids = nvidia-smi's ids
    env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    return env


def gpu_env_note(env: dict[str, str] | None = None) -> str:
    """For the log of a job that got no GPU: the variables CUDA and SLURM set, if any."""
    env = os.environ if env is None else env
    keys = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS")
    seen = [f"{k}={env[k]!r}" for k in keys if k in env]
    return f" ({', '.join(seen)})" if seen else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ladder launch",
        description="run a command on its own GPU(s): claim, set CUDA_VISIBLE_DEVICES, exec",
        epilog="example: ladder launch --gpu-percent 200 -- ladder train --rung-json ...",
    )
    ap.add_argument(
        "--gpu-percent",
        type=int,
        default=FULL_GPU_PERCENT,
        help="share of GPUs the job needs: 100 = one GPU, 25 = a quarter, 200 = two",
    )
    ap.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="nodes of a multi-node rung: in a SLURM job, srun starts one launcher per "
        "node, each with its node's share of --gpu-percent; outside SLURM, one node",
    )
    ap.add_argument("--cpus-per-node", type=int, help="with --nodes: srun's --cpus-per-task")
    ap.add_argument(
        "--rdzv-port", type=int, default=29500, help="with --nodes: torchrun's rendezvous port"
    )
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give the command after --")
    if args.gpu_percent < 1 or args.nodes < 1:
        ap.error("--gpu-percent and --nodes must be >= 1")
    env = dict(os.environ)
    percent = args.gpu_percent
    if args.nodes > 1:
        if env.get(NODE_TASK_ENV) == "1":  # one of our srun's tasks: this node's share
            try:
                env |= node_env(env, args.nodes, args.rdzv_port)
            except (OSError, ValueError) as e:
                return failed("ladder launch", e)
            percent = max(1, percent // args.nodes)
            print(f"ladder launch: node {env[NODE_RANK_ENV]} of {args.nodes}", flush=True)
        elif env.get("SLURM_JOB_ID"):  # the job's first node: one launcher per node
            srun = srun_command(
                args.nodes, args.cpus_per_node, sys.argv[1:] if argv is None else argv
            )
            print(f"ladder launch: {' '.join(srun[:8])} ...", flush=True)
            return _exec(srun, {**env, NODE_TASK_ENV: "1"})
        else:
            print(f"ladder launch: {args.nodes} nodes asked, not in a SLURM job: one node")
    pool = gpu_pool()
    if pool:
        try:
            claims = claim(pool, percent)
        except ValueError as e:
            return failed("ladder launch", e)
        devices = [c.device for c in claims]
        env = launch_env(env, devices)
        print(f"ladder launch: CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}", flush=True)
    else:
        print(f"ladder launch: no GPU; on the CPU{gpu_env_note()}", flush=True)
    return _exec(cmd, env)


def _exec(cmd: list[str], env: dict[str, str]) -> int:
    """Replace this process by `cmd` (so the scheduler's signals reach it); 127 if it
    cannot be started."""
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as e:
        print(f"ladder launch: cannot run {cmd[0]}: {e}", file=sys.stderr)
        return 127


# ----------------------------------------------------------------------------- multi-node

# A multi-node rung's job runs its command on the first node (the plugin's `mpi` jobs are
# not wrapped in srun); `ladder launch --nodes N` there starts `srun` with one task per
# node, each a `ladder launch` again (marked by NODE_TASK_ENV), which claims its node's
# GPUs and tells `ladder train` the torchrun layout through these variables.
NODE_TASK_ENV = "LADDER_NODE_TASK"
NNODES_ENV = "LADDER_NNODES"
NODE_RANK_ENV = "LADDER_NODE_RANK"
RDZV_ENDPOINT_ENV = "LADDER_RDZV_ENDPOINT"
RDZV_ID_ENV = "LADDER_RDZV_ID"


def srun_command(nodes: int, cpus_per_node: int | None, launch_argv: list[str]) -> list[str]:
    """One task per node of the job, each `ladder launch` with the same arguments.

    --kill-on-bad-exit: a node whose launcher fails (a lost node, a crashed rank) ends the
    whole step at once, instead of the others waiting in a collective. --cpus-per-task:
    the plugin clears SLURM_* before the job's command, so srun would give a task 1 CPU.
    The step gets all of the job's GPUs on each node (srun's default for GRES).
    """
    cmd = ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1"]
    cmd += ["--kill-on-bad-exit=1"]
    if cpus_per_node:
        cmd += [f"--cpus-per-task={cpus_per_node}"]
    return [*cmd, sys.executable, "-m", "ladder.cli", "launch", *launch_argv]


def first_host(env: dict[str, str]) -> str:
    """The job's first node, where torchrun's c10d rendezvous listens: `scontrol show
    hostnames` of SLURM_JOB_NODELIST, else the address of the node srun ran on
    (SLURM_LAUNCH_NODE_IPADDR: the batch host, the first node)."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if nodelist and shutil.which("scontrol"):
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()[0]
    if env.get("SLURM_LAUNCH_NODE_IPADDR"):
        return env["SLURM_LAUNCH_NODE_IPADDR"]
    raise ValueError(
        f"cannot tell the first node of the job: no SLURM_JOB_NODELIST ({nodelist!r}) "
        "that scontrol can expand, and no SLURM_LAUNCH_NODE_IPADDR"
    )


def node_env(env: dict[str, str], nodes: int, port: int) -> dict[str, str]:
    """What `ladder train` needs to start torchrun on this node of a multi-node job."""
    if "SLURM_NODEID" not in env:
        raise ValueError("a node task without SLURM_NODEID: start it with srun")
    return {
        NNODES_ENV: str(nodes),
        NODE_RANK_ENV: env["SLURM_NODEID"],
        RDZV_ENDPOINT_ENV: f"{first_host(env)}:{port}",
        RDZV_ID_ENV: env.get("SLURM_JOB_ID", "ladder"),
    }


# ----------------------------------------------------------------------------- SLURM


def runtime_min(flops: float, gpus: float, cluster: ClusterConfig) -> int:
    """Minutes of wall time a job asks SLURM for: runtime_factor × FLOPs / throughput.

    The throughput of a job is flops_per_s (one GPU) × its GPUs: a quarter-GPU share
    is assumed to get a quarter. Without flops_per_s every job asks for
    default_runtime_min. max_runtime_min caps the request at the partition's limit;
    a rung that needs longer continues from its checkpoint on the next attempt.
    """
    if cluster.flops_per_s:
        seconds = cluster.runtime_factor * flops / (cluster.flops_per_s * gpus)
        minutes = max(cluster.min_runtime_min, math.ceil(seconds / 60))
    else:
        minutes = cluster.default_runtime_min
    if cluster.max_runtime_min:
        minutes = min(minutes, cluster.max_runtime_min)
    return int(minutes)


def whole_gpus(gpus: float) -> int:
    """GPUs a job takes from SLURM: a fractional share still needs one device."""
    return max(1, math.ceil(gpus))


def gpu_percent(gpus: float) -> int:
    return max(1, round(gpus * FULL_GPU_PERCENT))


@dataclass(frozen=True)
class Layout:
    """Where a rung trains: `nodes` nodes of `gpus_per_node` whole GPUs each."""

    nodes: int
    gpus_per_node: int

    def __str__(self) -> str:
        return f"{self.nodes}x{self.gpus_per_node}"


def node_layout(gpus: float, gpus_per_node: int | None, nodes: int | None = None) -> Layout:
    """A rung's nodes × GPUs: `nodes` (train.nodes) when given, else one node unless it
    asks for more GPUs than one node has (cluster.gpus_per_node), then whole nodes. Every
    node runs the same torchrun, so the GPUs must split evenly over the nodes."""
    whole = whole_gpus(gpus)
    if nodes is not None:
        return _explicit_layout(gpus, gpus_per_node, nodes)
    if not gpus_per_node or whole <= gpus_per_node:
        return Layout(1, whole)
    if whole % gpus_per_node:
        raise ValueError(
            f"train.gpus {gpus:g} is more than one node's GPUs (cluster.gpus_per_node "
            f"{gpus_per_node}) and must then be a multiple of it (whole nodes)"
        )
    return Layout(whole // gpus_per_node, gpus_per_node)


def _explicit_layout(gpus: float, gpus_per_node: int | None, nodes: int) -> Layout:
    """node_layout for an explicit node count; the messages name the values, the caller
    the key (ladder.plan.check_layout)."""
    if nodes < 1:
        raise ValueError(f"nodes {nodes} must be a positive integer (or null)")
    whole = whole_gpus(gpus)
    if nodes > 1 and (gpus != whole or whole % nodes):
        raise ValueError(
            f"{nodes} nodes need the rung's gpus to split evenly over them (every node runs "
            f"the same torchrun), but gpus is {gpus:g}; give gpus a multiple of {nodes}"
        )
    per_node = whole // nodes
    if gpus_per_node and per_node > gpus_per_node:
        raise ValueError(
            f"gpus {gpus:g} over {nodes} node(s) is {per_node} GPUs a node, more than "
            f"cluster.gpus_per_node {gpus_per_node}; give more nodes or fewer gpus"
        )
    return Layout(nodes, per_node)


def signal_arg(minutes: int, cluster: ClusterConfig) -> str:
    """`--signal=USR1@S`: SLURM warns the job S s before its time limit, so the trainer
    checkpoints while it can (KillWait after SIGTERM is often only 30 s). Left out when
    the job is too short for it (SLURM may send the signal up to 60 s early)."""
    warn = cluster.checkpoint_warning_s
    return f"--signal=USR1@{warn}" if warn and minutes * 60 >= 4 * (warn + 60) else ""


def job_resources(stage: str, rungs: dict, study: Study) -> dict[str, Callable]:
    """The resources of the train or evaluate rule, as functions of the wildcards.

    gpu: whole GPUs (SLURM's --gpus); gpu_percent: the workstation's unit (Snakemake
    rounds fractional resources to integers, so a 0.25 GPU is 25); cpus_per_task,
    mem_mb, runtime and slurm_extra: what SLURM is asked for (study `cluster` section);
    gpu_model: the site's (`slurm_site`). A rung larger than a node (`node_layout`), or
    one with train.nodes > 1, asks instead for `nodes`, one task per node (`tasks`, `mpi`:
    the plugin then runs the command unwrapped on the first node, where `ladder launch
    --nodes` starts srun; `tasks_per_gpu: 0`: no --ntasks-per-gpu) and its GPUs per node
    (`gres`, which unlike --gpus counts per node); cpus_per_task and mem_mb are then per
    node. A resource that is None is left out.
    """
    cluster = study.cluster

    def gpus(w) -> float:
        g = rungs[w.rung].gpus  # evaluation is one process on one device
        return g if stage == "train" else min(g, 1)

    def layout(w) -> Layout:
        nodes = rungs[w.rung].nodes if stage == "train" else None  # evaluation: one node
        return node_layout(gpus(w), cluster.gpus_per_node, nodes)

    def multi(w) -> bool:
        return layout(w).nodes > 1

    def node_gpus(w) -> int:
        return layout(w).gpus_per_node

    def flops(w) -> float:
        row = rungs[w.rung].row()
        if stage == "train":
            return row["flops"]
        return row["flops_per_token"] / 3 * study.eval.max_tokens  # forward only

    def runtime(w) -> int:
        return runtime_min(flops(w), gpus(w), cluster)

    def cpus(w) -> int:
        return (cluster.cpus_per_task or rungs[w.rung].threads) * node_gpus(w)

    def gres(w) -> str | None:
        model = site_gpu_model()
        return f"gpu:{model + ':' if model else ''}{node_gpus(w)}" if multi(w) else None

    return {
        "gpu": lambda w: None if multi(w) else whole_gpus(gpus(w)),
        "gpu_model": lambda w: None if multi(w) else site_gpu_model(),
        "gpu_percent": lambda w: gpu_percent(gpus(w)),
        "cpus_per_task": cpus,
        "mem_mb": lambda w: cluster.mem_mb * node_gpus(w),
        "runtime": runtime,
        "slurm_extra": lambda w: signal_arg(runtime(w), cluster) if stage == "train" else "",
        "nodes": lambda w: layout(w).nodes if multi(w) else None,
        "tasks": lambda w: layout(w).nodes if multi(w) else None,
        "mpi": lambda w: "srun" if multi(w) else None,
        "tasks_per_gpu": lambda w: 0 if multi(w) else None,
        "gres": gres,
    }


def launch_args(
    gpus: float, cluster: ClusterConfig, cpus_per_node: int, nodes: int | None = None
) -> str:
    """`ladder launch`'s multi-node arguments for a rung ('' on one node); `nodes` is the
    rung's train.nodes."""
    lay = node_layout(gpus, cluster.gpus_per_node, nodes)
    if lay.nodes == 1:
        return ""
    return f"--nodes {lay.nodes} --cpus-per-node {cpus_per_node} --rdzv-port {cluster.rdzv_port}"


@dataclass(frozen=True)
class Site:
    """Where jobs go: from the environment, else a small YAML file, never the repo."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpu_model: str | None = None


SITE_KEYS = {
    "partition": ("LADDER_SLURM_PARTITION", "SBATCH_PARTITION"),
    "account": ("LADDER_SLURM_ACCOUNT", "SBATCH_ACCOUNT"),
    "qos": ("LADDER_SLURM_QOS", "SBATCH_QOS"),
    "gpu_model": ("LADDER_SLURM_GPU_MODEL",),
}


def site_file() -> Path:
    default = Path.home() / ".config" / "ladder" / "slurm.yaml"
    return Path(os.environ.get("LADDER_SLURM_SITE", default)).expanduser()


def slurm_site(env: dict[str, str] | None = None, path: Path | None = None) -> Site:
    """Partition, account, QoS and GPU model: environment variables win over the file."""
    env = os.environ if env is None else env
    path = site_file() if path is None else path
    from_file = {}
    if path.exists():
        import yaml

        from_file = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(from_file) - set(SITE_KEYS))
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(SITE_KEYS)}")
    values = {}
    for key, names in SITE_KEYS.items():
        value = next((env[n] for n in names if env.get(n)), from_file.get(key))
        values[key] = None if value in (None, "") else str(value)
    return Site(**values)


def site_gpu_model() -> str | None:
    """The site's GPU model (LADDER_SLURM_GPU_MODEL or the site file), for the GPU rules'
    resources: a rule, not the profile, sets it, since a multi-node rung names it in
    `gres` and must not get the plugin's `--gpus=<model>:1` too."""
    return slurm_site().gpu_model


if __name__ == "__main__":
    sys.exit(main())
