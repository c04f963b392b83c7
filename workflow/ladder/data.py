"""Corpus sources behind one interface, and a deterministic train/val split.

Sources (config `data.source`):
- `stdlib`: the Python standard library's own .py files (found with sysconfig): real
  text on every machine, no network. Its content depends on the Python version, so
  the corpus hash in tokens/meta.json tells two studies' corpora apart.
- `files`: local .txt (one document per file), .jsonl and .parquet globs, loaded with
  `datasets` so the code path is the one hub datasets take. Each file is checked first
  (`check_source_file`): text must be UTF-8 (never re-decoded), every jsonl line a JSON
  object with the text field, so a bad file is one error naming the file, line and byte.
- `hf`: `datasets.load_dataset(name, config, split=, revision=)`; `name` may also be a
  local directory (data files, or a `save_to_disk` folder), which is how tests run it.
- `synthetic`: a first-order Markov chain over `n_symbols` symbols whose every row is
  a (seeded) permutation of one Zipf distribution, so the entropy rate is exactly that
  distribution's entropy. Symbols are written as private-use characters, one token
  each (tokenizer kind `symbols`); train and val are independent chains.

The split assigns each document by a hash of its text, so it does not depend on
document order or on the byte cap, and duplicates never straddle train and val.
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import json
import os
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ladder.config import DataConfig, HFConfig, SyntheticConfig, load_section
from ladder.errors import ConfigError, DataError

FILE_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def stdlib_documents() -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in root.rglob("*.py") if "site-packages" not in p.relative_to(root).parts
    )
    if not files:
        raise DataError(f"data.source stdlib: no .py files under {root}")
    for path in files:
        # a few stdlib test files hold deliberately invalid UTF-8; keep them, replaced
        yield path.read_bytes().decode("utf-8", errors="replace")


def _text_column(ds, field: str, where: str):
    if field not in ds.column_names:
        raise DataError(
            f"{where}: no text field '{field}' (data.text_field); "
            f"columns are: {', '.join(ds.column_names)}"
        )
    return ds


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


def file_documents(patterns: tuple[str, ...] | list[str], field: str) -> Iterator[str]:
    import glob

    import datasets

    by_builder: dict[str, list[str]] = {}
    for pattern in patterns:
        paths = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not paths:
            raise DataError(f"data.paths: '{pattern}' matches no file")
        for p in paths:
            builder = FILE_BUILDERS.get(Path(p).suffix.lower())
            if builder is None:
                raise DataError(
                    f"data.paths: {p} has an unsupported extension; "
                    f"allowed: {', '.join(FILE_BUILDERS)}"
                )
            check_source_file(p, field)
            by_builder.setdefault(builder, []).append(p)
    for builder, paths in by_builder.items():
        kwargs = {"sample_by": "document"} if builder == "text" else {}
        try:
            ds = datasets.load_dataset(builder, data_files=paths, split="train", **kwargs)
        except Exception as e:  # what the checks above did not foresee, still on one line
            cause = e.__cause__ or e
            first = (str(cause).splitlines() or [""])[0]
            raise DataError(
                f"data.paths: the {builder} files ({', '.join(paths[:3])}"
                f"{', ...' if len(paths) > 3 else ''}) could not be read: "
                f"{type(cause).__name__}: {first}"
            ) from None
        col = "text" if builder == "text" else field
        yield from _text_column(ds, col, f"data.paths ({builder} files)")[col]


def hf_documents(hf: HFConfig, field: str, streaming: bool) -> Iterator[str]:
    import datasets

    name = hf.name
    local = Path(name).expanduser()
    if (local / "dataset_info.json").exists() or (local / "dataset_dict.json").exists():
        ds = datasets.load_from_disk(str(local))  # a save_to_disk folder
        if isinstance(ds, datasets.DatasetDict):
            if hf.split not in ds:
                raise DataError(f"data.hf.split: '{hf.split}' not in {name}: {list(ds)}")
            ds = ds[hf.split]
    else:
        ds = datasets.load_dataset(
            str(local) if local.exists() else name,
            hf.config,
            split=hf.split,
            revision=hf.revision,
            streaming=streaming,
        )
    if streaming and not isinstance(ds, datasets.Dataset):
        first = next(iter(ds), None)
        if first is not None and field not in first:
            raise DataError(
                f"data.hf: no text field '{field}' (data.text_field) in {name}; "
                f"fields are: {', '.join(first)}"
            )
        for row in ds:
            yield row[field]
        return
    yield from _text_column(ds, field, f"data.hf ({name})")[field]


SYMBOL_BASE = 0xE000  # Unicode private-use area: symbol k is chr(SYMBOL_BASE + k)


def zipf_probs(n_symbols: int, exponent: float) -> np.ndarray:
    p = np.arange(1, n_symbols + 1, dtype=np.float64) ** -exponent
    return p / p.sum()


def entropy_nats(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def markov_chain(perms: np.ndarray, probs: np.ndarray, n_tokens: int, rng) -> str:
    """Row i of the transition matrix is `probs` permuted by perms[i]: every row has the same
    probabilities, so the rank drawn at each step is i.i.d. and the entropy rate is
    H(probs) whatever the state distribution."""
    ranks = rng.choice(len(probs), size=n_tokens, p=probs).tolist()
    table = perms.tolist()
    state = int(rng.integers(len(probs)))
    out = []
    for r in ranks:
        state = table[state][r]
        out.append(state)
    return "".join(chr(SYMBOL_BASE + s) for s in out)


def synthetic_corpus(syn: SyntheticConfig, seed: int) -> tuple[list[str], list[str], float]:
    """(train, val, entropy in nats/token): two independent chains of one source, each
    one document, so only their first symbol breaks the rate."""
    n = syn.n_symbols
    perms = np.argsort(np.random.default_rng(seed).random((n, n)), axis=1)
    probs = zipf_probs(n, syn.zipf_exponent)
    train = markov_chain(perms, probs, syn.train_tokens, np.random.default_rng([seed, 0]))
    val = markov_chain(perms, probs, syn.val_tokens, np.random.default_rng([seed, 1]))
    return [train], [val], entropy_nats(probs)


def documents(data: DataConfig) -> Iterator[str]:
    """The documents of `data.source`, in a deterministic order."""
    source = data.source
    if source == "stdlib":
        return stdlib_documents()
    if source == "files":
        return file_documents(data.paths, data.text_field)
    if source == "synthetic":
        raise DataError("data.source synthetic has no document stream; use build_corpus")
    if source == "hf":
        # a byte cap means we only need the head of the dataset: stream it
        return hf_documents(data.hf, data.text_field, streaming=bool(data.max_bytes))
    raise DataError(
        f"data.source: unknown source '{source}'; allowed: stdlib, files, hf, synthetic"
    )


def is_val(text: str, val_fraction: float, seed: int) -> bool:
    """Deterministic split: a document goes to val if its keyed hash falls below the fraction."""
    h = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(h, "big") < val_fraction * 2**64


def split_corpus(
    docs: Iterator[str], val_fraction: float, seed: int, max_bytes: int | None, min_doc_bytes: int
) -> tuple[list[str], list[str], dict[str, int]]:
    train, val = [], []
    stats = {"n_docs": 0, "n_bytes": 0, "skipped_short": 0, "capped": 0}
    for text in docs:
        if not isinstance(text, str):
            raise DataError(f"data.text_field holds a {type(text).__name__}, not text")
        n = len(text.encode("utf-8"))
        if n < min_doc_bytes:
            stats["skipped_short"] += 1
            continue
        if max_bytes is not None and stats["n_bytes"] + n > max_bytes:
            stats["capped"] = 1
            break
        stats["n_docs"] += 1
        stats["n_bytes"] += n
        (val if is_val(text, val_fraction, seed) else train).append(text)
    return train, val, stats


def write_parquet_atomic(path: Path, texts: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(pa.table({"text": pa.array(texts, pa.large_string())}), tmp)
    os.replace(tmp, path)


def build_corpus(data: DataConfig, seed: int, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write train.parquet, val.parquet and stats.json (counts; the entropy if synthetic)."""
    t0 = time.time()
    if data.source == "synthetic":
        train, val, entropy = synthetic_corpus(data.synthetic, seed)
        n_bytes = sum(len(t.encode("utf-8")) for t in train + val)
        stats = {"n_docs": 2, "n_bytes": n_bytes, "skipped_short": 0, "capped": 0}
        stats["entropy_nats_per_token"] = entropy
    else:
        train, val, stats = split_corpus(
            documents(data), data.val_fraction, seed, data.max_bytes, data.min_doc_bytes
        )
    if not train or not val:
        raise DataError(
            f"data: the split left train={len(train)} and val={len(val)} documents out of "
            f"{stats['n_docs']}; provide more documents or change data.val_fraction"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(out / "val.parquet", val)
    write_parquet_atomic(out / "train.parquet", train)
    stats.update(n_train_docs=len(train), n_val_docs=len(val), wall_s=round(time.time() - t0, 3))
    tmp = out / f".stats.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(stats, indent=2) + "\n")
    os.replace(tmp, out / "stats.json")
    return stats


def read_texts(path: str | os.PathLike) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["text"]).column("text").to_pylist()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder corpus", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-json", required=True, help="the study's `data` section as JSON (defaults filled)"
    )
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--out-dir", required=True, help="writes train/val.parquet, stats.json")
    args = ap.parse_args(argv)
    try:
        data = load_section("data", json.loads(args.data_json))
        stats = build_corpus(data, args.seed, args.out_dir)
    except ConfigError as e:
        print(f"ladder corpus: config error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"ladder corpus: data error: {e}", file=sys.stderr)
        return 2
    if stats["skipped_short"]:
        print(f"skipped {stats['skipped_short']} documents shorter than data.min_doc_bytes")
    if stats["capped"]:
        print("stopped at data.max_bytes")
    if "entropy_nats_per_token" in stats:
        print(f"synthetic source: entropy {stats['entropy_nats_per_token']:.6f} nats/token")
    print(
        f"corpus: {stats['n_docs']} documents, {stats['n_bytes'] / 1e6:.2f} MB -> "
        f"{stats['n_train_docs']} train / {stats['n_val_docs']} val in {stats['wall_s']} s"
    )
    return 0
