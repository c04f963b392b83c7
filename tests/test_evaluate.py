"""Evaluation: the fixed validation slice, loss equal to HF's own, bits/byte, BERT's
fixed masking."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import ladder.evaluate as E
from ladder import shards
from ladder.config import load_config
from ladder.loss import IGNORE
from ladder.model import build_model
from ladder.plan import plan
from ladder.rung import Rung

torch.set_num_threads(1)
VOCAB = 300


def make_shards(d: Path, n_val: int = 3000, mask_id: int | None = VOCAB - 2) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    meta = {"dtype": "uint16", "vocab_size": VOCAB - 1, "eos_id": 0, "mask_id": mask_id}
    for split, n in (("train", 1000), ("val", n_val)):
        rng.integers(0, VOCAB - 3, n).astype(np.uint16).tofile(d / f"{split}.bin")
        meta[split] = {"n_tokens": n, "n_bytes": 4 * n + 1, "n_docs": 3}
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def rung(family: str) -> Rung:
    cfg = {
        "study": "t",
        "tokenizer": {"vocab_size": VOCAB},
        "model": {"family": family, "seq_len": 16, "head_dim": 8},
        "ladder": {"widths": [16], "tokens": 1000},
    }
    return plan(load_config(cfg))[0]


def evaluate(r: Rung, tmp: Path, tokens: Path, max_tokens: int = 1000, bs: int = 5) -> dict:
    model_dir = tmp / "model"
    if not model_dir.exists():
        build_model(r.shape, seed=3).save_pretrained(model_dir)
    out = tmp / "eval.json"
    argv = ["--rung-json", r.to_json(), "--model-dir", str(model_dir), "--tokens-dir",
            str(tokens), "--max-tokens", str(max_tokens), "--batch-size", str(bs),
            "--out", str(out)]  # fmt: skip
    assert E.main(argv) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_causal_loss_equals_hf_over_the_first_tokens(family, tmp_path):
    import transformers as tf

    tokens = make_shards(tmp_path / "tok")
    r = rung(family)
    got = evaluate(r, tmp_path, tokens, max_tokens=1000)
    n_win = (1000 - 1) // 16  # non-overlapping windows of 16 (+1 shifted target)
    assert got["eval_tokens"] == n_win * 16 and got["eval_windows"] == n_win
    val = np.fromfile(tokens / "val.bin", np.uint16).astype(np.int64)
    model = tf.AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    with torch.no_grad():  # HF's loss on each window of 17 tokens (positions fit 16 inputs)
        x = torch.from_numpy(val[: n_win * 16 + 1])
        wins = torch.stack([x[i * 16 : i * 16 + 16] for i in range(n_win)])
        logits = model(input_ids=wins).logits
        tgt = torch.stack([x[i * 16 + 1 : i * 16 + 17] for i in range(n_win)])
        ref = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1))
    assert got["loss_nats"] == pytest.approx(float(ref), rel=1e-5)
    # bits/byte uses the whole val split's tokens-per-byte ratio (meta.json)
    assert got["bits_per_byte"] == pytest.approx(got["loss_nats"] / math.log(2) * 3000 / 12001)
    assert got["rung"] == r.id and got["family"] == family


def test_batch_size_does_not_change_the_result(tmp_path):
    tokens = make_shards(tmp_path / "tok")
    a = evaluate(rung("llama"), tmp_path, tokens, bs=3)["loss_nats"]
    b = evaluate(rung("llama"), tmp_path, tokens, bs=64)["loss_nats"]
    assert a == pytest.approx(b, rel=1e-6)


def test_max_tokens_beyond_the_split_uses_all_of_it(tmp_path):
    tokens = make_shards(tmp_path / "tok", n_val=500)
    got = evaluate(rung("gpt2"), tmp_path, tokens, max_tokens=10**9)
    assert got["eval_tokens"] == (500 - 1) // 16 * 16


def test_bert_mask_is_fixed_seeded_and_prefix_stable(tmp_path):
    meta = json.loads((make_shards(tmp_path / "tok") / "meta.json").read_text())
    val = np.fromfile(tmp_path / "tok" / "val.bin", np.uint16)
    x1, y1 = shards.val_slice(val, "bert", 16, 1600, 0.15, meta)
    x2, y2 = shards.val_slice(val, "bert", 16, 3000, 0.15, meta)
    assert np.array_equal(x1, x2[:100]) and np.array_equal(y1, y2[:100])
    sel = y2 != IGNORE
    assert 0.12 < sel.mean() < 0.18  # mlm_probability 0.15
    orig = val[: y2.size].reshape(y2.shape)
    assert np.array_equal(y2[sel], orig[sel])  # labels are the original tokens
    masked = (x2 == meta["mask_id"])[sel].mean()
    kept = (x2 == orig)[sel].mean()
    assert 0.72 < masked < 0.88 and 0.05 < kept < 0.16  # 80 / 10 (random) / 10 (kept)


def test_bert_eval_is_deterministic(tmp_path):
    tokens = make_shards(tmp_path / "tok")
    a, b = (evaluate(rung("bert"), tmp_path, tokens) for _ in range(2))
    assert a["loss_nats"] == b["loss_nats"] and 0 < a["eval_tokens"] < 1000
    assert a["masking"].startswith("bert 80/10/10")


def test_bert_without_mask_id_fails_clearly(tmp_path, capsys):
    tokens = make_shards(tmp_path / "tok", mask_id=None)
    build_model(rung("bert").shape, seed=0).save_pretrained(tmp_path / "model")
    argv = ["--rung-json", rung("bert").to_json(), "--model-dir", str(tmp_path / "model"),
            "--tokens-dir", str(tokens), "--out", str(tmp_path / "e.json")]  # fmt: skip
    assert E.main(argv) == 2
    assert "mask_id is null" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()
