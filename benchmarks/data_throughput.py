"""Data-stage throughput and memory: corpus, tokenizer and encode at two corpus sizes.

    python benchmarks/data_throughput.py                        # 60 MB and 600 MB
    python benchmarks/data_throughput.py --sizes-mb 60 300      # other sizes
    python benchmarks/data_throughput.py --baseline main        # + the code of a git ref

Makes a synthetic corpus of each size (jsonl files of ~5 KB documents drawn from a Zipfian
vocabulary of 30,000 made-up words, so a BPE has real merges to learn; cached in
--workdir), then runs each data stage as its own process through the `ladder` CLI, as
the workflow does, and prints its wall time, throughput and peak RSS (the largest
process of the stage, encode's pool workers included: os.wait4 reports the process
tree), side by side for the sizes, and encode with 1 and 2 workers. `--baseline REF`
runs the same stages with the package as it is at git ref REF (e.g. `main`, before
streaming) in the same run, so the ratios are measured under the same machine load.

Targets (issue 13): peak RSS of any data-stage process <= 1.5 GB at 600 MB of text and
<= 1.3x its value at 60 MB; encode with 2 workers >= 1.7x one worker; tokens/s per core
no lower than before streaming (1.26M tokens/s for BPE 8192 on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOC_WORDS = (400, 1400)  # words per document: ~5 KB, like the 325 MB / 60,000 docs
FILE_MB = 50  # text per jsonl file


def make_vocab(rng: np.random.Generator, n: int = 30_000) -> np.ndarray:
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    freq = 1 / np.arange(1, 27) ** 0.9  # letters roughly as in English, by rank
    lengths = np.clip(rng.poisson(5, n), 1, 14)
    words = {"".join(rng.choice(letters, k, p=freq / freq.sum())) for k in lengths}
    return np.array(sorted(words), dtype=object)


def make_corpus(folder: Path, size_mb: int, seed: int = 0) -> list[str]:
    """jsonl files holding ~size_mb MB of text (reused when already there)."""
    done = folder / "done.json"
    if done.exists() and json.loads(done.read_text())["size_mb"] == size_mb:
        return sorted(str(p) for p in folder.glob("*.jsonl"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng)
    p = 1 / np.arange(1, len(vocab) + 1) ** 1.05
    p /= p.sum()
    target, written, index = size_mb * 1_000_000, 0, 0
    while written < target:
        path = folder / f"part-{index:03d}.jsonl"
        with open(path, "w") as f:
            file_bytes = 0
            while file_bytes < FILE_MB * 1_000_000 and written < target:
                n_words = rng.integers(*DOC_WORDS, size=64)
                ids = rng.choice(len(vocab), size=int(n_words.sum()), p=p)
                pos = 0
                for n in n_words:
                    words = vocab[ids[pos : pos + n]]
                    pos += n
                    words[::13] = [w.capitalize() for w in words[::13]]
                    text = " ".join(words).replace(" ", ". ", 1) + ".\n"
                    f.write(json.dumps({"text": text}) + "\n")
                    n_bytes = len(text.encode())
                    file_bytes += n_bytes
                    written += n_bytes
        index += 1
    done.write_text(json.dumps({"size_mb": size_mb, "text_bytes": written}))
    return sorted(str(p) for p in folder.glob("*.jsonl"))


def run_stage(cmd: list[str], env: dict, log: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one stage run to completion, its whole process tree
    (os.wait4 adds the children it waited for, e.g. encode's pool workers)."""
    t0 = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


def package_at(ref: str, dest: Path) -> Path:
    """The `ladder` package as it is at git ref `ref`, extracted under dest."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "workflow/ladder", "workflow/schemas"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "workflow"


def run_pipeline(
    label: str, pythonpath: Path, paths: list[str], work: Path, vocab: int, streaming: bool
) -> list[dict]:
    """corpus, tokenizer, encode (1 and 2 workers; `streaming` False: the old encode,
    one process on every core) with one version of the package; a row per stage."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "HF_DATASETS_CACHE": str(work / "hf")}
    env.pop("TOKENIZERS_PARALLELISM", None)
    ladder = [sys.executable, "-m", "ladder.cli"]
    data = {"source": "files", "paths": paths, "val_fraction": 0.05}
    rows = []

    def row(stage, measured, **extra):
        wall, cpu, rss = measured
        rows.append({"code": label, "stage": stage, "wall_s": wall, "cpu_s": cpu, "rss_mb": rss})
        rows[-1].update(extra)

    corpus = work / "corpus"
    cmd = [*ladder, "corpus", "--data-json", json.dumps(data), "--out-dir", str(corpus)]
    measured = run_stage(cmd, env, work / "corpus.log")
    stats = json.loads((corpus / "stats.json").read_text())
    row("corpus", measured, mb=stats["n_bytes"] / 1e6)
    # the train split, which the BPE reads (stats.json before streaming had no per-split bytes)
    train_mb = stats["train"]["n_bytes"] / 1e6 if "train" in stats else stats["n_bytes"] / 1e6
    source = ["--corpus-dir", str(corpus)] if streaming else ["--corpus", f"{corpus}/train.parquet"]
    cmd = [*ladder, "tokenizer", *source, "--vocab-size", str(vocab)]
    cmd += ["--out-dir", str(work / "tok")]
    row("tokenizer", run_stage(cmd, env, work / "tokenizer.log"), mb=train_mb)
    for workers in (1, 2) if streaming else (None,):
        out = work / f"tokens{workers or ''}"
        cmd = [*ladder, "encode", "--tokenizer-dir", str(work / "tok"), "--corpus-dir",
               str(corpus), "--out-dir", str(out)]  # fmt: skip
        cmd += ["--workers", str(workers)] if workers else []
        measured = run_stage(cmd, env, work / f"encode{workers or ''}.log")
        meta = json.loads((out / "meta.json").read_text())
        tokens = meta["train"]["n_tokens"] + meta["val"]["n_tokens"]
        stage = f"encode {workers}w" if workers else "encode (all cores)"
        row(stage, measured, mb=stats["n_bytes"] / 1e6, tokens=tokens)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-mb", type=int, nargs=2, default=[60, 600])
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--baseline", help="also run the package at this git ref (e.g. main)")
    ap.add_argument("--baseline-sizes-mb", type=int, nargs="*", help="default: every size")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ladder_data_bench"))
    args = ap.parse_args()
    work = Path(args.workdir)
    codes = [("stream", ROOT / "workflow", True)]
    if args.baseline:
        codes.append((args.baseline, package_at(args.baseline, work / "baseline"), False))
    rows = []
    for size in args.sizes_mb:
        t0 = time.time()
        paths = make_corpus(work / f"src{size}", size)
        print(f"corpus of {size} MB: {len(paths)} files ({time.time() - t0:.0f} s)", flush=True)
        for label, pythonpath, streaming in codes:
            if not streaming and size not in (args.baseline_sizes_mb or [size]):
                continue
            out = work / f"run-{label}-{size}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for r in run_pipeline(label, pythonpath, paths, out, args.vocab_size, streaming):
                rows.append({"size_mb": size, **r})
                print(f"  {label} {size} MB {r['stage']}: {r['wall_s']:.1f} s", flush=True)
            shutil.rmtree(out / "hf", ignore_errors=True)
    print_table(rows, args.sizes_mb)
    return 0


def print_table(rows: list[dict], sizes: list[int]) -> None:
    """Wall time is what a user waits; CPU s is the work (on a loaded machine the wall
    clock includes other people's work; tokens per CPU-second does not)."""
    small, big = sizes
    print(f"\n{'code':<8} {'stage':<19} {'size':>6} {'wall s':>8} {'CPU s':>8} {'MB/s':>7} "
          f"{'Mtok/s':>7} {'Mtok/CPU-s':>10} {'peak RSS MB':>12}")  # fmt: skip
    for r in rows:
        tok = "" if "tokens" not in r else (
            f"{r['tokens'] / r['wall_s'] / 1e6:7.3f} {r['tokens'] / r['cpu_s'] / 1e6:10.3f}"
        )  # fmt: skip
        print(f"{r['code']:<8} {r['stage']:<19} {r['size_mb']:>4} MB {r['wall_s']:8.1f} "
              f"{r['cpu_s']:8.1f} {r['mb'] / r['wall_s']:7.2f} {tok or ' ' * 18} "
              f"{r['rss_mb']:12.0f}")  # fmt: skip
    by = {(r["code"], r["stage"], r["size_mb"]): r for r in rows}
    print(f"\npeak RSS {big} MB / {small} MB (target: stream <= 1.3, and <= 1500 MB at 600 MB):")
    for (code, stage, size), r in by.items():
        if size == big and (code, stage, small) in by:
            ratio = r["rss_mb"] / by[code, stage, small]["rss_mb"]
            print(f"  {code:<8} {stage:<19} {ratio:5.2f}  ({r['rss_mb']:.0f} MB)")
    print("\nencode, 2 workers vs 1, wall time (target >= 1.7); tokens per CPU-second:")
    for size in sizes:
        one, two = by.get(("stream", "encode 1w", size)), by.get(("stream", "encode 2w", size))
        if one and two:
            print(f"  {size} MB: {one['wall_s'] / two['wall_s']:.2f}x; "
                  f"{one['tokens'] / one['cpu_s'] / 1e6:.3f}M (1 worker), "
                  f"{two['tokens'] / two['cpu_s'] / 1e6:.3f}M (2 workers)")  # fmt: skip
        for (code, stage, s), r in by.items():
            if s == size and stage == "encode (all cores)":
                print(f"  {size} MB, {code}: {r['tokens'] / r['cpu_s'] / 1e6:.3f}M (all cores)")
    totals: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        if r["stage"] in ("corpus", "tokenizer", "encode 2w", "encode (all cores)"):
            t = totals.setdefault((r["code"], r["size_mb"]), [0.0, 0.0])
            t[0] += r["wall_s"]
            t[1] += r["cpu_s"]
    print("\ncorpus + tokenizer + encode (2 workers / all cores):")
    for (code, size), (wall, cpu) in totals.items():
        print(f"  {code:<8} {size} MB: {wall:.1f} s wall, {cpu:.1f} CPU s")


if __name__ == "__main__":
    sys.exit(main())
