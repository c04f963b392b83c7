"""Train a byte-level BPE (or load a named tokenizer) and encode the corpus to shards.

Outputs follow docs/design.md: tokenizer/ loads with `AutoTokenizer.from_pretrained`,
and its ladder_tokenizer.json says what it was trained on (a BPE reads at most
`tokenizer.train_bytes` of the train split, in corpus order). tokens/shards/ holds one
token file per corpus shard, flat uint16 (vocab <= 65536) or uint32 ids with every
document followed by EOS, encoded by a pool of `--workers` processes (one core each) a
parquet row group at a time; tokens/meta.json, written last, lists the shards with their
token counts, the dtype, and the UTF-8 byte count of each split so evaluation can report
bits per byte.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ladder.artifacts import (
    TOKENIZER_SAMPLE_JSON,
    TOKENS_META_JSON,
    TOKENS_SHARDS_DIR,
    atomic_dir,
    token_shard,
    write_json,
)
from ladder.data import SPLITS, corpus_shards, corpus_stats, open_parquet, read_batches
from ladder.errors import DataError, failed
from ladder.progress import StageProgress

EOS, MASK = "<|endoftext|>", "<|mask|>"
TRAIN_BYTES = 1_000_000_000  # default cap on the BPE's training text (tokenizer.train_bytes)
POOL_MIN_BYTES = 4 << 20  # below this much text, starting a pool costs more than it saves


class TokenizerError(ValueError):
    """A tokenizer that cannot serve the study: the message says which key to change."""


def train_bpe(texts: Iterable[str] | Iterable[list[str]], vocab_size: int, min_frequency: int):
    """A GPT-2-style byte-level BPE: every byte is in the alphabet, so any text round-trips.
    `texts` is any iterator of documents or of batches of them: it is read once, as the
    trainer counts words, and never held."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS, MASK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return _hf_tokenizer(tok)


def sample_batches(
    corpus_dir: str | os.PathLike,
    train_bytes: int,
    sample: dict[str, Any],
    progress: StageProgress | None = None,
) -> Iterator[list[str]]:
    """The train split's documents in corpus order, a row group at a time, up to
    `train_bytes` of UTF-8 text: the document that would pass the cap is cut to fit.
    Fills `sample` with what was read."""
    total = corpus_stats(corpus_dir)["train"]["n_bytes"]
    target = min(train_bytes, total)
    sample.update(train_bytes=train_bytes, corpus_train_bytes=total, capped=total > train_bytes)
    sample.update(sample_docs=0, sample_bytes=0)
    full = False
    for batch in read_batches(corpus_dir, "train"):
        out = []
        for text in batch:
            n = len(text.encode("utf-8"))
            room = train_bytes - sample["sample_bytes"]
            if n >= room:  # the last document: cut at a character boundary to fit
                text = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
                n, full = len(text.encode("utf-8")), True
            if n:
                out.append(text)
                sample["sample_docs"] += 1
                sample["sample_bytes"] += n
            if full:
                break
        if out:
            yield out
        if progress is not None:
            done = sample["sample_bytes"]
            progress.update(done, done / max(target, 1), f"{sample['sample_docs']:,} docs")
        if full:
            break
    if progress is not None:  # the trainer computes its merges next, silently
        print(
            f"{progress.line(sample['sample_bytes'], 1.0)}: sample read; computing merges",
            flush=True,
        )


def _hf_tokenizer(tok):
    """A `tokenizers` object as an HF tokenizer with Ladder's special tokens, so
    save_pretrained / AutoTokenizer.from_pretrained work. clean_up_tokenization_spaces
    would rewrite " ." to "." on decode: off, to keep text exact."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        mask_token=MASK,
        clean_up_tokenization_spaces=False,
    )


def symbol_tokenizer(n_symbols: int):
    """One token per synthetic symbol (ids 2..n+1 after EOS and MASK), no merges, so the
    source's entropy per symbol is its entropy per token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    from ladder.data import SYMBOL_BASE

    vocab = {EOS: 0, MASK: 1} | {chr(SYMBOL_BASE + k): k + 2 for k in range(n_symbols)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=EOS))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()  # join symbols without spaces
    return _hf_tokenizer(tok)


def load_pretrained(name: str, vocab_size: int):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name)
    if len(tok) > vocab_size:
        raise TokenizerError(
            f"tokenizer.vocab_size: {vocab_size} is smaller than tokenizer '{name}' "
            f"({len(tok)} tokens); set tokenizer.vocab_size >= {len(tok)}"
        )
    if tok.eos_token_id is None:
        raise TokenizerError(f"tokenizer.name: '{name}' has no EOS token to join documents")
    return tok


def save_tokenizer(tok, out_dir: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
    """save_pretrained (and `info` as ladder_tokenizer.json) into a temp folder, then
    rename, so a crash leaves no half folder."""
    with atomic_dir(out_dir) as tmp:
        tok.save_pretrained(str(tmp))
        if info is not None:
            write_json(tmp / TOKENIZER_SAMPLE_JSON, info)


def main_tokenizer(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder tokenizer", description="train or load a tokenizer")
    ap.add_argument("--kind", choices=["bpe", "pretrained", "symbols"], default="bpe")
    ap.add_argument("--n-symbols", type=int, default=0, help="kind symbols: symbol count")
    ap.add_argument("--corpus-dir", help="the corpus folder whose train split a BPE reads")
    ap.add_argument("--vocab-size", type=int, required=True)
    ap.add_argument("--min-frequency", type=int, default=2)
    ap.add_argument(
        "--train-bytes", type=int, default=TRAIN_BYTES, help="BPE: train on at most this text"
    )
    ap.add_argument("--name", help="tokenizer name or path (kind pretrained)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--log-every-s", type=float, default=10.0, help="progress line interval")
    args = ap.parse_args(argv)
    t0 = time.time()
    info: dict[str, Any] = {"kind": args.kind, "vocab_size": args.vocab_size}
    try:
        if args.kind == "bpe":
            if not args.corpus_dir:
                raise TokenizerError("--corpus-dir is required to train a BPE")
            progress = StageProgress("tokenizer sample", args.log_every_s)
            sample: dict[str, Any] = {}
            texts = sample_batches(args.corpus_dir, args.train_bytes, sample, progress)
            tok = train_bpe(texts, args.vocab_size, args.min_frequency)
            info |= {"min_frequency": args.min_frequency, **sample}
            mb = sample["sample_bytes"] / 1e6, sample["corpus_train_bytes"] / 1e6
            print(
                f"tokenizer: trained on {sample['sample_docs']:,} documents, {mb[0]:,.1f} MB "
                f"of {mb[1]:,.1f} MB of train text (tokenizer.train_bytes {args.train_bytes:,})"
            )
        elif args.kind == "symbols":
            if not 0 < args.n_symbols <= args.vocab_size - 2:
                raise TokenizerError(
                    f"tokenizer.vocab_size: {args.vocab_size} must be >= n_symbols + 2 "
                    f"({args.n_symbols + 2})"
                )
            tok = symbol_tokenizer(args.n_symbols)
            info["n_symbols"] = args.n_symbols
        else:
            tok = load_pretrained(args.name, args.vocab_size)
            info["name"] = args.name
    except (TokenizerError, DataError) as e:
        return failed("ladder tokenizer", e)
    info["wall_s"] = round(time.time() - t0, 3)
    save_tokenizer(tok, args.out_dir, info)
    print(f"tokenizer: {len(tok)} tokens ({args.kind}) in {time.time() - t0:.1f} s")
    if args.kind == "bpe" and len(tok) < args.vocab_size:
        print(f"note: the corpus supported only {len(tok)} of {args.vocab_size} BPE tokens")
    return 0


# ----------------------------------------------------------------------------- encoding

_ENCODER: dict[str, Any] = {}  # this process's tokenizer, dtype, EOS and open shard


def _init_encoder(backend_json: str | None, tokenizer_dir: str, dtype: str, eos: int) -> None:
    """Set up an encoding process: one core each (the pool is the parallelism), the
    tokenizer rebuilt from the parent's own (so ids are the ones it would give)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if backend_json is not None:
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(backend_json)
        batch = getattr(backend, "encode_batch_fast", backend.encode_batch)  # fast: no offsets

        def encode(texts: list[str]) -> list[list[int]]:
            return [e.ids for e in batch(texts, add_special_tokens=False)]

    else:  # a tokenizer without a Rust backend (rare): through transformers
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_dir)

        def encode(texts: list[str]) -> list[list[int]]:
            return tok(texts, add_special_tokens=False)["input_ids"]

    _ENCODER.clear()
    _ENCODER.update(encode=encode, dtype=np.dtype(dtype), eos=eos, path=None, parquet=None)


def _encode_row_group(task: tuple[str, int]) -> tuple[np.ndarray, int, int]:
    """(ids with EOS after each document, documents, UTF-8 bytes) of one row group."""
    path, rg = task
    if _ENCODER["path"] != path:
        _ENCODER.update(path=path, parquet=open_parquet(Path(path)))
    texts = _ENCODER["parquet"].read_row_group(rg, columns=["text"]).column(0).to_pylist()
    ids = _ENCODER["encode"](texts)
    for doc in ids:
        doc.append(_ENCODER["eos"])
    flat = np.fromiter(chain.from_iterable(ids), _ENCODER["dtype"], sum(map(len, ids)))
    return flat, len(ids), sum(len(t.encode("utf-8")) for t in texts)


@contextlib.contextmanager
def _encoders(workers: int, init: tuple) -> Iterator[Callable]:
    """An ordered map over row groups: this process alone, or a pool of `workers`."""
    if workers <= 1:
        _init_encoder(*init)
        yield map
        return
    import multiprocessing as mp

    # spawn: a clean process, whatever threads (pyarrow, tokenizers) this one started
    with mp.get_context("spawn").Pool(workers, _init_encoder, init) as pool:
        yield lambda fn, tasks: pool.imap(fn, tasks, chunksize=1)


def corpus_hash(stats: dict[str, Any]) -> str:
    """A hash of the corpus shards' contents, from their hashes in stats.json."""
    h = hashlib.sha256()
    for split in SPLITS:
        for shard in stats[split]["shards"]:
            h.update(f"{split}/{shard['file']}:{shard['sha256']}\n".encode())
    return h.hexdigest()[:16]


def _row_group_tasks(corpus_dir: str | os.PathLike) -> tuple[list, list]:
    """([(split, shard index)], [(its position in that list, parquet path, row group)]):
    one encoding task per row group, val first; a shard's row groups are consecutive, so
    its token file is written in order."""
    shards, tasks = [], []
    for split in ("val", "train"):
        for i, shard in enumerate(corpus_shards(corpus_dir, split)):
            shards.append((split, i))
            n_groups = open_parquet(shard["path"]).num_row_groups
            tasks += [(len(shards) - 1, str(shard["path"]), rg) for rg in range(n_groups)]
    return shards, tasks


def encode_corpus(
    tok,
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    workers: int = 1,
    log_every_s: float = 10.0,
) -> dict[str, Any]:
    """Encode every corpus shard to its token file in out_dir/shards/ (replaced
    atomically), row groups spread over `workers` processes; return meta.json's splits."""
    stats = corpus_stats(corpus_dir)
    dtype = np.uint16 if len(tok) <= 2**16 else np.uint32
    backend = getattr(tok, "backend_tokenizer", None)
    init = (backend.to_str() if backend is not None else None, tok.name_or_path,
            np.dtype(dtype).name, tok.eos_token_id)  # fmt: skip
    shards, tasks = _row_group_tasks(corpus_dir)
    total = sum(stats[s]["n_bytes"] for s in SPLITS)
    if backend is None or total < POOL_MIN_BYTES:
        workers = 1
    workers = max(1, min(workers, len(tasks)))
    splits = {s: {"n_tokens": 0, "n_bytes": 0, "n_docs": 0, "shards": []} for s in SPLITS}
    done = n_tokens = 0
    progress = StageProgress(f"encode ({workers} worker{'s' * (workers > 1)})", log_every_s)
    with atomic_dir(Path(out_dir) / TOKENS_SHARDS_DIR) as tmp, _encoders(workers, init) as imap:
        results = imap(_encode_row_group, [(path, rg) for _, path, rg in tasks])
        current, f, h, record = None, None, hashlib.sha256(), {}
        for (index, _, _), (flat, n_docs, n_bytes) in zip(tasks, results, strict=True):
            if index != current:
                if f is not None:
                    f.close()
                    record["sha256"] = h.hexdigest()  # the run store's key reads it
                split, i = shards[index]
                record = {"file": token_shard(split, i), "n_tokens": 0, "n_bytes": 0, "n_docs": 0}
                splits[split]["shards"].append(record)
                f, h = open(tmp / Path(record["file"]).name, "wb"), hashlib.sha256()
                current = index
            data = flat.tobytes()
            f.write(data)
            h.update(data)
            for entry in (record, splits[shards[index][0]]):
                entry["n_tokens"] += flat.size
                entry["n_docs"] += n_docs
                entry["n_bytes"] += n_bytes
            done += n_bytes
            n_tokens += flat.size
            rate = n_tokens / max(progress.elapsed(), 1e-9)
            progress.update(
                done, done / max(total, 1), f"{n_tokens:,} tokens, {rate:,.0f} tokens/s"
            )
        if f is not None:
            f.close()
            record["sha256"] = h.hexdigest()
    wall_s = progress.elapsed()
    return {
        "dtype": np.dtype(dtype).name,
        "corpus_sha256": corpus_hash(stats),
        **{k: stats[k] for k in ("entropy_nats_per_token",) if k in stats},  # synthetic: E's floor
        "encode": {
            "workers": workers,
            "wall_s": round(wall_s, 3),
            "tokens_per_s": round(n_tokens / max(wall_s, 1e-9)),
            "mb_per_s": round(done / 1e6 / max(wall_s, 1e-9), 3),
        },
        **splits,
    }


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


class OwnTokenizer:
    """A tokenizer this module built (kind bpe or symbols), read with `tokenizers` alone:
    the same backend, ids and special tokens AutoTokenizer gives, without importing
    transformers (and torch), which costs seconds per process."""

    def __init__(self, path: str | os.PathLike):
        from tokenizers import Tokenizer

        self.name_or_path = str(path)
        self.backend_tokenizer = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
        self.eos_token_id = self.backend_tokenizer.token_to_id(EOS)
        self.mask_token_id = self.backend_tokenizer.token_to_id(MASK)

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)


def load_for_encoding(path: str | os.PathLike):
    """Ladder's own tokenizers through `tokenizers` (OwnTokenizer), any other through
    AutoTokenizer."""
    info = Path(path) / TOKENIZER_SAMPLE_JSON
    kind = json.loads(info.read_text()).get("kind") if info.exists() else None
    if kind in ("bpe", "symbols") and (Path(path) / "tokenizer.json").exists():
        return OwnTokenizer(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def main_encode(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder encode", description="encode the corpus to shards")
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--corpus-dir", required=True, help="the corpus folder (shards + stats.json)")
    ap.add_argument("--out-dir", required=True, help="writes shards/ and meta.json (last)")
    ap.add_argument(
        "--workers", type=int, default=default_workers(), help="encoding processes (one core each)"
    )
    ap.add_argument("--log-every-s", type=float, default=10.0, help="progress line interval")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    (out / TOKENS_META_JSON).unlink(missing_ok=True)  # written last: its absence = not done
    tok = load_for_encoding(args.tokenizer_dir)
    try:
        encoded = encode_corpus(tok, args.corpus_dir, out, args.workers, args.log_every_s)
    except DataError as e:
        return failed("ladder encode", e)
    meta = {
        "dtype": encoded.pop("dtype"),
        "vocab_size": len(tok),
        "eos_id": tok.eos_token_id,
        "mask_id": tok.mask_token_id,
        "tokenizer": str(args.tokenizer_dir),
        **encoded,
    }
    info = Path(args.tokenizer_dir) / TOKENIZER_SAMPLE_JSON
    if info.exists():  # what the tokenizer was trained on
        meta["tokenizer_info"] = json.loads(info.read_text())
    for split in ("val", "train"):
        s = meta[split]
        print(
            f"{split}: {s['n_docs']} docs, {s['n_tokens']:,} tokens in {len(s['shards'])} "
            f"shard(s), {s['n_bytes'] / max(s['n_tokens'], 1):.2f} bytes/token",
            flush=True,
        )
    e = meta["encode"]
    print(
        f"encode: {e['wall_s']} s with {e['workers']} worker(s), {e['tokens_per_s']:,} tokens/s, "
        f"{e['mb_per_s']:.2f} MB/s"
    )
    write_json(out / TOKENS_META_JSON, meta)  # last: marks done
    return 0
