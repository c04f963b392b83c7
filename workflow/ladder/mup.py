"""μP, the maximal update parametrization (Yang et al. 2022, Tensor Programs V,
https://arxiv.org/abs/2203.03466), for llama and gpt2: one learning rate and init, tuned at
a base width, serve every wider model.

With m = d_model / base width (Cerebras' "Practitioner's Guide to μP",
https://www.cerebras.ai/blog/the-practitioners-guide-to-the-maximal-update-parameterization,
and EleutherAI's nanoGPT-mup, table "μP implementation"):
- attention logits are scaled by 1/d_head instead of 1/√d_head;
- the output logits are multiplied by 1/m before the head (the head's weights, tied to
  the embedding or not, are initialised and trained as in SP);
- hidden matrices (every 2-D weight but the token/position embeddings and the head) are
  initialised with std σ/√m and trained by AdamW at lr/m, in their own parameter group
  whose weight decay is wd·m, so that the decay per step (lr·wd, torch's decoupled AdamW)
  does not change with m;
- embeddings, norms and biases are as in SP.
At m = 1 only the attention scale differs from SP.

How the multipliers reach a saved model, so that `from_pretrained` gives the loss training
measured: llama trains as HF's GraniteForCausalLM (Llama's architecture plus multipliers
its config keeps: attention_multiplier = 1/d_head, logits_scaling = m; ladder.loss divides
by logits_scaling like Granite's head does). GPT-2's config has no such fields, so training
sets each attention's `scaling` and multiplies the final LayerNorm by 1/m (ScaledLayerNorm),
and `export` folds both into the saved weights: the query columns of c_attn × 1/d_head with
`scale_attn_weights: false`, ln_f's weight and bias × 1/m. The saved GPT-2 is a plain
GPT2LMHeadModel computing the same function (bit for bit when d_head and m are powers of two,
as scaling by them is exact); it no longer knows m, so further training of it is SP.
"""

from __future__ import annotations

import copy
import math

import torch


def width_mult(d_model: int, base_width: int) -> float:
    """m = d_model / base width (1 at the base)."""
    return d_model / base_width


def embedding_params(model: torch.nn.Module, family: str) -> set[int]:
    """ids of the parameters μP treats like SP although they are matrices: the token (and
    GPT-2's position) embeddings and the output head (the same tensor when tied)."""
    mods = [model.get_input_embeddings(), model.get_output_embeddings()]
    if family == "gpt2":
        mods.append(model.transformer.wpe)
    return {id(p) for m in mods for p in m.parameters()}


def hidden_matrices(model: torch.nn.Module, family: str) -> list[torch.nn.Parameter]:
    """Every 2-D weight that is not an embedding or the head: μP's 'hidden' weights, whose
    fan-in grows with width."""
    skip = embedding_params(model, family)
    unique = {id(p): p for p in model.parameters()}.values()
    return [p for p in unique if p.dim() >= 2 and id(p) not in skip]


class ScaledLayerNorm(torch.nn.LayerNorm):
    """LayerNorm then × `multiplier` (GPT-2's ln_f under μP: the 1/m before the tied head).
    Same parameters and state_dict keys as the LayerNorm it replaces."""

    multiplier: float = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.multiplier


def apply(model: torch.nn.Module, family: str, m: float, head_dim: int) -> None:
    """Make a freshly initialised SP model μP at width multiplier m (in place): hidden
    matrices' init std × 1/√m, and for GPT-2 the attention scale and output multiplier
    (llama's are in its Granite config, `granite_fields`)."""
    with torch.no_grad():
        for p in hidden_matrices(model, family):
            p.mul_(1 / math.sqrt(m))  # N(0, σ²) × c is N(0, (cσ)²): same draws, σ/√m
    if family == "gpt2":
        for block in model.transformer.h:
            block.attn.scaling = 1.0 / head_dim
        old = model.transformer.ln_f
        new = ScaledLayerNorm(old.normalized_shape, eps=old.eps)
        new.load_state_dict(old.state_dict())
        new.multiplier = 1.0 / m
        model.transformer.ln_f = new


def granite_fields(m: float, head_dim: int) -> dict[str, float]:
    """The GraniteConfig multipliers that make a Llama μP (Granite's attention_multiplier
    replaces 1/√d_head; its logits are divided by logits_scaling)."""
    return {
        "attention_multiplier": 1.0 / head_dim,
        "logits_scaling": m,
        "embedding_multiplier": 1.0,
        "residual_multiplier": 1.0,
    }


def optimizer_groups(
    model: torch.nn.Module, family: str, m: float, weight_decay: float
) -> list[dict]:
    """AdamW's parameter groups under μP: hidden matrices at lr/m with decay wd·m (so lr·wd,
    the decay per step, stays); embeddings and head at lr with decay wd; vectors (norms,
    biases) at lr without decay. `lr_mult` is what train.py multiplies the schedule's lr by."""
    hidden = {id(p) for p in hidden_matrices(model, family)}
    params = [p for p in {id(p): p for p in model.parameters()}.values() if p.requires_grad]
    return [
        {
            "params": [p for p in params if id(p) in hidden],
            "weight_decay": weight_decay * m,
            "lr_mult": 1.0 / m,
        },
        {
            "params": [p for p in params if p.dim() >= 2 and id(p) not in hidden],
            "weight_decay": weight_decay,
            "lr_mult": 1.0,
        },
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr_mult": 1.0},
    ]


def export(model: torch.nn.Module, family: str, m: float, head_dim: int) -> torch.nn.Module:
    """The model to save_pretrained: llama's Granite model as it is; for GPT-2 a copy with
    the attention scale and output multiplier folded into its weights (module docstring)."""
    if family != "gpt2":
        return model
    out = copy.deepcopy(model)
    d = out.config.n_embd
    with torch.no_grad():
        for block in out.transformer.h:
            block.attn.c_attn.weight[:, :d] *= 1.0 / head_dim  # Conv1D: (in, 3·d), q first
            block.attn.c_attn.bias[:d] *= 1.0 / head_dim
            block.attn.scaling = 1.0
        ln = out.transformer.ln_f
        ln.weight *= 1.0 / m
        ln.bias *= 1.0 / m
        ln.multiplier = 1.0
    out.config.scale_attn_weights = False
    out.config.ladder_mup_folded = True  # the multipliers are in the weights now
    return out
