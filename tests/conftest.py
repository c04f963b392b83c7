"""Shared fixtures and helpers: tests make their own small data and never touch the network.

Every helper more than one test module uses lives here (a test module never imports another).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from ladder.config import load_section

if TYPE_CHECKING:
    import pandas as pd

    from ladder.rung import Rung

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests/configs/tiny.yaml"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# a user's shared run store (ladder.store) is never a test's: each study's is its own
os.environ.pop("LADDER_STORE", None)

torch.set_num_threads(1)  # tiny shapes: more threads only contend on a 2-core CI machine
VOCAB = 300
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture
def base_config() -> dict:
    """The smallest valid study, as a dict (defaults fill the rest)."""
    return {
        "study": "unit",
        "tokenizer": {"vocab_size": 300},
        "model": {"seq_len": 32, "head_dim": 8, "aspect_ratio": 16},
        "ladder": {"widths": [16, 32], "tokens": 10000},
        "train": {"batch_tokens": 1024},
    }


def wsd_study(**ladder) -> dict:
    """A tiny WSD study (one 16-wide size, branches at 1024 and 2048 tokens; 8 and 16 steps,
    the last quarter cooling down), as a dict; `ladder` keys replace the ladder's."""
    return {
        "study": "w",
        "tokenizer": {"vocab_size": 300},
        "model": {"seq_len": 16, "head_dim": 8},
        "ladder": {"design": "wsd", "widths": [16], "tokens": [1024, 2048], **ladder},
        "train": {"batch_tokens": 128, "micro_batch": 4, "decay_frac": 0.25},
    }


def nan_loss_from(monkeypatch: pytest.MonkeyPatch, step: int, micro_batches: int = 2) -> None:
    """Make training diverge at step `step` (1-based) by construction: from that step on,
    every training forward pass returns a NaN loss (so its gradients, and the weights after
    it, are NaN too). A high learning rate also diverges, but at a step that depends on the
    machine's floating point; this happens at the same step everywhere. `micro_batches`:
    forward passes per step (tiny_rung's 128-token batch in 4-sequence micro-batches: 2)."""
    from ladder.loss import LossModel

    forward, calls = LossModel.forward, []

    def poisoned(self, *args, **kwargs):
        loss = forward(self, *args, **kwargs)
        if torch.is_grad_enabled():  # a training step, not a validation pass
            calls.append(1)
            if len(calls) > (step - 1) * micro_batches:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(LossModel, "forward", poisoned)


# ----------------------------------------------------------------------------- training


def make_shards(d: Path, n_train: int = 40_000, n_val: int = 4_000, top_id: int = VOCAB - 3):
    """Patterned tokens (a noisy walk) so the loss has something to learn."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    meta = {"dtype": "uint16", "vocab_size": VOCAB - 1, "eos_id": 0, "mask_id": VOCAB - 2}
    for split, n in (("train", n_train), ("val", n_val)):
        base = (np.arange(n) * 7 + np.arange(n) // 5) % top_id
        ids = np.where(rng.random(n) < 0.2, rng.integers(0, top_id, n), base).astype(np.uint16)
        ids.tofile(d / f"{split}.bin")
        meta[split] = {"n_tokens": n, "n_bytes": 3 * n, "n_docs": 1}
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def tiny_rung(family: str = "llama", tokens: int = 2048, **train) -> Rung:
    from ladder.config import load_config
    from ladder.plan import plan

    cfg = {
        "study": "t",
        "tokenizer": {"vocab_size": VOCAB},
        "model": {"family": family, "seq_len": 16, "head_dim": 8},
        "ladder": {"widths": [16], "tokens": tokens},
        "train": {"batch_tokens": 128, "micro_batch": 4, "log_every_s": 0.2, **train},
    }
    if family == "llama":
        cfg["model"]["kv_groups"] = 2  # grouped-query attention, exercised everywhere
    return plan(load_config(cfg))[0]


def run(rung: Rung, tokens_dir: Path, out: Path, *extra: str) -> int:
    from ladder import train as T

    return T.main(["--rung-json", rung.to_json(), "--tokens-dir", str(tokens_dir),
                   "--out-dir", str(out), *extra])  # fmt: skip


def read_log(out: Path) -> list[dict]:
    with open(out / "train_log.csv") as f:
        return list(csv.DictReader(f))


def curve(out: Path) -> list[tuple]:
    """The log without timing: what must be identical between two runs."""
    keys = ("step", "tokens", "loss_nats", "lr", "val_loss_nats")
    return [tuple(row[k] for k in keys) for row in read_log(out)]


def start_subprocess(rung: Rung, shards: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ladder.cli", "train", "--rung-json", rung.to_json(),
           "--tokens-dir", str(shards), "--out-dir", str(out)]  # fmt: skip
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def assert_same_run(out: Path, reference: Path) -> None:
    assert curve(out) == curve(reference)  # every step's loss and lr, bit for bit
    a = (out / "model" / "model.safetensors").read_bytes()
    assert a == (reference / "model" / "model.safetensors").read_bytes()


# ----------------------------------------------------------------------------- waiting


def _output(proc: subprocess.Popen) -> str:
    """What an ended process wrote to its stdout pipe ('' without one)."""
    if proc.stdout is None:
        return ""
    out = proc.stdout.read()
    return out.decode(errors="replace") if isinstance(out, bytes) else out


def wait_until(
    what: str,
    test: Callable[[], object],
    timeout_s: float = 600,
    proc: subprocess.Popen | None = None,
    every_s: float = 0.02,
    details: Callable[[], object] | None = None,
    output: bool = False,
):
    """Poll `test` every `every_s` until it returns something true, and return that. Fails
    clearly, never hangs: when `proc` (the child that should bring it about) ends first, with
    its exit status, or after `timeout_s`. `details`: more to say in either failure (say, the
    lines seen so far); `output`: say what `proc` wrote to its stdout pipe (only where no
    child of its own can hold the pipe open, as reading it waits for them)."""
    deadline = time.monotonic() + timeout_s
    while not (got := test()):
        if proc is not None and proc.poll() is not None:
            message = f"the process ended (exit status {proc.returncode}) before {what}"
            message += f": {details()}" if details else ""
            pytest.fail(message + (f"\n{_output(proc)}" if output else ""))
        if time.monotonic() >= deadline:
            more = f": {details()}" if details else ""
            pytest.fail(f"timed out ({timeout_s} s) waiting for {what}{more}")
        time.sleep(every_s)
    return got


def wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 240) -> None:
    """Wait for the first checkpoint; generous, as a loaded CI machine starts torch slowly."""
    wait_until(f"{path} to appear", path.exists, timeout_s, proc, every_s=0.005, output=True)


# ----------------------------------------------------------------------------- Snakemake


def snakemake_cmd(
    configfile: Path, *args: str, workdir: Path | None = None, cores: int | str | None = 2
) -> list[str]:
    """`snakemake` (this interpreter's) on the repository's Snakefile and `configfile`, in
    `workdir` (--directory; None: the caller's cwd) on `cores` cores (None: as a profile
    says), then `args`."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(workdir)] if workdir is not None else []
    cmd += ["--configfile", str(configfile)]
    cmd += ["--cores", str(cores)] if cores is not None else []
    return cmd + list(args)


def snakemake(
    workdir: Path, *args: str, configfile: Path = TINY, timeout: float = 600
) -> subprocess.CompletedProcess:
    """snakemake_cmd on 2 cores in `workdir`, run to the end, its output captured as text."""
    cmd = snakemake_cmd(configfile, *args, workdir=workdir)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table."""
    if "Nothing to be done" in proc.stdout + proc.stderr:
        return {}
    stats = (proc.stdout + proc.stderr).split("Job stats:")[1].split("total")[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}


# ----------------------------------------------------------------------------- configs and data


def merged(base: dict, **sections) -> dict:
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg


DATA = load_section(
    "data",
    {
        "source": "stdlib",
        "paths": [],
        "hf": {"name": None, "config": None, "split": "train", "revision": None},
        "text_field": "text",
        "val_fraction": 0.1,
        "max_bytes": 200_000,
        "min_doc_bytes": 1,
    },
)


def texts(n: int) -> list[str]:
    return [f"document {i}: " + "lorem ipsum " * (i % 7 + 1) for i in range(n)]


# the law synthetic runs follow (Hoffmann et al. 2022's fitted values, rounded)
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def runs_table(budgets: list[float], sizes: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """An IsoFLOP design: every size at every budget, D = C / (6 N), 0.5% log-normal noise."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        for i, N in enumerate(sizes):
            D = C / (6 * N)
            loss = (E + A / N**ALPHA + B / D**BETA) * math.exp(rng.normal(0, 0.005))
            rows.append(
                {
                    "rung": f"L{i + 1}-d{32 * (i + 1)}-C{C:.0e}",
                    "family": "llama",
                    "n_layer": i + 1,
                    "d_model": 32 * (i + 1),
                    "n_head": 4,
                    "seq_len": 64,
                    "vocab_size": 512,
                    "lr": 3e-3,
                    "batch_tokens": 4096,
                    "params_total": 1.2 * N,
                    "params_non_embedding": N,
                    "params_embedding": 0.1 * N,
                    "params_head": 0.1 * N,
                    "params_with_head": 1.1 * N,
                    "tokens": D,
                    "flops_per_token": 6 * N,
                    "flops": 6 * N * D,
                    "loss_nats": loss,
                    "bits_per_byte": loss / math.log(2) / 3.7,
                    "eval_tokens": 65536,
                    "train_loss_nats": loss * 0.99,
                    "wall_s": 10.0 + i,
                    "tokens_per_s": 1e5,
                    "mfu": np.nan,
                    "device": "cpu",
                    "gpu_hours": 0.0,
                    "diverged": 0,
                    "design": "isoflop",  # a column a later design adds: tolerated
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- tracking


def log_rows(out: Path) -> list[dict]:
    return [{k: float(v) if v else None for k, v in row.items()} for row in read_log(out)]


def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] as TensorBoard loads them (orphaned events purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def wandb_records(path: Path):
    """The records of a W&B run file (`run-<id>.wandb`): LevelDB-log framing (32 KiB blocks,
    7-byte headers: crc, length, type) after a 7-byte ":W&B" file header."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, block = path.read_bytes(), 7, b"", 32768
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if n == 0 and kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        buf += data[pos + 7 : pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # a full record, or a record's last fragment
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


def wandb_run(folder: Path) -> dict:
    """One offline run folder: its id, run record, history rows and summary updates."""
    (path,) = folder.glob("run-*.wandb")
    out = {"id": path.stem.removeprefix("run-"), "history": [], "summary": {}, "run": None}
    for rec in wandb_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["run"] = rec.run
        elif kind == "history":
            row = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item
            }
            out["history"].append(row)
        elif kind == "summary":
            for i in rec.summary.update:
                out["summary"][i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
    return out


def wandb_runs(study: Path) -> list[dict]:
    """Every offline run folder of a study, oldest first (the order `wandb sync` uses)."""
    runs = [wandb_run(f) for f in (study / "wandb").glob("offline-run-*")]
    return sorted(runs, key=lambda r: r["run"].start_time.ToNanoseconds() if r["run"] else 0)


def split_corpus(docs, val_fraction: float, seed: int, max_bytes, min_doc_bytes: int):
    """ladder.data's split as (train list, val list, stats), for small test corpora
    (build_corpus streams the same split to parquet shards)."""
    from ladder import data

    out: dict[str, list[str]] = {"train": [], "val": []}
    stats = data.new_stats()
    for split, text, _ in data.split_documents(
        docs, val_fraction, seed, max_bytes, min_doc_bytes, stats
    ):
        out[split].append(text)
    return out["train"], out["val"], stats


def read_split(corpus_dir, split: str) -> list[str]:
    """All of a corpus split's documents, read back from its parquet shards."""
    from ladder.data import read_batches

    return [t for batch in read_batches(corpus_dir, split) for t in batch]


def is_val(text: str, val_fraction: float, seed: int) -> bool:
    """Whether ladder.data's keyed-hash split puts document `text` in val."""
    from ladder.data import _is_val_bytes

    return _is_val_bytes(text.encode("utf-8"), val_fraction, str(seed).encode())
