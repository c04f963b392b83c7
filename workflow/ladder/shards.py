"""Reading token shards (tokens/{train,val}.bin + meta.json) into the windows a model sees.

Training and evaluation read the same shards the same way, so both import it from here:
the checks that fail a bad shard in seconds, the fixed validation slice, BERT's masking,
and the windows of one training step.

The validation slice is the first min(max_tokens, val n_tokens) tokens of val.bin, the
same tokens for every rung:
- llama/gpt2: non-overlapping windows of seq_len inputs, each predicting the next
  seq_len tokens (window i reads tokens [i·L, i·L+L] inclusive); every token after
  the first is predicted exactly once within a window.
- bert: non-overlapping windows of seq_len tokens, masked by a fixed seed
  (EVAL_MASK_SEED, independent of the rung), BERT's 80/10/10 recipe (Devlin et al.
  2019, §3.1: of the selected positions 80% → [MASK], 10% → a random token, 10% kept),
  i.e. the same objective the model trains on. The loss is over selected positions.

The windows of training step s are drawn by a generator seeded with (seed, s), for the
whole step regardless of world size (rank r takes its slice): the data position *is* the
step counter, so a resumed or multi-process run sees the same data as one process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ladder.artifacts import TOKENS_META_JSON, split_file
from ladder.errors import DataError
from ladder.loss import IGNORE
from ladder.plan import Rung

EVAL_MASK_SEED = 20190524  # fixed BERT eval masking, shared by every rung and study


EVAL_TOKENS = 262144  # the validation slice: its default size in tokens (eval.max_tokens)


def load_meta(tokens_dir: str | Path) -> dict[str, Any]:
    path = Path(tokens_dir) / TOKENS_META_JSON
    if not path.exists():
        raise DataError(f"{path} does not exist; run the tokenize stage first")
    meta = json.loads(path.read_text())
    if meta.get("dtype") not in ("uint16", "uint32"):
        raise DataError(f"{path}: dtype must be uint16 or uint32, got {meta.get('dtype')!r}")
    return meta


def open_split(tokens_dir: str | Path, split: str, meta: dict[str, Any]) -> np.ndarray:
    """The split's token ids as a read-only memmap (nothing is read until indexed)."""
    path = Path(tokens_dir) / split_file(split, "bin")
    if not path.exists():
        raise DataError(f"{path} does not exist")
    dtype = np.dtype(meta["dtype"])
    if path.stat().st_size % dtype.itemsize:
        raise DataError(f"{path}: size {path.stat().st_size} is not a multiple of {dtype}")
    data = np.memmap(path, dtype=dtype, mode="r")
    expected = meta.get(split, {}).get("n_tokens")
    if expected is not None and expected != len(data):
        raise DataError(f"{path} holds {len(data)} tokens but meta.json says {expected}")
    return data


def check_ids(data: np.ndarray, vocab_size: int, what: str) -> None:
    """Fail clearly if a token id does not fit the model's embedding table."""
    step = 1 << 24  # chunked max: a few GB of tokens take seconds, memory stays flat
    top = max((int(data[i : i + step].max()) for i in range(0, len(data), step)), default=-1)
    if top >= vocab_size:
        raise DataError(
            f"{what} holds token id {top} but the model's vocab_size is {vocab_size}; "
            f"tokenizer.vocab_size must be at least {top + 1}"
        )


def mlm_mask(
    windows: np.ndarray, key: tuple[int, ...], p: float, mask_id: int, n_ids: int
) -> tuple[np.ndarray, np.ndarray]:
    """BERT's 80/10/10 masking of (n, L) windows → (inputs, labels with IGNORE).

    One generator per draw (keyed by `key`), so the mask of a window does not depend on
    how many windows come after it: a prefix of the slice is masked the same way.
    """
    shape = windows.shape
    sel = np.random.default_rng([*key, 0]).random(shape) < p
    kind = np.random.default_rng([*key, 1]).random(shape)
    rand_ids = np.random.default_rng([*key, 2]).integers(0, n_ids, shape)
    inputs = windows.astype(np.int64)
    labels = np.where(sel, inputs, IGNORE)
    inputs = np.where(sel & (kind < 0.8), mask_id, inputs)
    inputs = np.where(sel & (kind >= 0.8) & (kind < 0.9), rand_ids, inputs)
    return inputs, labels


def _too_short(n_val: int, max_tokens: int, need: int) -> str:
    if n_val < need:
        return f"val.bin has {n_val} tokens; evaluation needs >= {need}"
    return f"max_tokens {max_tokens} (eval.max_tokens) is less than one window; need >= {need}"


def val_slice(
    val: np.ndarray, family: str, seq_len: int, max_tokens: int, mlm_p: float, meta: dict
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) windows of the fixed validation slice; see the module docstring."""
    n = min(int(max_tokens), len(val))
    if family == "bert":
        n_win = n // seq_len
        if n_win < 1:
            raise DataError(_too_short(len(val), max_tokens, seq_len))
        mask_id = meta.get("mask_id")
        if mask_id is None:
            raise DataError("meta.json: mask_id is null; bert needs a tokenizer with a mask token")
        win = np.asarray(val[: n_win * seq_len]).reshape(n_win, seq_len)
        return mlm_mask(win, (EVAL_MASK_SEED,), mlm_p, mask_id, meta["vocab_size"])
    n_win = (n - 1) // seq_len
    if n_win < 1:
        raise DataError(_too_short(len(val), max_tokens, seq_len + 1))
    tok = np.asarray(val[: n_win * seq_len + 1]).astype(np.int64)
    return tok[:-1].reshape(n_win, seq_len), tok[1:].reshape(n_win, seq_len)


def step_windows(data: np.ndarray, r: Rung, step: int, width: int) -> np.ndarray:
    """All windows (seqs, width) of one optimizer step, from a (seed, step) generator."""
    seqs = r.batch_tokens // r.seq_len
    starts = np.random.default_rng([r.seed, step]).integers(0, len(data) - width + 1, seqs)
    return np.asarray(data[starts[:, None] + np.arange(width)]).astype(np.int64)


def step_batch(data: np.ndarray, r: Rung, step: int, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of one step for all ranks; labels are IGNORE where not predicted."""
    if r.family == "bert":
        win = step_windows(data, r, step, r.seq_len)
        return mlm_mask(win, (r.seed, step), r.mlm_probability, meta["mask_id"], meta["vocab_size"])
    win = step_windows(data, r, step, r.seq_len + 1)
    return win[:, :-1], win[:, 1:]
