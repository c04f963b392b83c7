"""Parameter groups and FLOPs (by hand and against the real HF models), and the fused
loss against HF's `labels=` loss."""

from __future__ import annotations

import pytest
import torch

import ladder.loss as L
from ladder.model import (
    ModelShape,
    build_model,
    count_params,
    default_d_ff,
    flops_per_token,
    param_groups,
)

torch.set_num_threads(1)


def shape(family: str, **kw) -> ModelShape:
    base = dict(family=family, n_layer=2, d_model=16, n_head=2, n_kv_head=2, d_ff=48,
                vocab_size=100, seq_len=8, tie_embeddings=family != "llama")  # fmt: skip
    return ModelShape(**{**base, **kw})


def test_llama_counts_by_hand():
    # 2 layers, d 16, 2 query heads of 8, 1 kv head (GQA), SwiGLU 48, vocab 100, untied
    s = shape("llama", n_kv_head=1)
    attn = 16 * 16 + 16 * 8 + 16 * 8 + 16 * 16  # q, k, v (one 8-dim kv head each), o
    mlp = 3 * 16 * 48  # gate, up, down
    block = attn + mlp + 2 * 16  # + two RMSNorm weights
    non_emb = 2 * block + 16  # + final norm
    assert (attn, block, non_emb) == (768, 3104, 6224)
    assert param_groups(s) == {
        "params_total": 6224 + 1600 + 1600,
        "params_embedding": 1600,  # 100 × 16
        "params_head": 1600,  # untied lm_head
        "params_non_embedding": 6224,
        "params_with_head": 6224 + 1600,
    }
    # 6 · N_with_head + 12 · layers · seq · d_attn (PaLM's attention term)
    assert flops_per_token(s) == 6 * 7824 + 12 * 2 * 8 * 16 == 50016


@pytest.mark.parametrize(
    "s",
    [
        shape("llama"),
        shape("llama", n_kv_head=1, tie_embeddings=True),
        shape("gpt2"),
        shape("gpt2", tie_embeddings=False),
        shape("bert"),
        shape("llama", d_ff=default_d_ff("llama", 16)),
    ],
    ids=lambda s: f"{s.family}-kv{s.n_kv_head}-tie{int(s.tie_embeddings)}-ff{s.d_ff}",
)
def test_counts_equal_the_real_model(s):
    model = build_model(s, seed=0)
    assert count_params(model, s) == param_groups(s)
    assert param_groups(s)["params_total"] == sum(p.numel() for p in model.parameters())


def test_bert_trains_token_zero():
    # HF's BERT default pad_token_id=0 would make id 0 a frozen padding row
    model = build_model(shape("bert"), seed=0)
    assert model.bert.embeddings.word_embeddings.padding_idx is None


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_fused_loss_equals_hf_labels_loss_and_grads(family, monkeypatch):
    monkeypatch.setitem(L.CHUNK_LOGITS, "cpu", 100 * 7)  # several chunks, a ragged last one
    s = shape(family)
    ids = torch.randint(0, 100, (3, 8), generator=torch.Generator().manual_seed(0))
    ref = build_model(s, seed=1)
    ref(input_ids=ids, labels=ids).loss.backward()
    ours = build_model(s, seed=1)
    loss = L.LossModel(ours, family)(ids[:, :-1], ids[:, 1:].reshape(-1)) / 21
    loss.backward()
    torch.testing.assert_close(loss, ref(input_ids=ids, labels=ids).loss)
    for (name, a), b in zip(ref.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_fused_loss_equals_hf_masked_lm_loss():
    s = shape("bert")
    ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(ids, L.IGNORE)
    labels[0, 1], labels[1, 5], labels[1, 6] = 7, 8, 9
    ref, ours = build_model(s, seed=1), build_model(s, seed=1)
    hf = ref(input_ids=ids, labels=labels).loss
    hf.backward()
    pos = (labels.reshape(-1) != L.IGNORE).nonzero().squeeze(1)
    loss = L.LossModel(ours, "bert")(ids, labels.reshape(-1)[pos], pos) / 3
    loss.backward()
    torch.testing.assert_close(loss, hf)
    for (name, a), b in zip(ref.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_linear_cross_entropy_ignores_and_matches_reference():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(10, 4, generator=g, requires_grad=True)
    w = torch.randn(6, 4, generator=g, requires_grad=True)
    b = torch.randn(6, generator=g, requires_grad=True)
    t = torch.tensor([0, 1, L.IGNORE, 3, 4, 5, L.IGNORE, 1, 2, 3])
    L.linear_cross_entropy(h, w, b, t).mul(2.0).backward()
    grads = [x.grad.clone() for x in (h, w, b)]
    for x in (h, w, b):
        x.grad = None
    ref = torch.nn.functional.cross_entropy(h @ w.t() + b, t, reduction="sum") * 2.0
    ref.backward()
    for got, x in zip(grads, (h, w, b), strict=True):
        torch.testing.assert_close(got, x.grad)
    with torch.no_grad():
        torch.testing.assert_close(L.linear_cross_entropy(h, w, b, t), ref / 2)


def test_bf16_autocast_loss_is_close_to_fp32():
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(32, 16, generator=g), torch.randn(50, 16, generator=g) * 0.1
    t = torch.randint(0, 50, (32,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = L.linear_cross_entropy(h, w.requires_grad_(), None, t)
    assert low.dtype == torch.float32  # the sum is fp32 even though logits are bf16
    torch.testing.assert_close(low, L.linear_cross_entropy(h, w, None, t), rtol=1e-2, atol=0)
