"""Train a byte-level BPE (or load a named tokenizer) and encode the corpus to shards.

Outputs follow DESIGN.md: tokenizer/ loads with `AutoTokenizer.from_pretrained`;
tokens/{train,val}.bin are flat uint16 (vocab <= 65536) or uint32 ids with every
document followed by EOS; tokens/meta.json holds dtype, counts, and the UTF-8 byte
count of each split so evaluation can report bits per byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ladder.artifacts import write_text
from ladder.data import read_texts

EOS, MASK = "<|endoftext|>", "<|mask|>"
ENCODE_BATCH_DOCS = 1000


class TokenizerError(ValueError):
    """A tokenizer that cannot serve the study: the message says which key to change."""


def train_bpe(texts: list[str], vocab_size: int, min_frequency: int):
    """A GPT-2-style byte-level BPE: every byte is in the alphabet, so any text round-trips."""
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
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return _hf_tokenizer(tok)


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


def save_tokenizer(tok, out_dir: str | os.PathLike) -> None:
    """save_pretrained into a temp folder, then rename, so a crash leaves no half folder."""
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tok.save_pretrained(str(tmp))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)


def main_tokenizer(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder tokenizer", description="train or load a tokenizer")
    ap.add_argument("--kind", choices=["bpe", "pretrained", "symbols"], default="bpe")
    ap.add_argument("--n-symbols", type=int, default=0, help="kind symbols: symbol count")
    ap.add_argument("--corpus", help="train.parquet to train a BPE on (kind bpe)")
    ap.add_argument("--vocab-size", type=int, required=True)
    ap.add_argument("--min-frequency", type=int, default=2)
    ap.add_argument("--name", help="tokenizer name or path (kind pretrained)")
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        if args.kind == "bpe":
            if not args.corpus:
                raise TokenizerError("--corpus is required to train a BPE")
            texts = read_texts(args.corpus)
            tok = train_bpe(texts, args.vocab_size, args.min_frequency)
        elif args.kind == "symbols":
            if not 0 < args.n_symbols <= args.vocab_size - 2:
                raise TokenizerError(
                    f"tokenizer.vocab_size: {args.vocab_size} must be >= n_symbols + 2 "
                    f"({args.n_symbols + 2})"
                )
            tok = symbol_tokenizer(args.n_symbols)
        else:
            tok = load_pretrained(args.name, args.vocab_size)
    except TokenizerError as e:
        print(f"ladder tokenizer: error: {e}", file=sys.stderr)
        return 2
    save_tokenizer(tok, args.out_dir)
    print(f"tokenizer: {len(tok)} tokens ({args.kind}) in {time.time() - t0:.1f} s")
    if args.kind == "bpe" and len(tok) < args.vocab_size:
        print(f"note: the corpus supported only {len(tok)} of {args.vocab_size} BPE tokens")
    return 0


def encode_split(tok, texts: list[str], out_path: Path, dtype, log_every_s: float = 5.0) -> dict:
    """Encode documents in batches straight to disk; report documents and tokens per second."""
    eos = tok.eos_token_id
    backend = tok.backend_tokenizer if hasattr(tok, "backend_tokenizer") else None
    tmp = out_path.with_name(f".{out_path.name}.tmp{os.getpid()}")
    n_tokens = n_bytes = 0
    t0 = last = time.time()
    with open(tmp, "wb") as f:
        for start in range(0, len(texts), ENCODE_BATCH_DOCS):
            batch = texts[start : start + ENCODE_BATCH_DOCS]
            if backend is not None:  # the Rust tokenizer encodes a batch on all cores
                ids = [e.ids for e in backend.encode_batch(batch, add_special_tokens=False)]
            else:
                ids = tok(batch, add_special_tokens=False)["input_ids"]
            flat = np.fromiter(
                (i for doc in ids for i in (*doc, eos)), dtype=np.int64, count=-1
            ).astype(dtype)
            f.write(flat.tobytes())
            n_tokens += flat.size
            n_bytes += sum(len(t.encode("utf-8")) for t in batch)
            now = time.time()
            if now - last >= log_every_s:
                done = start + len(batch)
                print(
                    f"  {out_path.name}: {done}/{len(texts)} docs, {n_tokens:,} tokens, "
                    f"{done / (now - t0):,.0f} docs/s, {n_tokens / (now - t0):,.0f} tokens/s",
                    flush=True,
                )
                last = now
    os.replace(tmp, out_path)
    wall_s = time.time() - t0
    return {
        "n_tokens": n_tokens,
        "n_bytes": n_bytes,
        "n_docs": len(texts),
        "wall_s": round(wall_s, 3),
        "tokens_per_s": round(n_tokens / max(wall_s, 1e-9)),
    }


def file_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def main_encode(argv: list[str] | None = None) -> int:
    from transformers import AutoTokenizer

    ap = argparse.ArgumentParser(prog="ladder encode", description="encode the corpus to shards")
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--corpus-dir", required=True, help="holds train.parquet and val.parquet")
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args(argv)
    tok = AutoTokenizer.from_pretrained(args.tokenizer_dir)
    vocab = len(tok)
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.corpus_dir)
    meta = {
        "dtype": np.dtype(dtype).name,
        "vocab_size": vocab,
        "eos_id": tok.eos_token_id,
        "mask_id": tok.mask_token_id,
        "tokenizer": str(args.tokenizer_dir),
        "corpus_sha256": file_hash([corpus / "train.parquet", corpus / "val.parquet"]),
    }
    stats = corpus / "stats.json"
    if stats.exists():  # a synthetic source knows its entropy rate: the floor for E
        entropy = json.loads(stats.read_text()).get("entropy_nats_per_token")
        if entropy is not None:
            meta["entropy_nats_per_token"] = entropy
    for split in ("val", "train"):
        texts = read_texts(corpus / f"{split}.parquet")
        meta[split] = encode_split(tok, texts, out / f"{split}.bin", dtype)
        s = meta[split]
        print(
            f"{split}: {s['n_docs']} docs, {s['n_tokens']:,} tokens, "
            f"{s['n_bytes'] / max(s['n_tokens'], 1):.2f} bytes/token, "
            f"{s['tokens_per_s']:,} tokens/s",
            flush=True,
        )
    write_text(out / "meta.json", json.dumps(meta, indent=2) + "\n")  # last: marks done
    return 0
