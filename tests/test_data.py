"""Corpus sources through one interface, the deterministic split, and the byte cap."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ladder.data import build_corpus, documents
from ladder.errors import DataError
from tests.conftest import DATA, is_val, read_split, split_corpus, texts


def test_split_is_deterministic_order_free_and_near_fraction():
    docs = texts(4000)
    train, val, _ = split_corpus(iter(docs), 0.1, seed=1, max_bytes=None, min_doc_bytes=1)
    train2, val2, _ = split_corpus(iter(docs[::-1]), 0.1, seed=1, max_bytes=None, min_doc_bytes=1)
    assert set(val) == set(val2) and set(train) == set(train2)
    assert not set(train) & set(val)
    assert 0.08 < len(val) / len(docs) < 0.12  # binomial sd ≈ 0.005
    _, val3, _ = split_corpus(iter(docs), 0.1, seed=2, max_bytes=None, min_doc_bytes=1)
    assert set(val3) != set(val)  # the seed keys the hash


def test_byte_cap_keeps_a_prefix():
    docs = texts(100)
    train, val, stats = split_corpus(iter(docs), 0.1, seed=0, max_bytes=1000, min_doc_bytes=1)
    assert stats["n_bytes"] <= 1000 and stats["capped"]
    kept = [d for d in docs if d in set(train) | set(val)]
    assert kept == docs[: len(kept)]


def test_stdlib_source_is_real_python(tmp_path):
    stats = build_corpus(DATA, seed=0, out_dir=tmp_path)
    train = read_split(tmp_path, "train")
    val = read_split(tmp_path, "val")
    assert stats["n_bytes"] <= DATA.max_bytes and train and val
    assert any("def " in t or "import " in t for t in train)
    assert all(is_val(t, 0.1, 0) for t in val)


def test_files_source_txt_jsonl_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.txt").write_text("plain text file one\nwith two lines\n")
    (tmp_path / "b.txt").write_text("plain text file two\n")
    with open(tmp_path / "c.jsonl", "w") as f:
        for t in texts(5):
            f.write(json.dumps({"body": t}) + "\n")
    pq.write_table(pa.table({"body": texts(3)}), tmp_path / "d.parquet")
    cfg = replace(DATA, source="files", text_field="body", paths=(str(tmp_path / "*.txt"),))
    docs = list(documents(cfg))
    assert docs == ["plain text file one\nwith two lines\n", "plain text file two\n"]
    cfg = replace(cfg, paths=(str(tmp_path / "*.jsonl"), str(tmp_path / "*.parquet")))
    assert sorted(documents(cfg)) == sorted(texts(5) + texts(3))


def test_files_source_wrong_field_names_the_columns(tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    cfg = replace(DATA, source="files", paths=(str(tmp_path / "*.jsonl"),))
    with pytest.raises(DataError, match="no text field 'text'.*body"):
        list(documents(cfg))


def test_hf_source_through_load_dataset_on_a_local_dataset(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"story": texts(50)})
    ds.to_parquet(str(tmp_path / "hub" / "data" / "train-00000.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    for name in (tmp_path / "hub", tmp_path / "saved"):
        hf = replace(DATA.hf, name=str(name))
        cfg = replace(DATA, source="hf", hf=hf, text_field="story", max_bytes=None)
        assert list(documents(cfg)) == texts(50)
    # a byte cap streams the head of the dataset
    cfg = replace(DATA, source="hf", hf=replace(hf, name=str(tmp_path / "hub")), text_field="story")
    cfg = replace(cfg, max_bytes=500)
    _, _, stats = split_corpus(documents(cfg), 0.1, 0, 500, 1)
    assert 0 < stats["n_bytes"] <= 500


def test_empty_split_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("only one document")
    cfg = replace(DATA, source="files", paths=(str(tmp_path / "a.txt"),))
    with pytest.raises(DataError, match="val_fraction"):
        build_corpus(cfg, seed=0, out_dir=tmp_path / "out")
