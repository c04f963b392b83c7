"""The training loss, and the same loss measured on held-out windows.

Training and evaluation must measure the same thing, so both import it from here:
`LossModel` turns an HF model into the summed token loss of a batch through a chunked
linear + cross-entropy that never materialises fp32 logits for the whole batch
(train.py minimises exactly the loss evaluate.py reports); `mean_loss` averages it over
windows without gradients. Positions without a target carry the label IGNORE.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ladder.model import FAMILIES

IGNORE = -100  # label of positions without a target (PyTorch's ignore_index)
# logits formed at once in the loss (rows × vocab): on CUDA big enough for efficient
# matmuls (2^26 bf16 = 128 MiB); on CPU small enough to stay in cache and out of mmap'd
# allocations (page faults made 2^25 three times slower than 2^18 on one thread).
CHUNK_LOGITS = {"cuda": 2**26, "cpu": 2**18}


def targets_of(labels: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Flattened targets and, for bert, the flat positions that have one (host-side, so
    the device never syncs on a data-dependent shape)."""
    flat = labels.reshape(-1)
    if family != "bert":
        return flat, None
    pos = np.flatnonzero(flat != IGNORE)
    return flat[pos], pos


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
        # a Granite model (llama under μP, ladder.mup) divides its logits by this; the
        # head is applied here, so the division is too (1/m: h·(1/m)·Wᵀ = (h·Wᵀ)/m)
        self.logit_mult = 1.0 / getattr(model.config, "logits_scaling", 1.0)

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
            if self.logit_mult != 1.0:
                h = h * self.logit_mult
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
