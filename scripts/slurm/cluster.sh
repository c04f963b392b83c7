#!/usr/bin/env bash
# A throwaway one-node SLURM cluster on this machine, for the tests and for trying the
# SLURM profile without a real cluster. Needs root and Debian's slurm-wlm + munge
# (`apt-get install slurm-wlm munge`); runs without systemd.
#
#   scripts/slurm/cluster.sh start    # munge, slurmctld, slurmd; waits until the node is idle
#   scripts/slurm/cluster.sh status   # sinfo + squeue
#   scripts/slurm/cluster.sh stop     # cancels jobs, stops the daemons it started
#
# There is one such cluster per machine, and `stop` cancels every job on it: the tests
# (tests/test_slurm.py) hold a lock, $LADDER_SLURM_DIR.lock, so two sessions take turns.
# State and logs go to LADDER_SLURM_DIR (default /tmp/ladder-slurm). The config goes to
# /etc/slurm/slurm.conf, where every SLURM command looks (SLURM_CONF would not do: the
# Snakemake plugin clears SLURM_* variables before its srun), and it refuses to replace
# a slurm.conf it did not write; `stop` removes it again.
# The node advertises LADDER_SLURM_GPUS (default 1) fake GPUs (gres on /dev/null, ...) so
# GPU requests can be scheduled; jobs that get one see CUDA_VISIBLE_DEVICES=0 and, with no
# real GPU, train on the CPU.
# LADDER_SLURM_NODES=2 makes it a two-node cluster on this one host, for multi-node jobs:
# two slurmd (`slurmd -N <node>`, a build with multiple-slurmd support, as Debian's is),
# each with its own port, spool, pid and log file, and half of the CPUs and memory. The
# nodes are named `$(hostname -s)` and `localhost`: torchrun's rendezvous host is the
# job's first node name, so both names must resolve to this machine.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live in sbin, not always on PATH

DIR="${LADDER_SLURM_DIR:-/tmp/ladder-slurm}"
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MARK="# written by scripts/slurm/cluster.sh"
FAKE_GPUS="${LADDER_SLURM_GPUS:-1}"
NODES="${LADDER_SLURM_NODES:-1}"
SLURMD_PORT="${LADDER_SLURMD_PORT:-6818}"

die() { echo "cluster.sh: $*" >&2; exit 1; }

# the node names: one node is this host; two are this host and localhost (see above)
node_names() {
    case "$NODES" in
    1) hostname -s ;;
    2) printf '%s\n' "$(hostname -s)" localhost ;;
    *) die "LADDER_SLURM_NODES must be 1 or 2, not $NODES" ;;
    esac
}

# a node's slurmd pid file (slurm.conf's SlurmdPidFile, %n expanded)
slurmd_pidfile() { if ((NODES == 1)); then echo "$DIR/slurmd.pid"; else echo "$DIR/slurmd-$1.pid"; fi; }

# the NodeName lines: `slurmd -C`'s line for one node; for two, each gets half of the
# CPUs and memory (configured below the hardware, so no node is drained for it) and a
# port of its own, on this host
node_lines() {
    local node="$1"
    if ((NODES == 1)); then
        echo "$node Gres=gpu:$FAKE_GPUS State=UNKNOWN"
        return
    fi
    local cpus mem i=0 name host
    host="$(hostname -s)"
    cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")"
    mem="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node")"
    ((cpus >= NODES)) || die "$NODES nodes need at least $NODES CPUs, this host has $cpus"
    for name in $(node_names); do
        echo "NodeName=$name NodeHostname=$host Port=$((SLURMD_PORT + i))" \
            "CPUs=$((cpus / NODES)) RealMemory=$((mem / NODES)) Gres=gpu:$FAKE_GPUS State=UNKNOWN"
        i=$((i + 1))
    done
}

write_conf() {
    local node host
    host="$(hostname -s)"
    # `slurmd -C` prints this machine's NodeName line: CPUs and RealMemory. Without
    # RealMemory every job that asks for memory is refused.
    node="$(slurmd -C | head -n 1)"
    [[ "$node" == NodeName=* ]] || die "slurmd -C printed no NodeName line: $node"
    for f in "$CONF" "$GRES"; do
        if [[ -f "$f" ]] && ! grep -qF "$MARK" "$f"; then
            die "$f exists and was not written by this script; not replacing it"
        fi
    done
    mkdir -p "$DIR"/{state,spool,log} "$(dirname "$CONF")"
    local spool="$DIR/spool" pidfile="$DIR/slurmd.pid" logfile="$DIR/log/slurmd.log" name
    if ((NODES > 1)); then  # one of each per slurmd (%n: its node name)
        spool="$DIR/spool/%n" pidfile="$DIR/slurmd-%n.pid" logfile="$DIR/log/slurmd-%n.log"
        for name in $(node_names); do mkdir -p "$DIR/spool/$name"; done
    fi
    # one fake device file per GPU: each must be distinct for SLURM to count them
    local files=(/dev/null /dev/zero /dev/full /dev/urandom)
    ((FAKE_GPUS >= 1 && FAKE_GPUS <= ${#files[@]})) || die "LADDER_SLURM_GPUS must be 1..4"
    echo "$MARK" >"$GRES"
    for ((i = 0; i < FAKE_GPUS; i++)); do
        echo "Name=gpu File=${files[$i]}" >>"$GRES"
    done
    cat >"$CONF" <<CONF
$MARK: a $NODES-node test cluster (no systemd, no cgroups, no accounting database)
ClusterName=ladder
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$pidfile
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$logfile
SlurmctldPort=${LADDER_SLURMCTLD_PORT:-6817}
SlurmdPort=$SLURMD_PORT
# no cgroups here: track processes through /proc, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no slurmdbd: sacct cannot work, so Snakemake must poll squeue (profiles/slurm)
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
# finished jobs stay visible to squeue for an hour: the plugin needs >= 3x its first
# status delay to trust squeue, and the tests read every job's state after the run (with
# 300 s the first jobs of a 6-minute run on a loaded 2-CPU machine were already gone)
MinJobAge=3600
# seconds between SIGTERM and SIGKILL when a job is cancelled, preempted or timed out
KillWait=30
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a per-CPU default one job would take the whole node's memory
DefMemPerCPU=1000
GresTypes=gpu
$(node_lines "$node")
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

all_slurmd_running() {
    local name
    for name in $(node_names); do running "$(slurmd_pidfile "$name")" || return 1; done
}

start() {
    command -v slurmctld >/dev/null || die "slurm-wlm is not installed (apt-get install slurm-wlm munge)"
    [[ $EUID -eq 0 ]] || die "must run as root (SlurmUser=root)"
    if running "$DIR/slurmctld.pid" && all_slurmd_running; then
        echo "cluster already running ($CONF)"
        return 0
    fi
    # the node starts afresh from slurm.conf: with its saved state, a node drained in an
    # earlier run (e.g. "Kill task failed" under load) would stay drained, never idle.
    # Job state stays, so job ids go on counting: an id names one job across restarts,
    # and a stale Snakemake cancelling "its" jobs by id cannot hit a newer run's.
    running "$DIR/slurmctld.pid" || rm -f "$DIR"/state/node_state*
    write_conf
    # munge: the key exists after install; start it only if it is not running
    if ! munge -n </dev/null >/dev/null 2>&1; then
        service munge start >/dev/null 2>&1 || munged --force
        touch "$DIR/munge.ours"
        for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    slurmctld -f "$CONF"
    if ((NODES == 1)); then
        slurmd -f "$CONF"
    else
        for name in $(node_names); do slurmd -f "$CONF" -N "$name"; done
    fi
    for _ in $(seq 100); do
        # one line per state: all nodes idle is the one line "idle"
        state="$(sinfo -h -o %t 2>/dev/null | sort -u | tr '\n' ' ' || true)"
        if [[ "$state" == "idle " ]]; then
            echo "cluster up: $NODES node(s) $(node_names | tr '\n' ' ')idle ($CONF, logs in $DIR/log)"
            return 0
        fi
        sleep 0.2
    done
    echo "--- slurmctld.log" >&2; tail -20 "$DIR/log/slurmctld.log" >&2 || true
    for f in "$DIR"/log/slurmd*.log; do echo "--- $f" >&2; tail -20 "$f" >&2 || true; done
    die "nodes did not become idle in 20 s (states: ${state:-none})"
}

stop() {
    grep -qF "$MARK" "$CONF" 2>/dev/null || { echo "no cluster of ours is running"; return 0; }
    if running "$DIR/slurmctld.pid"; then
        # let cancelled jobs end (SIGTERM, then SIGKILL after KillWait) before the
        # daemons go, so no job process outlives the cluster
        scancel --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 200); do
            [[ -z "$(squeue -h -t PD,R,CG,S 2>/dev/null)" ]] && break
            sleep 0.2
        done
    fi
    # every slurmd pid file there is (a cluster started with another LADDER_SLURM_NODES
    # leaves other names), then slurmctld
    for pidfile in "$DIR"/slurmd*.pid "$DIR/slurmctld.pid"; do
        [[ -e "$pidfile" ]] || continue
        if running "$pidfile"; then
            pid="$(cat "$pidfile")"
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$pidfile"
    done
    if [[ -f "$DIR/munge.ours" ]]; then
        service munge stop >/dev/null 2>&1 || true
        rm -f "$DIR/munge.ours"
    fi
    for f in "$CONF" "$GRES"; do
        grep -qF "$MARK" "$f" 2>/dev/null && rm -f "$f"
    done
    echo "cluster stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) sinfo && squeue --states=all ;;
*) die "usage: $0 start|stop|status" ;;
esac
