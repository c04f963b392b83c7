"""Corpus sources behind one interface, a deterministic train/val split, parquet shards.

Sources (config `data.source`), each a stream of documents (memory holds one batch,
never the corpus):
- `stdlib`: the Python standard library's own .py files (found with sysconfig): real
  text on every machine, no network. Its content depends on the Python version, so
  the corpus hash in tokens/meta.json tells two studies' corpora apart.
- `files`: local .txt (one document per file), .jsonl / .json (JSON lines, or one
  top-level array of objects) and .parquet globs, read here file by file (no Arrow-cache
  copy). A bad file is a one-line error naming the file and the line or byte.
- `hf`: `datasets.load_dataset(name, config, split=, revision=, streaming=True)`; `name`
  may also be a local directory (data files, or a `save_to_disk` folder, read in batches
  from its memory-mapped Arrow files), which is how tests run it.
- `synthetic`: a first-order Markov chain over `n_symbols` symbols whose every row is
  a (seeded) permutation of one Zipf distribution, so the entropy rate is exactly that
  distribution's entropy. Symbols are written as private-use characters, one token
  each (tokenizer kind `symbols`); train and val are independent chains, one document
  each (so their memory grows with `synthetic.train_tokens`: it is a test source).

The split assigns each document by a hash of its text, so it does not depend on
document order or on the byte cap, and duplicates never straddle train and val.

The corpus (docs/design.md, Artifacts) is one folder, written atomically: each split's
documents in order as `<split>-00000.parquet`, ... of at most `data.shard_bytes` of text
(one row group per ~1 MiB batch: the unit later stages read and encode in parallel), and
stats.json, which lists the shards with their counts and hashes.
"""

from __future__ import annotations

import argparse
import codecs
import copy
import hashlib
import json
import os
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ladder.artifacts import CORPUS_STATS_JSON, atomic_dir, corpus_shard, write_json
from ladder.errors import ConfigError, DataError, failed
from ladder.progress import StageProgress

if TYPE_CHECKING:  # the config (jsonschema, yaml) is imported by `main` only: encoders start fast
    from ladder.config import DataConfig, HFConfig, SyntheticConfig

FILE_KINDS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
SPLITS = ("train", "val")
CORPUS_BATCH_BYTES = 1 << 20  # text per parquet row group: what a reader holds at once
READ_BATCH_ROWS = 1024  # rows per batch when reading parquet / Arrow sources


@dataclass
class Meter:
    """How far a source has been read, in its own bytes (file sizes), when it knows."""

    total: int | None = None
    done: int = 0

    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None


# ----------------------------------------------------------------------------- sources


def stdlib_documents(meter: Meter | None = None) -> Iterator[str]:
    meter = meter or Meter()
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "site-packages"]  # installed packages: not stdlib
        files += [Path(folder) / n for n in names if n.endswith(".py")]
    files.sort()
    if not files:
        raise DataError(f"data.source stdlib: no .py files under {root}")
    meter.total = sum(p.stat().st_size for p in files)
    for path in files:
        raw = path.read_bytes()
        meter.done += len(raw)
        # a few stdlib test files hold deliberately invalid UTF-8; keep them, replaced
        yield raw.decode("utf-8", errors="replace")


def _decode(raw: bytes, path: Path, where: str, offset: int = 0) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: {where}not valid UTF-8 at byte {offset + e.start} ({e.reason})"
        ) from None


def _text_of(row: Any, field: str, path: Path, where: str) -> str:
    if not isinstance(row, dict):
        raise DataError(f"{path}: {where}: expected a JSON object, got {type(row).__name__}")
    if field not in row:
        raise DataError(
            f"{path}: {where}: no text field '{field}' (data.text_field); "
            f"fields are: {', '.join(row)}"
        )
    text = row[field]
    if not isinstance(text, str):
        raise DataError(f"{path}: {where}: field '{field}' holds a {type(text).__name__}, not text")
    return text


def _txt_document(path: Path, meter: Meter) -> str:
    raw = path.read_bytes()
    meter.done += len(raw)
    # universal newlines, as a file opened in text mode reads (and `datasets` did)
    return _decode(raw, path, "").replace("\r\n", "\n").replace("\r", "\n")


def _json_lines(path: Path, field: str, meter: Meter) -> Iterator[str]:
    offset = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            meter.done += len(raw)
            where = f"line {lineno}"
            line = _decode(raw, path, f"{where}: ", offset)
            offset += len(raw)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}: {where}: invalid JSON: {e.msg} (column {e.colno})"
                ) from None
            yield _text_of(row, field, path, where)


def _json_documents(path: Path, field: str, meter: Meter) -> Iterator[str]:
    """A .json file: one top-level array of objects (read whole), else JSON lines."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if not head.startswith(b"["):
        yield from _json_lines(path, field, meter)
        return
    raw = path.read_bytes()
    try:
        rows = json.loads(_decode(raw, path, ""))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: line {e.lineno}: invalid JSON: {e.msg} (column {e.colno})"
        ) from None
    meter.done += len(raw)
    for i, row in enumerate(rows):
        yield _text_of(row, field, path, f"item {i}")


def _parquet_documents(path: Path, field: str, meter: Meter) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    names = pf.schema_arrow.names
    if field not in names:
        raise DataError(
            f"{path}: no text field '{field}' (data.text_field); columns are: {', '.join(names)}"
        )
    size, rows = path.stat().st_size, max(pf.metadata.num_rows, 1)
    for batch in pf.iter_batches(batch_size=READ_BATCH_ROWS, columns=[field]):
        meter.done += size * batch.num_rows // rows
        yield from batch.column(0).to_pylist()


# ----------------------------------------------------------------------------- file checks

READ_CHUNK = 1 << 20
REENCODE = "re-encode it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE`)"


def _not_utf8(path: str | os.PathLike, where: str, at: int, err: UnicodeDecodeError) -> DataError:
    bad = err.object[err.start : err.start + 4]
    return DataError(f"{path}{where}: not UTF-8 at byte {at} ({bad!r}...); {REENCODE}")


def check_text_file(path: str | os.PathLike) -> None:
    """A text corpus file is UTF-8 text: a DataError names the file and the byte offset of
    the first NUL (a binary file) or invalid UTF-8 sequence. Reads in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            nul = chunk.find(b"\0")
            if nul >= 0:
                raise DataError(f"{path}: NUL byte at byte {offset + nul}: a binary file, not text")
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the chunk
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise _not_utf8(path, "", offset - pending + e.start, e) from None
            offset += len(chunk)
        pending = len(decoder.getstate()[0])
        if pending:
            raise DataError(
                f"{path}: not UTF-8 at byte {offset - pending} (a character cut off by the "
                f"end of the file); {REENCODE}"
            )


def parse_jsonl_line(raw: bytes, field: str, path: str | os.PathLike, lineno: int, offset: int):
    """The text of one jsonl line (None for a blank line); a DataError names the file and
    line: not UTF-8 (with the byte offset in the file), invalid JSON (with the column),
    not an object, no `field`, or a field that is not text."""
    where = f", line {lineno}"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, where, offset + e.start, e) from None
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        why = e.msg.removesuffix(" at")
        if why == "Invalid control character" and e.pos >= len(line.rstrip("\r\n")):
            why = "the line ends inside a string (a closing quote missing?)"
        raise DataError(f"{path}{where}: invalid JSON at column {e.colno}: {why}") from None
    if not isinstance(obj, dict):
        raise DataError(
            f"{path}{where}: a JSON {type(obj).__name__}, not an object with a '{field}' field"
        )
    if field not in obj:
        raise DataError(
            f"{path}{where}: no text field '{field}' (data.text_field); "
            f"fields are: {', '.join(map(str, obj))}"
        )
    if not isinstance(obj[field], str):
        raise DataError(
            f"{path}{where}: field '{field}' holds a JSON {type(obj[field]).__name__}, not text"
        )
    return obj[field]


def check_jsonl_file(path: str | os.PathLike, field: str) -> None:
    """Every line of a jsonl file parses (`parse_jsonl_line`)."""
    offset = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            parse_jsonl_line(raw, field, path, lineno, offset)
            offset += len(raw)


def check_parquet_file(path: str | os.PathLike, field: str) -> None:
    """A parquet file whose schema reads and holds the text column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable parquet file ({first})") from None
    if field not in names:
        raise DataError(
            f"{path}: no text field '{field}' (data.text_field); columns are: {', '.join(names)}"
        )


def check_source_file(path: str | os.PathLike, field: str) -> None:
    """Check one data.paths file by its extension, before any library reads it."""
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        check_jsonl_file(path, field)
    elif suffix == ".parquet":
        check_parquet_file(path, field)
    else:  # .txt, .json
        check_text_file(path)


def file_documents(
    patterns: tuple[str, ...] | list[str], field: str, meter: Meter | None = None
) -> Iterator[str]:
    """Every matched file's documents: text files first, then JSON, then parquet (in the
    order each kind is first matched), each kind's files in pattern-then-name order."""
    import glob

    meter = meter or Meter()
    by_kind: dict[str, list[Path]] = {}
    for pattern in patterns:
        paths = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not paths:
            raise DataError(f"data.paths: '{pattern}' matches no file")
        for p in paths:
            kind = FILE_KINDS.get(Path(p).suffix.lower())
            if kind is None:
                raise DataError(
                    f"data.paths: {p} has an unsupported extension; "
                    f"allowed: {', '.join(FILE_KINDS)}"
                )
            check_source_file(p, field)  # one clear error per bad file, before any reading
            by_kind.setdefault(kind, []).append(Path(p))
    meter.total = sum(p.stat().st_size for paths in by_kind.values() for p in paths)
    for kind, paths in by_kind.items():
        for path in paths:
            if kind == "text":
                yield _txt_document(path, meter)
            elif kind == "json":
                yield from _json_documents(path, field, meter)
            else:
                yield from _parquet_documents(path, field, meter)


def hf_documents(hf: HFConfig, field: str) -> Iterator[str]:
    """A hub dataset (or local data files) streamed; a save_to_disk folder read in batches."""
    import datasets

    name = hf.name
    local = Path(name).expanduser()
    if (local / "dataset_info.json").exists() or (local / "dataset_dict.json").exists():
        ds = datasets.load_from_disk(str(local))  # memory-mapped Arrow files: no copy
        if isinstance(ds, datasets.DatasetDict):
            if hf.split not in ds:
                raise DataError(f"data.hf.split: '{hf.split}' not in {name}: {list(ds)}")
            ds = ds[hf.split]
        if field not in ds.column_names:
            raise DataError(
                f"data.hf ({name}): no text field '{field}' (data.text_field); "
                f"columns are: {', '.join(ds.column_names)}"
            )
        for batch in ds.select_columns([field]).iter(batch_size=READ_BATCH_ROWS):
            yield from batch[field]
        return
    ds = datasets.load_dataset(
        str(local) if local.exists() else name,
        hf.config,
        split=hf.split,
        revision=hf.revision,
        streaming=True,  # no Arrow-cache copy of the dataset: rows flow through
    )
    rows = iter(ds)
    first = next(rows, None)
    if first is None:
        return
    if field not in first:
        raise DataError(
            f"data.hf: no text field '{field}' (data.text_field) in {name}; "
            f"fields are: {', '.join(first)}"
        )
    yield first[field]
    for row in rows:
        yield row[field]


SYMBOL_BASE = 0xE000  # Unicode private-use area: symbol k is chr(SYMBOL_BASE + k)
CHAIN_CHUNK = 1 << 20  # symbols drawn at once


def zipf_probs(n_symbols: int, exponent: float) -> np.ndarray:
    p = np.arange(1, n_symbols + 1, dtype=np.float64) ** -exponent
    return p / p.sum()


def entropy_nats(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def markov_chain(perms: np.ndarray, probs: np.ndarray, n_tokens: int, rng) -> str:
    """Row i of the transition matrix is `probs` permuted by perms[i]: every row has the same
    probabilities, so the rank drawn at each step is i.i.d. and the entropy rate is
    H(probs) whatever the state distribution.

    The draws are those of `rng.choice(n, n_tokens, p=probs)` then `rng.integers(n)` (the
    start), made a chunk at a time: the start comes from a copy of the generator advanced
    past the n_tokens uniforms that `choice` consumes."""
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    start = copy.deepcopy(rng)
    start.bit_generator.advance(n_tokens)  # one 64-bit draw per uniform double
    state = int(start.integers(len(probs)))
    table = perms.tolist()
    pieces = []
    for lo in range(0, n_tokens, CHAIN_CHUNK):
        ranks = cdf.searchsorted(rng.random(min(CHAIN_CHUNK, n_tokens - lo)), side="right")
        out = []
        for r in ranks.tolist():
            state = table[state][r]
            out.append(state)
        pieces.append("".join(map(chr, (np.asarray(out) + SYMBOL_BASE).tolist())))
    return "".join(pieces)


def synthetic_corpus(syn: SyntheticConfig, seed: int) -> tuple[list[str], list[str], float]:
    """(train, val, entropy in nats/token): two independent chains of one source, each
    one document, so only their first symbol breaks the rate."""
    n = syn.n_symbols
    perms = np.argsort(np.random.default_rng(seed).random((n, n)), axis=1)
    probs = zipf_probs(n, syn.zipf_exponent)
    train = markov_chain(perms, probs, syn.train_tokens, np.random.default_rng([seed, 0]))
    val = markov_chain(perms, probs, syn.val_tokens, np.random.default_rng([seed, 1]))
    return [train], [val], entropy_nats(probs)


def documents(data: DataConfig, meter: Meter | None = None) -> Iterator[str]:
    """The documents of `data.source`, in a deterministic order, as a stream. `meter`
    (optional) follows how far the source has been read, for progress lines."""
    source = data.source
    if source == "stdlib":
        return stdlib_documents(meter)
    if source == "files":
        return file_documents(data.paths, data.text_field, meter)
    if source == "synthetic":
        raise DataError("data.source synthetic has no document stream; use build_corpus")
    if source == "hf":
        return hf_documents(data.hf, data.text_field)
    raise DataError(
        f"data.source: unknown source '{source}'; allowed: stdlib, files, hf, synthetic"
    )


# ----------------------------------------------------------------------------- split


def _is_val_bytes(raw: bytes, val_fraction: float, key: bytes) -> bool:
    h = hashlib.blake2b(raw, digest_size=8, key=key).digest()
    return int.from_bytes(h, "big") < val_fraction * 2**64


def new_stats() -> dict[str, int]:
    return {"n_docs": 0, "n_bytes": 0, "skipped_short": 0, "capped": 0}


def split_documents(
    docs: Iterator[str],
    val_fraction: float,
    seed: int,
    max_bytes: int | None,
    min_doc_bytes: int,
    stats: dict[str, int],
) -> Iterator[tuple[str, str, int]]:
    """(split, text, UTF-8 bytes) of each kept document, in source order, counting in
    `stats`; stops before the document that would pass `max_bytes`."""
    key = str(seed).encode()
    for text in docs:
        if not isinstance(text, str):
            raise DataError(f"data.text_field holds a {type(text).__name__}, not text")
        raw = text.encode("utf-8")
        n = len(raw)
        if n < min_doc_bytes:
            stats["skipped_short"] += 1
            continue
        if max_bytes is not None and stats["n_bytes"] + n > max_bytes:
            stats["capped"] = 1
            break
        stats["n_docs"] += 1
        stats["n_bytes"] += n
        yield ("val" if _is_val_bytes(raw, val_fraction, key) else "train"), text, n


# ----------------------------------------------------------------------------- shards


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ShardWriter:
    """One split's documents, in order, as `<split>-00000.parquet`, ... in `out`: a row
    group per batch of ~`batch_bytes` of text (all that is held in memory), a new shard
    when the next document would pass `shard_bytes`. `close()` lists the shards."""

    def __init__(
        self, out: Path, split: str, shard_bytes: int, batch_bytes: int = CORPUS_BATCH_BYTES
    ):
        self.out, self.split = Path(out), split
        self.shard_bytes, self.batch_bytes = shard_bytes, batch_bytes
        self.shards: list[dict[str, Any]] = []
        self._writer = None
        self._batch: list[str] = []
        self._held = self._docs = self._bytes = 0  # batch bytes; shard docs and bytes

    def add(self, text: str, n_bytes: int) -> None:
        if self._docs and self._bytes + n_bytes > self.shard_bytes:
            self._close_shard()
        self._batch.append(text)
        self._held += n_bytes
        self._docs += 1
        self._bytes += n_bytes
        if self._held >= self.batch_bytes:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._batch:
            return
        if self._writer is None:
            path = self.out / corpus_shard(self.split, len(self.shards))
            schema = pa.schema([("text", pa.large_string())])
            self._writer = pq.ParquetWriter(path, schema, use_dictionary=False)
        table = pa.table({"text": pa.array(self._batch, pa.large_string())})
        self._writer.write_table(table, row_group_size=len(self._batch))
        self._batch, self._held = [], 0

    def _close_shard(self) -> None:
        self._flush()
        self._writer.close()
        self._writer = None
        name = corpus_shard(self.split, len(self.shards))
        self.shards.append(
            {
                "file": name,
                "n_docs": self._docs,
                "n_bytes": self._bytes,
                "sha256": file_sha256(self.out / name),
            }
        )
        self._docs = self._bytes = 0

    def close(self) -> list[dict[str, Any]]:
        if self._docs:
            self._close_shard()
        return self.shards


def _fraction(meter: Meter, n_bytes: int, max_bytes: int | None) -> float | None:
    """How far the corpus stage is: the source read, or the byte cap filled, if further."""
    parts = [f for f in (meter.fraction(), n_bytes / max_bytes if max_bytes else None) if f]
    return max(parts) if parts else None


def build_corpus(
    data: DataConfig, seed: int, out_dir: str | os.PathLike, log_every_s: float = 10.0
) -> dict[str, Any]:
    """Stream the source through the split into the corpus folder `out_dir` (replaced
    atomically): each split's parquet shards and stats.json (counts, the shards; the
    entropy if synthetic)."""
    t0 = time.time()
    progress = StageProgress("corpus", log_every_s)
    with atomic_dir(out_dir) as tmp:
        writers = {s: ShardWriter(tmp, s, data.shard_bytes) for s in SPLITS}
        if data.source == "synthetic":
            train, val, entropy = synthetic_corpus(data.synthetic, seed)
            stats = new_stats() | {"n_docs": 2}
            for split, text in (("train", train[0]), ("val", val[0])):
                n = len(text.encode("utf-8"))
                writers[split].add(text, n)
                stats["n_bytes"] += n
            stats["entropy_nats_per_token"] = entropy
        else:
            stats, meter = new_stats(), Meter()
            docs = documents(data, meter)
            args = (data.val_fraction, seed, data.max_bytes, data.min_doc_bytes, stats)
            for split, text, n in split_documents(docs, *args):
                writers[split].add(text, n)
                progress.update(
                    stats["n_bytes"],
                    _fraction(meter, stats["n_bytes"], data.max_bytes),
                    f"{stats['n_docs']:,} docs",
                )
        shards = {s: w.close() for s, w in writers.items()}
        counts = {s: sum(x["n_docs"] for x in shards[s]) for s in SPLITS}
        if not counts["train"] or not counts["val"]:
            raise DataError(
                f"data: the split left train={counts['train']} and val={counts['val']} "
                f"documents out of {stats['n_docs']}; provide more documents or change "
                "data.val_fraction"
            )
        stats.update(
            n_train_docs=counts["train"],
            n_val_docs=counts["val"],
            wall_s=round(time.time() - t0, 3),
            shard_bytes=data.shard_bytes,
        )
        for s in SPLITS:
            stats[s] = {
                "n_docs": counts[s],
                "n_bytes": sum(x["n_bytes"] for x in shards[s]),
                "shards": shards[s],
            }
        write_json(tmp / CORPUS_STATS_JSON, stats)
    return stats


# ----------------------------------------------------------------------------- reading


def corpus_stats(corpus_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(corpus_dir) / CORPUS_STATS_JSON
    if not path.exists():
        raise DataError(f"{path} does not exist; run the corpus stage first")
    stats = json.loads(path.read_text())
    if not all(isinstance(stats.get(s), dict) and "shards" in stats[s] for s in SPLITS):
        raise DataError(f"{path} lists no shards; rerun the corpus stage")
    return stats


def corpus_shards(corpus_dir: str | os.PathLike, split: str) -> list[dict[str, Any]]:
    """The split's shards in order, from stats.json; each with its `path`."""
    return [
        s | {"path": Path(corpus_dir) / s["file"]}
        for s in corpus_stats(corpus_dir)[split]["shards"]
    ]


def open_parquet(path: Path):
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError(f"{path} does not exist; rerun the corpus stage")
    try:
        return pq.ParquetFile(path)
    except Exception as e:  # ArrowInvalid, OSError, ...: a truncated or foreign file
        raise DataError(f"{path}: not a readable parquet shard ({e})") from None


def read_batches(corpus_dir: str | os.PathLike, split: str) -> Iterator[list[str]]:
    """The split's documents in order, one row group (~1 MiB of text) at a time."""
    for shard in corpus_shards(corpus_dir, split):
        pf = open_parquet(shard["path"])
        for rg in range(pf.num_row_groups):
            yield pf.read_row_group(rg, columns=["text"]).column(0).to_pylist()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder corpus", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-json", required=True, help="the study's `data` section as JSON (defaults filled)"
    )
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument(
        "--out-dir", required=True, help="the corpus folder (replaced): shards + stats.json"
    )
    ap.add_argument("--log-every-s", type=float, default=10.0, help="progress line interval")
    args = ap.parse_args(argv)
    from ladder.config import load_section

    try:
        data = load_section("data", json.loads(args.data_json))
        stats = build_corpus(data, args.seed, args.out_dir, args.log_every_s)
    except (ConfigError, DataError) as e:
        return failed("ladder corpus", e)
    if stats["skipped_short"]:
        print(f"skipped {stats['skipped_short']} documents shorter than data.min_doc_bytes")
    if stats["capped"]:
        print("stopped at data.max_bytes")
    if "entropy_nats_per_token" in stats:
        print(f"synthetic source: entropy {stats['entropy_nats_per_token']:.6f} nats/token")
    n_shards = {s: len(stats[s]["shards"]) for s in SPLITS}
    print(
        f"corpus: {stats['n_docs']} documents, {stats['n_bytes'] / 1e6:.2f} MB -> "
        f"{stats['n_train_docs']} train / {stats['n_val_docs']} val "
        f"({n_shards['train']} + {n_shards['val']} shards) in {stats['wall_s']} s, "
        f"{stats['n_bytes'] / 1e6 / max(stats['wall_s'], 1e-9):.1f} MB/s"
    )
    return 0
