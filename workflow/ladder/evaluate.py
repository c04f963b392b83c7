"""Held-out loss (nats/token) and bits/byte of one rung on a fixed validation slice.

Training and evaluation must measure the same thing, so this module also holds what
they share: reading token shards, BERT's masking, and the loss itself (`LossModel`,
a chunked linear + cross-entropy that never materialises fp32 logits for the whole
batch; train.py minimises exactly the loss reported here).

The validation slice is the first min(--max-tokens, val n_tokens) tokens of val.bin,
the same tokens for every rung:
- llama/gpt2: non-overlapping windows of seq_len inputs, each predicting the next
  seq_len tokens (window i reads tokens [i·L, i·L+L] inclusive); every token after
  the first is predicted exactly once within a window.
- bert: non-overlapping windows of seq_len tokens, masked by a fixed seed
  (EVAL_MASK_SEED, independent of the rung), BERT's 80/10/10 recipe (Devlin et al.
  2019, §3.1: of the selected positions 80% → [MASK], 10% → a random token, 10% kept),
  i.e. the same objective the model trains on. The loss is over selected positions.

bits_per_byte = loss_nats / ln 2 × (val n_tokens / val n_bytes): the tokenizer's
tokens-per-byte ratio on the whole val split (meta.json), so numbers are comparable
across tokenizers (Gao et al. 2020, The Pile, §4).
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
import torch.nn.functional as F

from ladder.artifacts import write_text
from ladder.errors import DataError
from ladder.model import FAMILIES
from ladder.plan import Rung

IGNORE = -100  # label of positions without a target (PyTorch's ignore_index)
EVAL_MASK_SEED = 20190524  # fixed BERT eval masking, shared by every rung and study
# logits formed at once in the loss (rows × vocab): on CUDA big enough for efficient
# matmuls (2^26 bf16 = 128 MiB); on CPU small enough to stay in cache and out of mmap'd
# allocations (page faults made 2^25 three times slower than 2^18 on one thread).
CHUNK_LOGITS = {"cuda": 2**26, "cpu": 2**18}


# ----------------------------------------------------------------------------- data


def load_meta(tokens_dir: str | Path) -> dict[str, Any]:
    path = Path(tokens_dir) / "meta.json"
    if not path.exists():
        raise DataError(f"{path} does not exist; run the tokenize stage first")
    meta = json.loads(path.read_text())
    if meta.get("dtype") not in ("uint16", "uint32"):
        raise DataError(f"{path}: dtype must be uint16 or uint32, got {meta.get('dtype')!r}")
    return meta


def open_split(tokens_dir: str | Path, split: str, meta: dict[str, Any]) -> np.ndarray:
    """The split's token ids as a read-only memmap (nothing is read until indexed)."""
    path = Path(tokens_dir) / f"{split}.bin"
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


def targets_of(labels: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Flattened targets and, for bert, the flat positions that have one (host-side, so
    the device never syncs on a data-dependent shape)."""
    flat = labels.reshape(-1)
    if family != "bert":
        return flat, None
    pos = np.flatnonzero(flat != IGNORE)
    return flat[pos], pos


def val_slice(
    val: np.ndarray, family: str, seq_len: int, max_tokens: int, mlm_p: float, meta: dict
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) windows of the fixed validation slice; see the module docstring."""
    n = min(int(max_tokens), len(val))
    if family == "bert":
        n_win = n // seq_len
        if n_win < 1:
            raise DataError(f"val.bin has {len(val)} tokens; evaluation needs >= {seq_len}")
        mask_id = meta.get("mask_id")
        if mask_id is None:
            raise DataError("meta.json: mask_id is null; bert needs a tokenizer with a mask token")
        win = np.asarray(val[: n_win * seq_len]).reshape(n_win, seq_len)
        return mlm_mask(win, (EVAL_MASK_SEED,), mlm_p, mask_id, meta["vocab_size"])
    n_win = (n - 1) // seq_len
    if n_win < 1:
        raise DataError(f"val.bin has {len(val)} tokens; evaluation needs >= {seq_len + 1}")
    tok = np.asarray(val[: n_win * seq_len + 1]).astype(np.int64)
    return tok[:-1].reshape(n_win, seq_len), tok[1:].reshape(n_win, seq_len)


# ----------------------------------------------------------------------------- loss


def _ce_chunk(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of cross-entropies of a chunk and its gradient w.r.t. the logits.

    The fp32 upcast lives only inside this function; on CUDA it is compiled, so the
    upcast, log-softmax and softmax fuse into a couple of kernels over bf16 logits.
    Two passes over the chunk in eager mode: log-softmax, then exp in place.
    """
    logp = torch.log_softmax(logits.float(), dim=1)
    valid = (targets != IGNORE).unsqueeze(1)
    t = targets.clamp(min=0).unsqueeze(1)
    loss_sum = -(logp.gather(1, t) * valid).sum()
    grad = logp.exp_()  # softmax
    grad.scatter_add_(1, t, -valid.to(grad.dtype))  # − one-hot(target)
    grad.mul_(valid)  # rows without a target contribute nothing
    return loss_sum, grad.to(logits.dtype)


_COMPILED_CE: list = []


def _ce_compiled():
    """`_ce_chunk` compiled once per process. Default dynamic=None: after a second chunk
    length (the ragged last chunk, bert's varying masked count) it compiles one kernel
    for any length instead of recompiling per length."""
    if not _COMPILED_CE:
        _COMPILED_CE.append(torch.compile(_ce_chunk))
    return _COMPILED_CE[0]


def _compute_dtype(h: torch.Tensor) -> torch.dtype:
    dev = h.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype


class LinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(h_i·Wᵀ + b, t_i), computed in row chunks (Liger-Kernel's fused linear
    cross-entropy idea, https://arxiv.org/abs/2410.10989): each chunk's logits exist only
    briefly, and the gradients w.r.t. h, W, b are formed in the forward pass (the loss is
    a scalar, so backward only scales them). Same three matmuls as the plain path, but no
    (tokens × vocab) fp32 tensor — the HF `labels=` path upcasts all logits to fp32.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, dtype, compiled):
        with torch.autocast(h.device.type, enabled=False):
            hc, w = h.to(dtype), weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            n, vocab = hc.shape[0], w.shape[0]
            rows = max(1, CHUNK_LOGITS.get(h.device.type, 2**22) // vocab)
            loss = torch.zeros((), device=h.device, dtype=torch.float32)
            grad_h = torch.empty_like(hc)
            grad_w = torch.zeros(w.shape, device=h.device, dtype=torch.float32)
            grad_b = None if b is None else torch.zeros(vocab, device=h.device)
            fn = _ce_compiled() if compiled else _ce_chunk
            for s in range(0, n, rows):
                x = hc[s : s + rows]
                logits = x @ w.t() if b is None else torch.addmm(b, x, w.t())
                part, g = fn(logits, targets[s : s + rows])
                loss += part
                torch.mm(g, w, out=grad_h[s : s + rows])
                if g.dtype == grad_w.dtype:
                    grad_w.addmm_(g.t(), x)
                else:  # bf16/fp16 products, summed over chunks in fp32
                    grad_w += (g.t() @ x).float()
                if grad_b is not None:
                    grad_b += g.float().sum(0)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.dtypes = (h.dtype, weight.dtype, None if bias is None else bias.dtype)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        dh, dw, db = ctx.dtypes
        gb = None if grad_b is None else (grad_b * grad_out).to(db)
        return grad_h.to(dh) * grad_out, (grad_w * grad_out).to(dw), gb, None, None, None


def linear_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    compiled: bool = False,
) -> torch.Tensor:
    """Sum (fp32) over rows of CE(h·Wᵀ + b, targets); rows with target IGNORE count 0."""
    dtype = _compute_dtype(h)
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        return LinearCrossEntropy.apply(h, weight, bias, targets, dtype, compiled)
    with torch.autocast(h.device.type, enabled=False):
        w = weight.to(dtype)
        b = None if bias is None else bias.to(dtype)
        rows = max(1, CHUNK_LOGITS.get(h.device.type, 2**22) // w.shape[0])
        loss = torch.zeros((), device=h.device, dtype=torch.float32)
        for s in range(0, h.shape[0], rows):
            x = h[s : s + rows].to(dtype)
            logits = x @ w.t() if b is None else torch.addmm(b, x, w.t())
            loss += F.cross_entropy(logits.float(), targets[s : s + rows], reduction="sum")
        return loss


class LossModel(torch.nn.Module):
    """An HF model → the summed token loss (fp32) of a batch.

    Calls the model's body (`base_model`) and applies the output layer itself, so the
    loss is the memory-lean `linear_cross_entropy`. For bert only the masked positions
    go through the MLM head. DDP wraps this module (its forward is the training step).
    """

    def __init__(self, model: torch.nn.Module, family: str, compiled_loss: bool = False):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"unknown model family '{family}'; allowed: {', '.join(FAMILIES)}")
        self.model, self.family, self.compiled_loss = model, family, compiled_loss

    def forward(
        self,
        input_ids: torch.Tensor,
        targets: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        body = self.model.base_model
        if self.family == "bert":
            h = body(input_ids=input_ids).last_hidden_state.flatten(0, 1)
            h = self.model.cls.predictions.transform(h.index_select(0, positions))
            head = self.model.cls.predictions.decoder
        else:
            h = body(input_ids=input_ids, use_cache=False).last_hidden_state.flatten(0, 1)
            head = self.model.get_output_embeddings()
        return linear_cross_entropy(h, head.weight, head.bias, targets, self.compiled_loss)


@torch.no_grad()
def mean_loss(
    loss_model: LossModel,
    inputs: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    device: torch.device,
    autocast: Any,
) -> tuple[float, int]:
    """Mean loss (nats per predicted token) over windows, and the number predicted."""
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    for s in range(0, len(inputs), batch_size):
        tgt, pos = targets_of(labels[s : s + batch_size], loss_model.family)
        if len(tgt) == 0:
            continue
        x = torch.from_numpy(inputs[s : s + batch_size]).to(device)
        t = torch.from_numpy(tgt).to(device)
        p = None if pos is None else torch.from_numpy(pos).to(device)
        with autocast:
            total += loss_model(x, t, p).double()
        count += len(tgt)
    return (total.item() / count if count else math.nan), count


# ----------------------------------------------------------------------------- CLI


def parse_rung(text: str) -> Rung:
    """A Rung from JSON text, or from a file when the text is `@path`."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    return Rung.from_json(text)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available")
    return dev


def resolve_precision(name: str, device: torch.device) -> str:
    """auto → bf16 on CUDA (fp16 on pre-Ampere GPUs), fp32 on CPU."""
    if name == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return name


def autocast_for(precision: str, device: torch.device):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--rung-json", required=True, help="the rung as JSON, or @file.json")
    ap.add_argument("--model-dir", required=True, help="save_pretrained directory")
    ap.add_argument("--tokens-dir", required=True, help="directory with val.bin + meta.json")
    ap.add_argument("--max-tokens", type=int, default=262144, help="val tokens to read")
    ap.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    ap.add_argument("--out", required=True, help="eval.json to write")
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        import transformers as tf

        tf.utils.logging.disable_progress_bar()
        rung = parse_rung(args.rung_json)
        torch.set_num_threads(rung.threads)
        device = resolve_device(rung.device)
        precision = resolve_precision(rung.precision, device)
        meta = load_meta(args.tokens_dir)
        val = open_split(args.tokens_dir, "val", meta)
        inputs, labels = val_slice(
            val, rung.family, rung.seq_len, args.max_tokens, rung.mlm_probability, meta
        )
        check_ids(inputs, rung.vocab_size, f"{args.tokens_dir}/val.bin")
        auto = tf.AutoModelForMaskedLM if rung.family == "bert" else tf.AutoModelForCausalLM
        model = auto.from_pretrained(args.model_dir).to(device).eval()
        loss_model = LossModel(model, rung.family)
        loss, count = mean_loss(
            loss_model, inputs, labels, args.batch_size, device, autocast_for(precision, device)
        )
    except (DataError, ValueError, OSError) as e:
        print(f"ladder evaluate: error: {e}", file=sys.stderr)
        return 2
    if not math.isfinite(loss):
        print(f"ladder evaluate: error: validation loss is {loss}", file=sys.stderr)
        return 3
    tokens_per_byte = meta["val"]["n_tokens"] / meta["val"]["n_bytes"]
    out = {
        "rung": rung.id,
        "family": rung.family,
        "loss_nats": loss,
        "bits_per_byte": loss / math.log(2) * tokens_per_byte,
        "eval_tokens": count,
        "eval_windows": len(inputs),
        "seq_len": rung.seq_len,
        "max_tokens": args.max_tokens,
        "val_tokens_per_byte": tokens_per_byte,
        "masking": f"bert 80/10/10, seed {EVAL_MASK_SEED}" if rung.family == "bert" else None,
        "device": str(device),
        "precision": precision,
        "wall_s": time.time() - t0,
    }
    write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(
        f"{rung.id}: val loss {loss:.4f} nats/token, {out['bits_per_byte']:.4f} bits/byte "
        f"over {count} tokens"
    )
    return 0
