"""Data at scale: the streaming corpus and its shards, the tokenizer's capped sample,
parallel sharded encoding, and training/evaluation reading shards as one sequence."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ladder import data as D
from ladder import shards as S
from ladder.data import build_corpus, corpus_stats, documents
from ladder.errors import DataError
from ladder.tokenize import main_encode, main_tokenizer, symbol_tokenizer, train_bpe
from tests.conftest import (
    DATA,
    assert_same_run,
    curve,
    make_shards,
    read_split,
    run,
    split_corpus,
    start_subprocess,
    texts,
    tiny_rung,
    wait_for,
)


def write_sources(root: Path) -> None:
    """Every kind of local file, CRLF and non-ASCII included."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    (root / "a.txt").write_bytes("first file\r\nwith CRLF\rand CR — ü\n".encode())
    (root / "b.txt").write_text("second file " * 50)
    with open(root / "c.jsonl", "w") as f:
        for t in texts(300):
            f.write(json.dumps({"body": t, "n": 1}) + "\n")
    (root / "d.json").write_text(json.dumps([{"body": t} for t in texts(40)[::-1]]))
    pq.write_table(pa.table({"body": [t + " pq" for t in texts(500)]}), root / "e.parquet")


def datasets_documents(patterns, field: str, cache: Path) -> list[str]:
    """The `files` source as it was before streaming: `datasets.load_dataset` per file kind."""
    import glob

    import datasets

    kinds = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
    by_kind: dict[str, list[str]] = {}
    for pattern in patterns:
        for p in sorted(glob.glob(pattern)):
            by_kind.setdefault(kinds[Path(p).suffix], []).append(p)
    out = []
    for kind, paths in by_kind.items():
        kw = {"sample_by": "document"} if kind == "text" else {}
        ds = datasets.load_dataset(
            kind, data_files=paths, split="train", cache_dir=str(cache), **kw
        )
        out += ds["text" if kind == "text" else field]
    return out


# ----------------------------------------------------------------------------- corpus


def test_streaming_corpus_equals_the_in_memory_split(tmp_path):
    """Same documents as `datasets` read, same split, same order; shards are bounded and
    their concatenation is the split."""
    write_sources(tmp_path / "src")
    patterns = [str(tmp_path / "src" / p) for p in ("*.txt", "*.jsonl", "*.json", "*.parquet")]
    cfg = replace(DATA, source="files", paths=tuple(patterns), text_field="body", max_bytes=None)
    docs = list(documents(cfg))
    assert docs == datasets_documents(patterns, "body", tmp_path / "hf-cache")
    want_train, want_val, want_stats = split_corpus(iter(docs), 0.1, 3, None, 1)
    cfg = replace(cfg, shard_bytes=4000)
    stats = build_corpus(cfg, seed=3, out_dir=tmp_path / "corpus", log_every_s=0)
    assert read_split(tmp_path / "corpus", "train") == want_train
    assert read_split(tmp_path / "corpus", "val") == want_val
    assert stats["n_bytes"] == want_stats["n_bytes"] and stats["n_docs"] == len(docs)
    shards = stats["train"]["shards"]
    assert len(shards) > 5 and all(s["n_bytes"] <= 4000 for s in shards)
    assert sum(s["n_docs"] for s in shards) == len(want_train)
    assert corpus_stats(tmp_path / "corpus") == stats
    # a byte cap keeps a prefix, as before
    capped = build_corpus(replace(cfg, max_bytes=20_000), 3, tmp_path / "capped", log_every_s=0)
    assert capped["capped"] and capped["n_bytes"] <= 20_000
    kept = read_split(tmp_path / "capped", "train") + read_split(tmp_path / "capped", "val")
    assert sorted(kept) == sorted(docs[: capped["n_docs"]])


def test_stdlib_corpus_streams_with_progress(tmp_path, capsys):
    build_corpus(replace(DATA, shard_bytes=50_000), 0, tmp_path / "c", log_every_s=0)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("corpus:")]
    assert lines and all("MB/s" in x and "ETA" in x for x in lines)
    assert len(corpus_stats(tmp_path / "c")["train"]["shards"]) >= 3


def test_a_rebuilt_corpus_replaces_the_old_one(tmp_path):
    out = tmp_path / "corpus"
    build_corpus(replace(DATA, shard_bytes=20_000), 0, out, log_every_s=0)
    build_corpus(replace(DATA, max_bytes=100_000), 0, out, log_every_s=0)
    files = {p.name for p in out.iterdir()}
    assert files == {"stats.json", "train-00000.parquet", "val-00000.parquet"}
    assert not list(tmp_path.glob(".corpus.tmp*"))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.jsonl", b'{"text": "ok"}\n{"text": "cut\n', r"bad.jsonl, line 2: invalid JSON"),
        ("bad.jsonl", b'{"text": "ok"}\n{"text": "\xff"}\n', r"line 2: not UTF-8 at byte 25"),
        ("bad.jsonl", b'{"text": "ok"}\n{"body": "x"}\n', r"line 2: no text field 'text'.*body"),
        ("bad.jsonl", b'{"text": null}\n', r"line 1: field 'text' holds a JSON NoneType"),
        ("bad.txt", b"caf\xe9", r"bad.txt: not UTF-8 at byte 3"),
        ("bad.json", b'[{"text": "a"}, 3]', r"bad.json: item 1: expected a JSON object"),
        ("bad.parquet", b"PAR1 not really", r"bad.parquet: not a readable parquet file"),
    ],
)
def test_bad_file_is_one_line_naming_file_and_place(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    cfg = replace(DATA, source="files", paths=(str(tmp_path / name),))
    with pytest.raises(DataError, match=message) as e:
        list(documents(cfg))
    assert "\n" not in str(e.value)


def test_hf_local_files_stream_without_an_arrow_cache(tmp_path, monkeypatch):
    import datasets

    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    for i in range(3):
        ds = datasets.Dataset.from_dict({"story": texts(40)[i::3]})
        ds.to_parquet(str(tmp_path / "hub" / "data" / f"train-{i:05d}.parquet"))
    hf = replace(DATA.hf, name=str(tmp_path / "hub"))
    cfg = replace(DATA, source="hf", hf=hf, text_field="story", max_bytes=None)
    docs = list(documents(cfg))
    assert docs == [t for i in range(3) for t in texts(40)[i::3]]
    assert not list(cache.rglob("*.arrow"))  # no second copy of the corpus


def test_synthetic_chain_is_drawn_in_chunks_unchanged(monkeypatch):
    """The chunked generator draws what one `rng.choice` then `rng.integers` drew."""

    def whole(perms, probs, n_tokens, rng):  # the chain as first written, all at once
        ranks = rng.choice(len(probs), size=n_tokens, p=probs).tolist()
        table, state, out = perms.tolist(), int(rng.integers(len(probs))), []
        for r in ranks:
            state = table[state][r]
            out.append(state)
        return "".join(chr(D.SYMBOL_BASE + s) for s in out)

    perms = np.argsort(np.random.default_rng(5).random((16, 16)), axis=1)
    probs = D.zipf_probs(16, 1.1)
    want = whole(perms, probs, 10_000, np.random.default_rng([5, 0]))
    monkeypatch.setattr(D, "CHAIN_CHUNK", 777)
    assert D.markov_chain(perms, probs, 10_000, np.random.default_rng([5, 0])) == want


# ----------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stream") / "corpus"
    build_corpus(replace(DATA, max_bytes=400_000, shard_bytes=60_000), 0, out, log_every_s=0)
    return out


def test_bpe_from_the_stream_equals_bpe_from_a_list(corpus, tmp_path):
    rc = main_tokenizer(["--corpus-dir", str(corpus), "--vocab-size", "400",
                         "--out-dir", str(tmp_path / "tok")])  # fmt: skip
    assert rc == 0
    info = json.loads((tmp_path / "tok/ladder_tokenizer.json").read_text())
    train_bytes = corpus_stats(corpus)["train"]["n_bytes"]
    assert info["sample_bytes"] == info["corpus_train_bytes"] == train_bytes
    assert not info["capped"] and info["train_bytes"] == 1_000_000_000
    listed = train_bpe(read_split(corpus, "train"), 400, 2)
    streamed = json.loads((tmp_path / "tok/tokenizer.json").read_text())
    assert streamed["model"] == json.loads(listed.backend_tokenizer.to_str())["model"]


def test_bpe_trains_on_at_most_train_bytes(corpus, tmp_path, capsys):
    argv = ["--corpus-dir", str(corpus), "--vocab-size", "400", "--train-bytes", "50000",
            "--out-dir", str(tmp_path / "tok"), "--log-every-s", "0"]  # fmt: skip
    rc = main_tokenizer(argv)
    assert rc == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("tokenizer sample")]
    assert lines and all("MB/s" in x and "ETA" in x for x in lines)
    info = json.loads((tmp_path / "tok/ladder_tokenizer.json").read_text())
    assert info["capped"] and 49_990 <= info["sample_bytes"] <= 50_000
    docs = read_split(corpus, "train")
    assert info["sample_docs"] <= next(
        i + 1 for i in range(len(docs)) if sum(len(t.encode()) for t in docs[: i + 1]) >= 50_000
    )


# ----------------------------------------------------------------------------- encode


def encode(corpus: Path, tok_dir: Path, out: Path, workers: int) -> dict:
    argv = ["--tokenizer-dir", str(tok_dir), "--corpus-dir", str(corpus), "--out-dir", str(out),
            "--workers", str(workers), "--log-every-s", "0"]  # fmt: skip
    assert main_encode(argv) == 0
    return json.loads((out / "meta.json").read_text())


def shard_bytes(out: Path, meta: dict, split: str) -> bytes:
    return b"".join((out / s["file"]).read_bytes() for s in meta[split]["shards"])


def test_parallel_sharded_encoding(corpus, tmp_path, monkeypatch, capsys):
    import ladder.tokenize as T

    monkeypatch.setattr(T, "POOL_MIN_BYTES", 0)  # a pool even for this small corpus
    assert main_tokenizer(["--corpus-dir", str(corpus), "--vocab-size", "400",
                           "--out-dir", str(tmp_path / "tok")]) == 0  # fmt: skip
    one = encode(corpus, tmp_path / "tok", tmp_path / "one", workers=1)
    two = encode(corpus, tmp_path / "tok", tmp_path / "two", workers=2)
    assert one["encode"]["workers"] == 1 and two["encode"]["workers"] == 2
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("encode (")]
    assert lines and all("MB/s" in x and "ETA" in x for x in lines)
    stats = corpus_stats(corpus)
    for split in ("train", "val"):
        ids_one = shard_bytes(tmp_path / "one", one, split)
        assert ids_one == shard_bytes(tmp_path / "two", two, split)
        listed = one[split]["shards"]
        assert len(listed) == len(stats[split]["shards"]) and (split != "train" or len(listed) > 1)
        ids = np.frombuffer(ids_one, np.uint16)
        assert ids.size == one[split]["n_tokens"] == sum(s["n_tokens"] for s in listed)
        assert (ids == one["eos_id"]).sum() == stats[split]["n_docs"] == one[split]["n_docs"]
        for s, c in zip(listed, stats[split]["shards"], strict=True):
            assert (tmp_path / "one" / s["file"]).stat().st_size == 2 * s["n_tokens"]
            assert s["n_bytes"] == c["n_bytes"] and s["n_docs"] == c["n_docs"]
    assert one["tokenizer_info"]["sample_bytes"] == stats["train"]["n_bytes"]


def test_own_tokenizers_load_without_transformers_unchanged(corpus, tmp_path):
    from transformers import AutoTokenizer

    from ladder.tokenize import OwnTokenizer, load_for_encoding

    assert main_tokenizer(["--corpus-dir", str(corpus), "--vocab-size", "400",
                           "--out-dir", str(tmp_path / "bpe")]) == 0  # fmt: skip
    assert main_tokenizer(["--kind", "symbols", "--n-symbols", "30", "--vocab-size", "40",
                           "--out-dir", str(tmp_path / "sym")]) == 0  # fmt: skip
    docs = read_split(corpus, "val")[:30] + ["naïve café 🙂", chr(D.SYMBOL_BASE + 3) * 5]
    for name in ("bpe", "sym"):
        own, auto = (
            load_for_encoding(tmp_path / name),
            AutoTokenizer.from_pretrained(tmp_path / name),
        )
        assert isinstance(own, OwnTokenizer)
        assert (len(own), own.eos_token_id, own.mask_token_id) == (
            len(auto),
            auto.eos_token_id,
            auto.mask_token_id,
        )
        for doc in docs:
            ids = own.backend_tokenizer.encode(doc, add_special_tokens=False).ids
            assert ids == auto(doc, add_special_tokens=False)["input_ids"]
    shutil.copytree(tmp_path / "bpe", tmp_path / "other")
    (tmp_path / "other" / "ladder_tokenizer.json").unlink()  # a tokenizer from elsewhere
    assert not isinstance(load_for_encoding(tmp_path / "other"), OwnTokenizer)


def test_a_vocabulary_past_uint16_gets_uint32(tmp_path):
    cfg = replace(DATA, source="synthetic")
    cfg = replace(cfg, synthetic=replace(cfg.synthetic, train_tokens=3000, val_tokens=500))
    build_corpus(cfg, 0, tmp_path / "corpus", log_every_s=0)
    symbol_tokenizer(70_000).save_pretrained(str(tmp_path / "tok"))
    meta = encode(tmp_path / "corpus", tmp_path / "tok", tmp_path / "out", workers=1)
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 70_002
    ids = np.frombuffer(shard_bytes(tmp_path / "out", meta, "train"), np.uint32)
    text = read_split(tmp_path / "corpus", "train")[0]
    assert ids.tolist() == [ord(c) - D.SYMBOL_BASE + 2 for c in text] + [meta["eos_id"]]


# ----------------------------------------------------------------------------- reading


def reshard(src: Path, dst: Path, cuts: dict[str, list[int]]) -> Path:
    """The single-file token layout of `src` cut into shards at `cuts` (positions)."""
    meta = json.loads((src / "meta.json").read_text())
    (dst / "shards").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        ids = np.fromfile(src / f"{split}.bin", dtype=meta["dtype"])
        pieces = np.split(ids, cuts.get(split, []))
        meta[split]["shards"] = []
        for i, piece in enumerate(pieces):
            name = f"shards/{split}-{i:05d}.bin"
            piece.tofile(dst / name)
            meta[split]["shards"].append({"file": name, "n_tokens": len(piece)})
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def test_windows_depend_on_the_sequence_not_its_shards(tmp_path):
    src = make_shards(tmp_path / "one", n_train=5000, n_val=700)
    meta = json.loads((src / "meta.json").read_text())
    flat = S.open_split(src, "train", meta)
    # many shards, some shorter than a window, one of them empty
    cuts = {"train": [7, 9, 9, 1000, 1016, 2500, 4990], "val": [100, 117]}
    sharded = reshard(src, tmp_path / "many", cuts)
    many = S.open_split(sharded, "train", json.loads((sharded / "meta.json").read_text()))
    assert len(many.parts) == 8 and len(many) == len(flat) == 5000
    for family in ("llama", "bert"):
        r = tiny_rung(family)
        for step in range(40):
            a, b = S.step_batch(flat, r, step, meta), S.step_batch(many, r, step, meta)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    starts = np.array([0, 1, 5, 6, 8, 990, 995, 4983])  # windows across 1-4 boundaries
    plain = np.fromfile(src / "train.bin", np.uint16)
    assert np.array_equal(many.windows(starts, 17), plain[starts[:, None] + np.arange(17)])
    assert np.array_equal(many[3:2600], plain[3:2600])
    val_meta = json.loads((sharded / "meta.json").read_text())
    v1 = S.val_slice(S.open_split(src, "val", meta), "gpt2", 16, 500, 0.15, meta)
    v2 = S.val_slice(S.open_split(sharded, "val", val_meta), "gpt2", 16, 500, 0.15, val_meta)
    assert all(np.array_equal(x, y) for x, y in zip(v1, v2, strict=True))


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory):
    """A run on one token file and the same tokens in four shards: (rung, one, many)."""
    root = tmp_path_factory.mktemp("shardrun")
    one = make_shards(root / "one")
    many = reshard(one, root / "many", {"train": [10_000, 10_003, 25_000], "val": [1000]})
    rung = tiny_rung(tokens=128 * 300, checkpoint_minutes=0.002, eval_points=4)
    assert run(rung, one, root / "ref") == 0
    return rung, many, root / "ref"


def test_training_on_shards_equals_one_file(sharded_run, tmp_path):
    rung, many, ref = sharded_run
    short = dataclasses.replace(rung, steps=40, tokens=40 * 128)
    assert run(short, many, tmp_path / "a") == 0
    assert run(short, many.parent / "one", tmp_path / "b") == 0
    assert curve(tmp_path / "a") == curve(tmp_path / "b")


def test_resume_after_kill_is_exact_over_shards(sharded_run, tmp_path):
    rung, many, ref = sharded_run
    proc = start_subprocess(rung, many, tmp_path)
    wait_for(tmp_path / "ckpt" / "state.pt", proc, timeout_s=600)  # torch's import under load
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (tmp_path / "train.json").exists()
    assert run(rung, many, tmp_path) == 0
    info = json.loads((tmp_path / "train.json").read_text())
    assert 0 < info["resumed_from_step"] < rung.steps
    assert_same_run(tmp_path, ref)  # the one-file run, bit for bit


@pytest.mark.parametrize("damage", ["truncated", "odd size", "wrong dtype", "missing"])
def test_a_bad_shard_is_a_clear_error_naming_it(sharded_run, tmp_path, damage, capsys):
    rung, many, _ = sharded_run
    bad = shutil.copytree(many, tmp_path / "tokens")
    shard = bad / "shards" / "train-00002.bin"
    meta = json.loads((bad / "meta.json").read_text())
    if damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:-200])
    elif damage == "odd size":
        shard.write_bytes(shard.read_bytes()[:-1])
    elif damage == "wrong dtype":  # rewritten as uint32 while meta.json says uint16
        ids = np.fromfile(shard, np.uint16)
        ids.astype(np.uint32).tofile(shard)
    else:
        shard.unlink()
    with pytest.raises(DataError, match="train-00002.bin") as e:
        S.open_split(bad, "train", meta)
    assert "\n" not in str(e.value) and "rerun the encode stage" in str(e.value)
    assert run(rung, bad, tmp_path / "run") == 2
    assert "train-00002.bin" in capsys.readouterr().err


def test_a_bad_token_id_names_its_shard(sharded_run, tmp_path, capsys):
    rung, many, _ = sharded_run
    bad = shutil.copytree(many, tmp_path / "tokens")
    shard = bad / "shards" / "train-00001.bin"
    ids = np.fromfile(shard, np.uint16)
    ids[1] = 999
    ids.tofile(shard)
    assert run(rung, bad, tmp_path / "run") == 2
    assert "train-00001.bin holds token id 999" in capsys.readouterr().err
