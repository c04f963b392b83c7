"""Reading token shards (tokens/meta.json + shards/) into the windows a model sees.

Training and evaluation read the same shards the same way, so both import it from here:
a split as one sequence over its shards (`TokenSequence`, a memmap per shard), the
checks that fail a bad shard in seconds, the fixed validation slice, BERT's masking,
and the windows of one training step.

The validation slice is the first min(max_tokens, val n_tokens) tokens of the val
sequence, the same tokens for every rung:
- llama/gpt2: non-overlapping windows of seq_len inputs, each predicting the next
  seq_len tokens (window i reads tokens [i·L, i·L+L] inclusive); every token after
  the first is predicted exactly once within a window.
- bert: non-overlapping windows of seq_len tokens, masked by a fixed seed
  (EVAL_MASK_SEED, independent of the rung), BERT's 80/10/10 recipe (Devlin et al.
  2019, §3.1: of the selected positions 80% → [MASK], 10% → a random token, 10% kept),
  i.e. the same objective the model trains on. The loss is over selected positions.

The windows of training step s are drawn by a generator seeded with (seed, s), for the
whole step regardless of world size (rank r takes its slice): the data position *is* the
step counter, so a resumed or multi-process run sees the same data as one process. The
starts are positions in the split's whole sequence, so the windows are the same however
many shards hold it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ladder.artifacts import TOKENS_META_JSON, split_file
from ladder.errors import DataError
from ladder.loss import IGNORE
from ladder.rung import Rung

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


class TokenSequence:
    """A split's token shards read as one sequence: a read-only memmap per shard (nothing
    is read until indexed), addressed by position in the concatenation.

    `seq[a:b]` reads a contiguous range, `windows(starts, width)` many fixed-width
    windows at once, either of which may cross a shard boundary. A plain array works
    wherever a TokenSequence does (`as_sequence`), so the windows of a step depend only on
    the token sequence, never on how many shards hold it.
    """

    def __init__(self, parts: list[np.ndarray], paths: list[Path | None] | None = None):
        if not parts:
            raise DataError("a token sequence needs at least one shard")
        self.parts = list(parts)
        self.paths = list(paths) if paths is not None else [None] * len(self.parts)
        self.dtype = self.parts[0].dtype
        # part k holds positions [offsets[k], offsets[k + 1])
        self.offsets = np.cumsum([0, *map(len, self.parts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("a TokenSequence is indexed by a slice; see windows()")
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise TypeError("a TokenSequence slice has step 1")
        return self.read(start, max(start, stop))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Tokens [start, stop): a view of one shard's memmap, or a copy across shards."""
        k = int(np.searchsorted(self.offsets, start, side="right")) - 1
        k = min(max(k, 0), len(self.parts) - 1)
        if stop <= self.offsets[k + 1]:
            lo = start - int(self.offsets[k])
            return self.parts[k][lo : lo + stop - start]
        out, pos = [], start
        while pos < stop:
            k = int(np.searchsorted(self.offsets, pos, side="right")) - 1
            lo = pos - int(self.offsets[k])
            piece = self.parts[k][lo : lo + stop - pos]
            out.append(piece)
            pos += len(piece)
        return np.concatenate(out)

    def windows(self, starts: np.ndarray, width: int) -> np.ndarray:
        """(len(starts), width) tokens: row i is [starts[i], starts[i] + width). One
        vectorised gather per shard; the few windows that cross a boundary are joined."""
        starts = np.asarray(starts, dtype=np.int64)
        if len(self.parts) == 1:
            return np.asarray(self.parts[0][starts[:, None] + np.arange(width)])
        k = np.searchsorted(self.offsets, starts, side="right") - 1
        inside = starts + width <= self.offsets[k + 1]
        out = np.empty((len(starts), width), dtype=self.dtype)
        for part in np.unique(k[inside]):
            rows = np.flatnonzero(inside & (k == part))
            local = starts[rows] - self.offsets[part]
            out[rows] = self.parts[part][local[:, None] + np.arange(width)]
        for row in np.flatnonzero(~inside):
            out[row] = self.read(int(starts[row]), int(starts[row]) + width)
        return out


def as_sequence(data: np.ndarray | TokenSequence) -> TokenSequence:
    return data if isinstance(data, TokenSequence) else TokenSequence([data])


def open_shard(path: Path, dtype: np.dtype, n_tokens: int | None) -> np.ndarray:
    """One shard as a read-only memmap, checked against the token count meta.json lists."""
    if not path.exists():
        raise DataError(f"{path} does not exist; rerun the encode stage")
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise DataError(
            f"{path}: size {size} bytes is not a multiple of {dtype} ({dtype.itemsize} bytes): "
            "truncated, or written with another dtype; rerun the encode stage"
        )
    if n_tokens is not None and size != n_tokens * dtype.itemsize:
        raise DataError(
            f"{path}: {size} bytes, but meta.json lists {n_tokens} {dtype} tokens "
            f"({n_tokens * dtype.itemsize} bytes): truncated, or written with another dtype; "
            "rerun the encode stage"
        )
    if size == 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def open_split(tokens_dir: str | Path, split: str, meta: dict[str, Any]) -> TokenSequence:
    """The split's token shards (meta.json's list; a lone `<split>.bin` if it has none,
    the layout before shards) as one TokenSequence, each shard's size checked."""
    entry = meta.get(split, {})
    shards = entry.get("shards") or [{"file": split_file(split, "bin"), **entry}]
    dtype = np.dtype(meta["dtype"])
    paths = [Path(tokens_dir) / s["file"] for s in shards]
    parts = [open_shard(p, dtype, s.get("n_tokens")) for p, s in zip(paths, shards, strict=True)]
    data = TokenSequence(parts, paths)
    expected = entry.get("n_tokens")
    if expected is not None and expected != len(data):
        raise DataError(
            f"{paths[0] if len(paths) == 1 else Path(tokens_dir) / TOKENS_META_JSON}: "
            f"{split} holds {len(data)} tokens but meta.json says {expected}"
        )
    return data


def check_ids(data: np.ndarray | TokenSequence, vocab_size: int, what: str) -> None:
    """Fail clearly if a token id does not fit the model's embedding table. The error
    names the shard holding it (`what` names a plain array)."""
    step = 1 << 24  # chunked max: a few GB of tokens take seconds, memory stays flat
    seq = as_sequence(data)
    for part, path in zip(seq.parts, seq.paths, strict=True):
        top = max((int(part[i : i + step].max()) for i in range(0, len(part), step)), default=-1)
        if top >= vocab_size:
            raise DataError(
                f"{path or what} holds token id {top} but the model's vocab_size is "
                f"{vocab_size}; tokenizer.vocab_size must be at least {top + 1}"
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
        return f"the val split has {n_val} tokens; evaluation needs >= {need}"
    return f"max_tokens {max_tokens} (eval.max_tokens) is less than one window; need >= {need}"


def val_slice(
    val: np.ndarray | TokenSequence,
    family: str,
    seq_len: int,
    max_tokens: int,
    mlm_p: float,
    meta: dict,
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


def step_windows(data: np.ndarray | TokenSequence, r: Rung, step: int, width: int) -> np.ndarray:
    """All windows (seqs, width) of one optimizer step, from a (seed, step) generator over
    positions in the whole sequence (whatever shards hold it)."""
    seqs = r.batch_tokens // r.seq_len
    starts = np.random.default_rng([r.seed, step]).integers(0, len(data) - width + 1, seqs)
    return as_sequence(data).windows(starts, width).astype(np.int64)


def step_batch(
    data: np.ndarray | TokenSequence, r: Rung, step: int, meta: dict
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of one step for all ranks; labels are IGNORE where not predicted."""
    if r.family == "bert":
        win = step_windows(data, r, step, r.seq_len)
        return mlm_mask(win, (r.seed, step), r.mlm_probability, meta["mask_id"], meta["vocab_size"])
    win = step_windows(data, r, step, r.seq_len + 1)
    return win[:, :-1], win[:, 1:]
