"""Held-out loss (nats/token) and bits/byte of one rung on a fixed validation slice.

The slice (ladder.shards.val_slice) is the first min(--max-tokens, val n_tokens) tokens
of the val split's shards, the same tokens for every rung; bert's windows are masked with
a fixed seed.
The loss (ladder.loss.LossModel) is exactly the one train.py minimises.

bits_per_byte = loss_nats / ln 2 × (val n_tokens / val n_bytes): the tokenizer's
tokens-per-byte ratio on the whole val split (meta.json), so numbers are comparable
across tokenizers (Gao et al. 2020, The Pile, §4).

A rung whose train.json says it diverged is not evaluated (its model/ holds earlier
weights, whose loss would pass for the rung's): eval.json says `diverged: true` with a
null loss. A validation loss that is NaN or inf is recorded the same way. Either way the
job succeeds, and the rung stays in runs.csv, marked, for the fits to leave out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ladder.artifacts import write_json
from ladder.errors import DataError, failed
from ladder.loss import LossModel, mean_loss
from ladder.rung import Rung
from ladder.runtime import (
    autocast_for,
    job_threads,
    resolve_device,
    resolve_precision,
    set_threads,
)
from ladder.shards import EVAL_MASK_SEED, EVAL_TOKENS, check_ids, load_meta, open_split, val_slice


def eval_record(
    rung: Rung,
    loss: float,
    count: int,
    inputs: np.ndarray,
    meta: dict[str, Any],
    max_tokens: int,
    device: torch.device,
    precision: str,
    wall_s: float,
) -> dict[str, Any]:
    """eval.json: the loss, bits/byte and what they were measured on (docs/training.md)."""
    tokens_per_byte = meta["val"]["n_tokens"] / meta["val"]["n_bytes"]
    return {
        "rung": rung.id,
        "family": rung.family,
        "loss_nats": loss,
        "bits_per_byte": loss / math.log(2) * tokens_per_byte,
        "eval_tokens": count,
        "eval_windows": len(inputs),
        "seq_len": rung.seq_len,
        "max_tokens": max_tokens,
        "val_tokens_per_byte": tokens_per_byte,
        "masking": f"bert 80/10/10, seed {EVAL_MASK_SEED}" if rung.family == "bert" else None,
        "device": str(device),
        "precision": precision,
        "wall_s": wall_s,
    }


def diverged_record(rung: Rung, why: str, **extra: Any) -> dict[str, Any]:
    """eval.json of a rung that diverged (in training, or to a non-finite val loss)."""
    return {
        "rung": rung.id,
        "family": rung.family,
        "loss_nats": None,
        "bits_per_byte": None,
        "diverged": True,
        "why": why,
        **extra,
    }


def train_diverged(path: str | None) -> dict[str, Any] | None:
    """train.json's record if it says the rung diverged, else None."""
    if not path:
        return None
    summary = json.loads(Path(path).read_text())
    return summary if summary.get("diverged") else None


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ladder evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--rung-json", required=True, help="the rung as JSON, or @file.json")
    ap.add_argument("--model-dir", required=True, help="save_pretrained directory")
    ap.add_argument("--tokens-dir", required=True, help="directory with meta.json + shards/")
    ap.add_argument("--max-tokens", type=int, default=EVAL_TOKENS, help="val tokens to read")
    ap.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    ap.add_argument("--out", required=True, help="eval.json to write")
    ap.add_argument(
        "--train-json", help="the rung's train.json: a diverged rung is recorded, not evaluated"
    )
    ap.add_argument(
        "--threads",
        type=int,
        help="CPU threads granted to the job (default: $OMP_NUM_THREADS); caps the rung's",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    t0 = time.time()
    try:
        import transformers as tf

        tf.utils.logging.disable_progress_bar()
        rung = Rung.from_arg(args.rung_json)
        trained = train_diverged(args.train_json)
        if trained is not None:
            step = trained.get("diverged_at_step")
            why = f"training diverged at step {step} (loss {trained.get('diverged_loss')})"
            write_json(args.out, diverged_record(rung, why, diverged_at_step=step))
            print(f"{rung.id}: not evaluated: {why}")
            return 0
        set_threads(job_threads(rung.threads, args.threads))
        device = resolve_device(rung.device)
        precision = resolve_precision(rung.precision, device)
        meta = load_meta(args.tokens_dir)
        val = open_split(args.tokens_dir, "val", meta)
        inputs, labels = val_slice(
            val, rung.family, rung.seq_len, args.max_tokens, rung.mlm_probability, meta
        )
        check_ids(inputs, rung.vocab_size, f"the val split of {args.tokens_dir}")
        auto = tf.AutoModelForMaskedLM if rung.family == "bert" else tf.AutoModelForCausalLM
        model = auto.from_pretrained(args.model_dir).to(device).eval()
        loss_model = LossModel(model, rung.family)
        loss, count = mean_loss(
            loss_model, inputs, labels, args.batch_size, device, autocast_for(precision, device)
        )
    except (DataError, ValueError, OSError) as e:
        return failed("ladder evaluate", e)
    if not math.isfinite(loss):
        why = f"validation loss is {loss}"
        write_json(args.out, diverged_record(rung, why, eval_tokens=count))
        print(f"{rung.id}: {why}; recorded as diverged", file=sys.stderr)
        return 0
    out = eval_record(
        rung, loss, count, inputs, meta, args.max_tokens, device, precision, time.time() - t0
    )
    write_json(args.out, out)
    print(
        f"{rung.id}: val loss {loss:.4f} nats/token, {out['bits_per_byte']:.4f} bits/byte "
        f"over {count} tokens"
    )
    return 0
