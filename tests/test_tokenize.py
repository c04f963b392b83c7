"""The tokenizer round-trips real corpus text and loads with AutoTokenizer; shards match."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from ladder.data import build_corpus
from ladder.tokenize import main_encode, main_tokenizer
from tests.conftest import DATA, read_split


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    build_corpus(replace(DATA, max_bytes=400_000), seed=0, out_dir=root / "corpus")
    rc = main_tokenizer(
        [
            "--corpus-dir",
            str(root / "corpus"),
            "--vocab-size",
            "400",
            "--out-dir",
            str(root / "tokenizer"),
        ]
    )
    assert rc == 0
    assert (
        main_encode(
            [
                "--tokenizer-dir",
                str(root / "tokenizer"),
                "--corpus-dir",
                str(root / "corpus"),
                "--out-dir",
                str(root / "tokens"),
            ]
        )
        == 0
    )
    return root


def split_ids(study, meta: dict, split: str) -> np.ndarray:
    """A split's token shards, concatenated."""
    files = [study / "tokens" / s["file"] for s in meta[split]["shards"]]
    return np.concatenate([np.fromfile(f, dtype=meta["dtype"]) for f in files])


def test_round_trip_on_real_corpus_samples(study):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(study / "tokenizer")
    assert len(tok) == 400 and tok.eos_token == "<|endoftext|>" and tok.mask_token_id is not None
    samples = read_split(study / "corpus", "val")[:20]
    samples.append("naïve café — 日本語 🙂 \t\r\n  trailing  ")  # non-ASCII and whitespace
    for text in samples:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text


def test_shards_and_meta(study):
    meta = json.loads((study / "tokens/meta.json").read_text())
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == 400
    for split in ("train", "val"):
        ids = split_ids(study, meta, split)
        texts = read_split(study / "corpus", split)
        assert ids.size == meta[split]["n_tokens"]
        assert (ids == meta["eos_id"]).sum() == len(texts) == meta[split]["n_docs"]
        assert meta[split]["n_bytes"] == sum(len(t.encode()) for t in texts)
        assert ids.max() < 400
    # the first document decodes back from the shard exactly
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(study / "tokenizer")
    ids = split_ids(study, meta, "val")
    first = ids[: int(np.argmax(ids == meta["eos_id"]))]
    assert tok.decode(first.tolist()) == read_split(study / "corpus", "val")[0]


def test_pretrained_tokenizer_too_big_for_vocab(study, capsys):
    rc = main_tokenizer(
        [
            "--kind",
            "pretrained",
            "--name",
            str(study / "tokenizer"),
            "--vocab-size",
            "300",
            "--out-dir",
            str(study / "tok2"),
        ]
    )
    assert rc == 2
    assert "tokenizer.vocab_size: 300" in capsys.readouterr().err
    rc = main_tokenizer(
        [
            "--kind",
            "pretrained",
            "--name",
            str(study / "tokenizer"),
            "--vocab-size",
            "512",
            "--out-dir",
            str(study / "tok2"),
        ]
    )
    assert rc == 0 and (study / "tok2/tokenizer.json").exists()
