"""The `ladder` command: one subcommand per stage, each owned by its module.

Every stage module defines `main(argv: list[str]) -> int` with its own argparse, so
`ladder <stage> --help` documents the stage where its code lives. Heavy imports
(torch, transformers) happen inside the stage, so `ladder plan` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys

# subcommand -> (module, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "plan": ("ladder.plan", "expand a study config into rungs; write plan.csv"),
    "corpus": ("ladder.data", "stream the study's source into corpus/ parquet shards"),
    "tokenizer": ("ladder.tokenize", "train or load the tokenizer"),
    "encode": ("ladder.tokenize", "encode the corpus shards into tokens/shards/ + meta.json"),
    "launch": ("ladder.devices", "run a command on its own GPU(s) (CUDA_VISIBLE_DEVICES)"),
    "train": ("ladder.train", "train one rung"),
    "evaluate": ("ladder.evaluate", "held-out loss and bits/byte of one rung"),
    "task": ("ladder.tasks", "build or check a multiple-choice task's JSONL file"),
    "score": ("ladder.scoring", "score one rung (or checkpoint) on one task: acc, acc_norm, bpb"),
    "tune": ("ladder.tune", "choose a size's learning rate/batch from its sweep runs"),
    "rung": ("ladder.tune", "write a rung's final spec (with its tuned hyperparameters)"),
    "aggregate": ("ladder.aggregate", "collect every rung into runs.csv and curves.csv"),
    "fit": ("ladder.fit", "fit scaling laws to a table of runs"),
    "report": ("ladder.report.cli", "plots and report.md from runs.csv and fits.json"),
    "coordcheck": ("ladder.coordcheck", "μP's coordinate check: activations vs width, SP and μP"),
    "store": ("ladder.store", "reuse a stored run, or train and store it (the run store)"),
    "status": ("ladder.status", "every run of a study at a glance (reads its files only)"),
}


def usage() -> str:
    lines = ["usage: ladder <stage> [options]   (ladder <stage> --help for details)", ""]
    lines += [f"  {name:<10} {text}" for name, (_, text) in STAGES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"ladder: unknown stage '{stage}'\n\n{usage()}", file=sys.stderr)
        return 2
    # Snakemake grants a job {threads} as OMP_NUM_THREADS; the tokenizers library's Rayon
    # pool reads its own variable, so it gets the same cap (torch: ladder.runtime)
    if os.environ.get("OMP_NUM_THREADS"):
        os.environ.setdefault("RAYON_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
    module = importlib.import_module(STAGES[stage][0])
    # modules that serve two stages (tokenizer/encode) take the stage name first
    entry = getattr(module, f"main_{stage}", None) or module.main
    return int(entry(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
