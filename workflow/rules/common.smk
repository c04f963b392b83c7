# The study, validated and planned once at parse time; input functions for the rules.
import json
import os
import re
import sys

try:
    from ladder.config import ConfigError, load_config, plan
except ImportError:
    sys.exit("Ladder is not installed: run `pip install -e .` in the repository root.")

try:
    STUDY = load_config(config)
    RUNGS = {r.id: r for r in plan(STUDY)}
except ConfigError as e:
    sys.exit(f"Ladder config error: {e}")

RESULTS = f"results/{STUDY['study']}"
LOGS = f"{RESULTS}/logs"
TOKENS = f"{RESULTS}/tokens"


wildcard_constraints:
    rung="|".join(re.escape(r) for r in RUNGS),


def rung_json(wildcards):
    return RUNGS[wildcards.rung].to_json()


def rung_threads(wildcards):
    return RUNGS[wildcards.rung].threads


def rung_gpus(wildcards):
    return RUNGS[wildcards.rung].gpus


def data_inputs(wildcards):
    """Local data files are inputs, so editing one rebuilds the corpus."""
    import glob

    if STUDY["data"]["source"] != "files":
        return []
    return sorted(
        f for p in STUDY["data"]["paths"] for f in glob.glob(p, recursive=True)
    )


def all_runs(name):
    return [f"{RESULTS}/runs/{r}/{name}" for r in RUNGS]
