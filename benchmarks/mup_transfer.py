"""Does the best learning rate transfer across width? SP beside μP, measured on CPU.

    python benchmarks/mup_transfer.py                       # ~45 min on one CPU core
    python benchmarks/mup_transfer.py --mults 1,4 --lrs 8   # a quicker look

Trains the same depth at the base width and at `--mults` times it, under the standard
parametrization and under μP (ladder.mup, base = `--base`), over a factor-2 grid of
learning rates, with Ladder's own trainer (`ladder.train.train`) on real text: the Python
standard library's source (data.source stdlib), a 512-token BPE. Each run's score is its
final validation loss (the evaluation slice, as eval.json). It prints, and writes as
markdown (`--markdown`) and JSON (`--json`), one row per parametrization and width: the
loss at each lr and the best lr. Under μP the best lr should stay within one grid step
of the base width's; under SP it drifts down as the width grows (Yang et al. 2022, fig. 1).

Runs already done (train.json in the work dir) are reused, so an interrupted measurement
goes on where it stopped; the token shards are built once.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from ladder import data, tokenize, train
from ladder.config import load_config
from ladder.plan import plan


def build_tokens(work: Path, vocab: int, max_bytes: int) -> Path:
    """corpus → BPE → token shards under `work` (once)."""
    tokens = work / "tokens"
    if (tokens / "meta.json").exists():
        return tokens
    section = {"source": "stdlib", "max_bytes": max_bytes, "val_fraction": 0.05}
    corpus = work / "corpus"
    assert data.main(["--data-json", json.dumps(section), "--out-dir", str(corpus)]) == 0
    tok = work / "tokenizer"
    argv = ["--corpus-dir", str(corpus), "--vocab-size", str(vocab), "--out-dir", str(tok)]
    assert tokenize.main_tokenizer(argv) == 0
    argv = ["--tokenizer-dir", str(tok), "--corpus-dir", str(corpus), "--out-dir", str(tokens)]
    assert tokenize.main_encode([*argv, "--workers", "1"]) == 0
    return tokens


def rung_for(args, width: int, lr: float, parametrization: str):
    """One run: `--n-layer` × width, `--steps` steps of `--batch-tokens`, through the
    study config and ladder.plan, as the workflow makes its rungs."""
    cfg = {
        "study": "mup-transfer",
        "tokenizer": {"vocab_size": args.vocab},
        "model": {
            "family": args.family,
            "seq_len": args.seq_len,
            "head_dim": args.head_dim,
            "parametrization": parametrization,
            "mup_base_width": args.base,
        },
        "ladder": {
            "widths": [],
            "shapes": [{"n_layer": args.n_layer, "d_model": width}],
            "tokens": args.steps * args.batch_tokens,
        },
        "train": {
            "lr": lr,
            "batch_tokens": args.batch_tokens,
            "micro_batch": args.batch_tokens // args.seq_len,
            "warmup_frac": 0.1,
            "eval_points": 0,
            "threads": args.threads,
            "log_every_s": 60,
            "checkpoint_minutes": 1000,
        },
        "eval": {"max_tokens": args.eval_tokens},
    }
    return plan(load_config(cfg))[0]


def run_one(args, tokens: Path, width: int, lr: float, parametrization: str) -> float:
    """The run's final validation loss (inf if it diverged); reuses a finished run."""
    out = Path(args.work_dir) / "runs" / f"{parametrization}-d{width}-lr{lr:.6g}"
    done = out / "train.json"
    if not done.exists():
        r = rung_for(args, width, lr, parametrization)
        code = train.train(r, str(tokens), str(out), None, False, eval_tokens=args.eval_tokens)
        assert code == 0, f"{out}: exit {code}"
    info = json.loads(done.read_text())
    return math.inf if info["diverged"] else info["val_loss_nats"]


def table(results: dict, lrs: list[float]) -> str:
    """Markdown: one row per (parametrization, width), the loss at each lr, the best lr
    (bold) and how many grid steps it sits from the base width's."""
    head = "| param. | width | " + " | ".join(f"lr {lr:.3g}" for lr in lrs)
    lines = [head + " | best lr | steps from base |", "|---" * (len(lrs) + 4) + "|"]
    for param, by_width in results.items():
        base_best = None
        for width, losses in by_width.items():
            best = min(range(len(lrs)), key=lambda i: losses[i])
            base_best = best if base_best is None else base_best
            cells = [
                ("**{:.4f}**" if i == best else "{:.4f}").format(loss)
                if math.isfinite(loss)
                else "div."
                for i, loss in enumerate(losses)
            ]
            lines.append(
                f"| {param} | {width} | " + " | ".join(cells)
                + f" | {lrs[best]:.3g} | {best - base_best:+d} |"
            )  # fmt: skip
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", default="results/mup_transfer")
    ap.add_argument("--family", default="llama", choices=["llama", "gpt2"])
    ap.add_argument("--base", type=int, default=32, help="base width (d_model)")
    ap.add_argument("--mults", default="1,4,8", help="widths as multiples of the base")
    ap.add_argument("--lr-max", type=float, default=2**-3, help="the grid's largest lr")
    ap.add_argument("--lrs", type=int, default=10, help="grid points, each half the last")
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-tokens", type=int, default=512)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--max-bytes", type=int, default=4_000_000, help="corpus text")
    ap.add_argument("--eval-tokens", type=int, default=16384)
    ap.add_argument("--params", default="sp,mup", help="parametrizations measured")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", help="write the table here")
    ap.add_argument("--json", help="write every run's loss here")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    work = Path(args.work_dir)
    tokens = build_tokens(work, args.vocab, args.max_bytes)
    lrs = [args.lr_max / 2**i for i in range(args.lrs)][::-1]
    widths = [args.base * int(m) for m in args.mults.split(",")]
    results: dict[str, dict[int, list[float]]] = {}
    t0 = time.monotonic()
    for param in args.params.split(","):
        results[param] = {}
        for width in widths:
            results[param][width] = [run_one(args, tokens, width, lr, param) for lr in lrs]
            print(f"{param} d{width}: {results[param][width]} ({time.monotonic() - t0:.0f} s)")
    text = table(results, lrs)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("markdown", "json")}
        record = {"settings": settings, "lrs": lrs, "val_loss_nats": results}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
