"""Artifact file names (the contracts between stages) and the one way to write them.

Every artifact is written to a temp name in its own folder and renamed into place, so a
killed job never leaves a half-written file or folder that looks complete. `atomic_file`
and `atomic_dir` are the two primitives; the `write_*` helpers are the common cases.

The layout of a study (see docs/design.md, "Artifacts"):

    results/<study>/plan.csv, study.yaml, runs.csv, curves.csv, fits.json
    results/<study>/corpus/{train,val}-NNNNN.parquet, stats.json (one folder)
    results/<study>/tokenizer/ (+ ladder_tokenizer.json), tokens/meta.json
    results/<study>/tokens/shards/{train,val}-NNNNN.bin (one per corpus shard)
    results/<study>/runs/<rung>/{rung.json, model/, train_log.csv, train.json, store.json,
                                 eval.json}
    results/<study>/report/
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------- names

# a study's top level
PLAN_CSV = "plan.csv"
STUDY_YAML = "study.yaml"  # the resolved config (defaults filled)
RUNS_CSV = "runs.csv"
CURVES_CSV = "curves.csv"
FITS_JSON = "fits.json"
REPORT_DIR = "report"
REPORT_MD = "report.md"
# report/<stem>.{png,svg}: every plot family, always written (a plot the data cannot
# support says what is missing). stem -> (category, subcategory) in `snakemake --report`.
# Here, not in ladder.report, so that parsing the Snakefile does not import matplotlib.
REPORT_PLOTS: dict[str, tuple[str, str]] = {
    "loss_vs_params": ("1. Scaling laws", "Loss vs parameters"),
    "loss_vs_tokens": ("1. Scaling laws", "Loss vs tokens"),
    "loss_vs_compute": ("1. Scaling laws", "Loss vs compute"),
    "compute_frontier": ("2. Compute-optimal allocation", "Frontier and N, D lines"),
    "isoflop": ("2. Compute-optimal allocation", "IsoFLOP curves"),
    "learning_curves": ("3. Learning curves", "Loss vs tokens, every rung"),
    "curve_fits": ("3. Learning curves", "Annealing law: fitted vs observed"),
    "scale_sensitivity": ("4. Scale properties", "Sensitivity: exponents"),
    "self_similarity": ("4. Scale properties", "Self-similarity: curve collapse"),
    "scale_independence": ("4. Scale properties", "Independence: exponent vs scale"),
    "residuals": ("5. Residuals", "Residuals of each law"),
    "task_scaling": ("6. Tasks", "Accuracy vs compute and task loss"),
}
# corpus/, tokenizer/ and tokens/
CORPUS_STATS_JSON = "stats.json"  # counts and the list of shards of each split
TOKENIZER_SAMPLE_JSON = "ladder_tokenizer.json"  # what a trained BPE was trained on
TOKENS_META_JSON = "meta.json"  # dtype, ids, and the shards of each split: written last
TOKENS_SHARDS_DIR = "shards"
# runs/<rung>/
RUNG_JSON = "rung.json"
MODEL_DIR = "model"
TRAIN_LOG_CSV = "train_log.csv"
TRAIN_JSON = "train.json"
EVAL_JSON = "eval.json"
CHECKPOINT = "ckpt/state.pt"  # not a declared output: it outlives a failed job
# the models kept at intermediate steps for task scoring (tasks.checkpoints): step<N>/ each,
# staged beside the checkpoint while training (so that a killed job keeps them for its
# retry), then moved into KEPT_DIR, the declared output, when the job ends
KEPT_DIR = "checkpoints"
KEPT_STAGING = "ckpt/kept"
KEPT_JSON = "checkpoint.json"  # in each step<N>/: which run, step, tokens, parameters
STORE_JSON = "store.json"  # where the run came from: trained here, or reused from the store
TRACKING_JSON = "tracking.json"  # the rung's W&B run id (ladder.tracking); not an output


def split_file(split: str, suffix: str) -> str:
    """`val.bin`, ...: a split's single token file (the layout before shards)."""
    return f"{split}.{suffix}"


def corpus_shard(split: str, index: int) -> str:
    """`train-00000.parquet`: shard `index` of a split in corpus/."""
    return f"{split}-{index:05d}.parquet"


def token_shard(split: str, index: int) -> str:
    """`shards/train-00000.bin`: the tokens of corpus shard `index`, relative to tokens/."""
    return f"{TOKENS_SHARDS_DIR}/{split}-{index:05d}.bin"


# ----------------------------------------------------------------------------- writing


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def leftover_temps(path: str | os.PathLike) -> list[Path]:
    """Temp files or folders of `path` that a killed job's atomic write left behind."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.tmp*"))


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it onto `path`, on error remove it.

    For writers that need a path (torch.save, pyarrow, save_pretrained of one file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside `path`; on success it replaces `path` (a folder
    already there is removed first), on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (temp file + rename)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON (with a final newline) atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")
