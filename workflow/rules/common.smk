# The study, validated and planned once at parse time; input functions for the rules.
# STUDY is a ladder.config.Study (frozen dataclasses, read by attribute); STUDY.to_dict()
# and STUDY.<section>.to_dict() give plain data for params.
import json
import math
import os
import re
import sys

try:
    from ladder.config import data_files, load_config, read_config_file
    from ladder.errors import ConfigError
    from ladder.estimates import memory_warnings
    from ladder.plan import (
        checkpoint_fractions,
        plan,
        sweep_plan,
        sweep_sources,
        wsd_plan,
    )
    from ladder.rung import size_of
    from ladder import store, tracking
except ImportError:
    sys.exit("Ladder is not installed: run `pip install -e .` in the repository root.")

try:
    for _path in workflow.configfiles:
        # what Snakemake's own loader lets through: a key given twice keeps the last
        read_config_file(_path)
    STUDY = load_config(config)
    _planned = plan(STUDY)
    LADDER = [r.id for r in _planned]  # the rungs of the study, in plan order
    SWEEPS = sweep_plan(STUDY, _planned)  # size -> its tuning runs
    # size -> the size whose sweep sets its lr (itself; under μP the base width's)
    SWEPT_BY = sweep_sources(STUDY, _planned)
    WSD = wsd_plan(
        STUDY, _planned
    )  # size -> its stable run and each branch's stop step
    # every trainable run: the ladder's rungs, the sweeps' tuning runs and the WSD stable
    # runs (whose spec, like a rung's, takes the size's tuned lr)
    RUNGS = {r.id: r for r in _planned}
    RUNGS |= {s.id: s for runs in SWEEPS.values() for s in runs}
    RUNGS |= {w["stable"].id: w["stable"] for w in WSD.values()}
except ConfigError as e:
    sys.exit(f"Ladder config error: {e}")
for _warning in memory_warnings(_planned):
    print(f"Ladder warning: {_warning}", file=sys.stderr)

RESULTS = f"results/{STUDY.study}"
LOGS = f"{RESULTS}/logs"
TOKENS = f"{RESULTS}/tokens"

# Experiment tracking (TensorBoard, W&B) changes no result, so it is not a rule param (a
# changed param would retrain every rung): `ladder train` and `ladder report` read it from
# this variable, which every job inherits (a cluster job's Snakemake parses this file too).
if missing := tracking.missing_packages(STUDY.tracking.tools):
    sys.exit(
        f"Ladder config error: tracking.tools: {', '.join(missing)} is not installed; "
        'run `pip install -e ".[tracking]"`'
    )
os.environ[tracking.ENV] = tracking.Tracking.for_study(STUDY, RESULTS).to_json()
# The run store's folder changes no result either (moving it retrains nothing): the train
# jobs' `ladder store run` reads it from LADDER_STORE, resolved here once (store.dir, else
# LADDER_STORE, else results/store; `off` when store.enabled is false).
_store = store.resolve(STUDY.store.dir, STUDY.store.enabled)
os.environ[store.ENV] = str(_store) if _store else store.OFF


wildcard_constraints:
    rung="|".join(re.escape(r) for r in RUNGS),
    size="|".join(re.escape(s) for s in SWEEPS) or "no-sweeps",
    wsd_size="|".join(re.escape(s) for s in WSD) or "no-wsd",
    branch="|".join(re.escape(r) for r in LADDER),
    task="|".join(re.escape(t.name) for t in STUDY.tasks.list) or "no-tasks",


def rung_json(wildcards):
    return RUNGS[wildcards.rung].to_json()


def rung_threads(wildcards):
    """An evaluation job's threads: the rung's (one process)."""
    return RUNGS[wildcards.rung].threads


def job_threads(rung):
    """A training job's threads: the rung's for each of its GPUs' processes (as SLURM's
    cpus_per_task); the job passes {threads} on, and never uses more."""
    return rung.threads * (max(1, math.ceil(rung.gpus)) if rung.gpus > 1 else 1)


def train_threads(wildcards):
    return job_threads(RUNGS[wildcards.rung])


def launch_nodes(wildcards):
    """`ladder launch`'s --nodes arguments for a rung larger than one node, else ''."""
    rung = RUNGS[wildcards.rung]
    cpus = TRAIN_RESOURCES["cpus_per_task"](wildcards)
    return devices.launch_args(rung.gpus, STUDY.cluster, cpus, rung.nodes)


def data_inputs(wildcards):
    """Local data files are inputs, so editing one rebuilds the corpus (`~` expanded)."""
    return data_files(STUDY.data)


def all_runs(name):
    """A file of every rung of the ladder (tuning runs are not rungs of the law)."""
    return [f"{RESULTS}/runs/{r}/{name}" for r in LADDER]


def sweep_of(wildcards):
    """The sweep summary that tunes a ladder rung (or WSD stable run): its size's, or under
    μP the base width's, which serves every size."""
    size = size_of(RUNGS[wildcards.rung])
    stable = size in WSD and WSD[size]["stable"].id == wildcards.rung
    if (wildcards.rung in LADDER or stable) and size in SWEPT_BY:
        return [f"{RESULTS}/sweeps/{SWEPT_BY[size]}.json"]
    return []


def wsd_state(size, rung_id):
    """The stable run's state at the step where branch `rung_id` starts its cooldown."""
    return f"{RESULTS}/runs/{size}-stable/{rung_id}.state.pt"


def wsd_init(wildcards):
    """For a WSD branch: the stable state its cooldown continues; else nothing."""
    size = size_of(RUNGS[wildcards.rung])
    if size in WSD and wildcards.rung in WSD[size]["stops"]:
        return [wsd_state(size, wildcards.rung)]
    return []


def wsd_previous(wildcards):
    """The state the stable segment up to this branch's stop continues, if any."""
    stops = WSD[wildcards.wsd_size]["stops"]
    before = [r for r in stops if stops[r] < stops[wildcards.branch]]
    if not before:
        return []
    return [wsd_state(wildcards.wsd_size, max(before, key=stops.get))]


def for_branch(resource):
    """A resource function of training, for a WSD segment (sized like its branch)."""
    from types import SimpleNamespace

    return lambda wildcards: resource(SimpleNamespace(rung=wildcards.branch))


TASKS = {t.name: t for t in STUDY.tasks.list}  # the study's multiple-choice tasks


def task_inputs(wildcards):
    """A task file's source: the local file, or the corpus (next_line); lm-eval: none."""
    task = TASKS[wildcards.task]
    if task.path:
        return [os.path.expanduser(task.path)]
    return [f"{RESULTS}/corpus"] if task.builtin else []


def task_chance(name):
    chance = TASKS[name].chance
    return f"--chance {chance}" if chance is not None else ""


def all_task_scores():
    """Every rung's summary of every task (the final checkpoints), then those of the models
    kept at intermediate steps (tasks.checkpoints): of each run that keeps any."""
    final = [f"{RESULTS}/runs/{r}/tasks/{t}.json" for r in LADDER for t in TASKS]
    return final + [
        f"{RESULTS}/runs/{r}/tasks/checkpoints/{t}.json" for r in KEEPING for t in TASKS
    ]


# The models kept at intermediate steps for task scoring (config tasks.checkpoints;
# docs/tasks.md): every rung's train job writes them (runs/<rung>/checkpoints/step<N>/), a
# WSD size's stable segments those before the branches' cooldowns, each segment its own
# steps (runs/<size>-stable/checkpoints/<branch>/); one scoring job per run x task.
KEPT = bool(checkpoint_fractions(STUDY))
STABLE = {
    w["stable"].id: w for w in WSD.values()
}  # stable run id -> its size's WSD plan
# the runs that keep models (and so are scored on them): rungs, and WSD stable runs
KEEPING = [r for r in [*LADDER, *STABLE] if RUNGS[r].kept] if KEPT else []


def kept_output(pattern):
    """A rule's `checkpoints` output (the folder `pattern`) when the study keeps models."""
    return {"checkpoints": directory(pattern)} if KEPT else {}


def kept_folders(wildcards):
    """The folders of the models run `rung` kept: its checkpoints/, or a WSD stable run's
    one per segment."""
    run = f"{RESULTS}/runs/{wildcards.rung}/checkpoints"
    if wildcards.rung in STABLE:
        return [f"{run}/{branch}" for branch in STABLE[wildcards.rung]["stops"]]
    return [run]


def kept_args(wildcards, output):
    """A WSD segment's --checkpoints-out (its own folder), when the study keeps models."""
    return f"--checkpoints-out {output.checkpoints}" if KEPT else ""


def task_table(wildcards):
    """The fit's tasks.csv when the study scores tasks (config `tasks:`), else nothing."""
    return {"tasks": f"{RESULTS}/tasks.csv"} if TASKS else {}


def task_fit_args(wildcards, input):
    """`ladder fit`'s --tasks, --predict N,D (config fit.task_targets) and --step2 (config
    fit.task_step2) for the task laws."""
    if not TASKS:
        return ""
    targets = "".join(f" --predict {n:g},{d:g}" for n, d in STUDY.fit.task_targets)
    return f" --tasks {input.tasks}{targets} --step2 {STUDY.fit.task_step2}"
