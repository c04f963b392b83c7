"""Model shapes, parameter groups, FLOP counts, and HF model construction.

The counting functions are plain arithmetic (no torch) so the Snakefile can plan a
ladder at parse time in milliseconds; `build_model` imports transformers lazily.
tests/test_model.py checks every count against `numel()` of the real HF model.

Conventions (kept in plan.csv, train.json and runs.csv so any convention can be fitted):
- params_embedding: token (+ position, + token-type) embedding tables.
- params_head: output-projection parameters *not* shared with the embedding
  (V·d when untied, 0 when tied) plus an output bias if the family has one.
- params_non_embedding: everything else (blocks, norms, BERT's MLM transform).
- params_total = embedding + head + non_embedding (unique parameters, = numel()).
- params_with_head = non_embedding + V·d: the matmul parameters a token passes
  through, tied or not; this is N in 6·N (Kaplan et al. 2020; Chinchilla counts total).
- flops_per_token (training, forward+backward) = 6·params_with_head
  + 12·n_layer·seq_len·d_attn, the attention term of PaLM (Chowdhery et al. 2022,
  appendix B): QKᵀ and AV each cost 2·seq·d_attn per token forward, ×3 for training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FAMILIES = ("llama", "gpt2", "bert")
# HF's own defaults: Llama unties its output head, GPT-2 and BERT tie it.
TIED_BY_DEFAULT = {"llama": False, "gpt2": True, "bert": True}
PARAMETRIZATIONS = ("sp", "mup")  # standard, or μP (ladder.mup, which imports torch)
MUP_FAMILIES = ("llama", "gpt2")


@dataclass(frozen=True)
class ModelShape:
    family: str
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    d_ff: int
    vocab_size: int
    seq_len: int
    tie_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def d_attn(self) -> int:
        return self.n_head * self.head_dim


def default_d_ff(family: str, d_model: int) -> int:
    """Llama's SwiGLU uses ~8/3·d (three matrices ≈ the 4·d two-matrix MLP), rounded up
    to a multiple of 32 for friendly matmuls; GPT-2 and BERT use 4·d."""
    if family == "llama":
        return -(-(8 * d_model // 3) // 32) * 32
    return 4 * d_model


def param_groups(s: ModelShape) -> dict[str, int]:
    d, V, L, ff = s.d_model, s.vocab_size, s.n_layer, s.d_ff
    if s.family == "llama":
        kv = s.n_kv_head * s.head_dim
        block = d * s.d_attn + 2 * d * kv + s.d_attn * d + 3 * d * ff + 2 * d
        non_embedding = L * block + d  # + final RMSNorm
        embedding = V * d
        head = 0 if s.tie_embeddings else V * d
    elif s.family == "gpt2":
        block = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d)
        non_embedding = L * block + 2 * d  # + final LayerNorm
        embedding = V * d + s.seq_len * d  # token + learned positions
        head = 0 if s.tie_embeddings else V * d
    elif s.family == "bert":
        block = 3 * (d * d + d) + (d * d + d) + 2 * d + (d * ff + ff) + (ff * d + d) + 2 * d
        # embedding LayerNorm + MLM transform (dense + LayerNorm) are not embeddings
        non_embedding = L * block + 2 * d + (d * d + d) + 2 * d
        embedding = V * d + s.seq_len * d + 2 * d  # token + position + token-type
        head = V  # the decoder's bias; its weight is tied (config rejects untied BERT)
    else:
        raise ValueError(f"unknown model family '{s.family}'; allowed: {', '.join(FAMILIES)}")
    return {
        "params_total": embedding + head + non_embedding,
        "params_embedding": embedding,
        "params_head": head,
        "params_non_embedding": non_embedding,
        "params_with_head": non_embedding + V * d,
    }


def flops_per_token(s: ModelShape) -> int:
    """Training FLOPs per token (forward + backward), see the module docstring."""
    return 6 * param_groups(s)["params_with_head"] + 12 * s.n_layer * s.seq_len * s.d_attn


# Bytes per parameter that training holds whatever the batch: fp32 weights (4), their
# gradients (4) and AdamW's two moments (8). Ladder replicates all of it on every device
# (DDP; no sharding), so one device must hold it.
STATE_BYTES_PER_PARAM = 16


def train_memory_bytes(s: ModelShape, micro_batch: int, activation_bytes: int) -> int:
    """A rough estimate of one device's memory to train shape `s`: the state above, plus
    the activations one micro-batch saves for the backward pass, ~(10·d + 4·d_ff +
    2·heads·seq) values per token per layer (norm inputs, q/k/v, attention output and
    scores, the MLP's hidden values), at `activation_bytes` each (2 under bf16/fp16
    autocast, 4 in fp32). An order of magnitude, for plan-time warnings, not a budget."""
    state = STATE_BYTES_PER_PARAM * param_groups(s)["params_total"]
    per_token_layer = 10 * s.d_model + 4 * s.d_ff + 2 * s.n_head * s.seq_len
    activations = micro_batch * s.seq_len * s.n_layer * per_token_layer * activation_bytes
    return state + activations


def hf_config(s: ModelShape, base_width: int | None = None):
    """The transformers config for a shape (SDPA attention, no dropout). `base_width`: μP
    at that base width (ladder.mup); llama then becomes a GraniteConfig, whose multipliers
    carry μP's attention scale and output multiplier through save/load."""
    import transformers as tf

    from ladder import mup

    common = dict(vocab_size=s.vocab_size, tie_word_embeddings=s.tie_embeddings)
    if base_width is not None:
        common |= dict(ladder_parametrization="mup", mup_base_width=base_width)
    if s.family == "llama":
        llama = tf.LlamaConfig
        if base_width is not None:
            llama = tf.GraniteConfig
            common |= mup.granite_fields(mup.width_mult(s.d_model, base_width), s.head_dim)
        return llama(
            hidden_size=s.d_model,
            intermediate_size=s.d_ff,
            num_hidden_layers=s.n_layer,
            num_attention_heads=s.n_head,
            num_key_value_heads=s.n_kv_head,
            max_position_embeddings=s.seq_len,
            attn_implementation="sdpa",
            **common,
        )
    if s.family == "gpt2":
        return tf.GPT2Config(
            n_embd=s.d_model,
            n_inner=s.d_ff,
            n_layer=s.n_layer,
            n_head=s.n_head,
            n_positions=s.seq_len,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=None,  # GPT-2's 50256 is outside a small vocabulary
            eos_token_id=None,
            attn_implementation="sdpa",
            **common,
        )
    if s.family == "bert":
        return tf.BertConfig(
            hidden_size=s.d_model,
            intermediate_size=s.d_ff,
            num_hidden_layers=s.n_layer,
            num_attention_heads=s.n_head,
            max_position_embeddings=s.seq_len,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            pad_token_id=None,  # HF's default 0 freezes token 0's embedding (padding_idx)
            attn_implementation="sdpa",
            **common,
        )
    raise ValueError(f"unknown model family '{s.family}'; allowed: {', '.join(FAMILIES)}")


def build_model(s: ModelShape, seed: int, base_width: int | None = None):
    """A randomly initialised HF model (CausalLM for llama/gpt2, MaskedLM for bert); μP at
    `base_width` if given (llama and gpt2; ladder.mup), else the standard parametrization."""
    import torch
    import transformers as tf

    from ladder import mup

    torch.manual_seed(seed)
    if s.family == "bert":
        return tf.BertForMaskedLM(hf_config(s))
    model = tf.AutoModelForCausalLM.from_config(hf_config(s, base_width))
    if s.family == "llama":
        # Scale the init of the projections that write into the residual stream by
        # 1/sqrt(2·n_layer), as GPT-2 does (Radford et al. 2019, §2.3; HF's GPT-2 init does
        # it, HF's Llama init does not): without it deeper rungs start with a residual
        # stream that grows with depth and, on short budgets, train measurably worse.
        std = model.config.initializer_range / math.sqrt(2 * s.n_layer)
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.normal_(0.0, std)
                layer.mlp.down_proj.weight.normal_(0.0, std)
    if base_width is not None:
        mup.apply(model, s.family, mup.width_mult(s.d_model, base_width), s.head_dim)
    return model


def save_model(model, s: ModelShape, path, base_width: int | None = None) -> None:
    """save_pretrained, with a μP GPT-2's multipliers folded into its weights first
    (ladder.mup.export), so that from_pretrained computes what training did."""
    from ladder import mup

    if base_width is not None:
        model = mup.export(model, s.family, mup.width_mult(s.d_model, base_width), s.head_dim)
    model.save_pretrained(path)


def count_params(model, s: ModelShape) -> dict[str, int]:
    """The parameter groups of a real HF model, by inspecting its modules (same keys and
    conventions as `param_groups`; train.json reports these)."""
    unique = {id(p): p for p in model.parameters()}
    emb_mods = [model.get_input_embeddings()]
    if s.family == "gpt2":
        emb_mods.append(model.transformer.wpe)
    if s.family == "bert":
        e = model.bert.embeddings
        emb_mods += [e.position_embeddings, e.token_type_embeddings]
    emb = {id(p): p for m in emb_mods for p in m.parameters()}
    out = model.get_output_embeddings()
    head = {id(p): p for p in out.parameters() if id(p) not in emb}
    n = {k: sum(p.numel() for p in g.values()) for k, g in (("t", unique), ("e", emb), ("h", head))}
    return {
        "params_total": n["t"],
        "params_embedding": n["e"],
        "params_head": n["h"],
        "params_non_embedding": n["t"] - n["e"] - n["h"],
        "params_with_head": n["t"] - n["e"] - n["h"] + out.weight.numel(),
    }
