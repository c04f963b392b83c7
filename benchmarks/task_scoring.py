"""CPU throughput of task scoring (examples/s) for a default-study-shaped rung.

    python benchmarks/task_scoring.py [--width 96] [--examples 128] [--threads 1]

The default study's shape rules (llama, seq_len 128, head_dim 16, aspect 32, a 2048-token
BPE) at one width, with a next_line task built from Python stdlib source split into "val"
documents. Weights are the initial ones: the cost of a forward pass does not depend on them.
"""

from __future__ import annotations

import argparse
import glob
import os
import sysconfig
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from ladder import scoring, tasks
from ladder.config import load_config
from ladder.model import build_model
from ladder.plan import plan
from ladder.tokenize import train_bpe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--examples", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))[:80]
    docs = [Path(f).read_text(errors="replace") for f in files]
    tok = train_bpe(docs, 2048, 2)
    cfg = load_config("config/config.yaml").to_dict()
    cfg["ladder"]["widths"] = [args.width]
    rung = plan(load_config(cfg))[0]
    model = build_model(rung.shape, seed=0).eval()
    with tempfile.TemporaryDirectory() as d:
        pd.DataFrame({"text": docs}).to_parquet(Path(d) / "val-00000.parquet")
        examples = tasks.build_next_line(d, args.examples, 2, seed=1337)
    t0 = time.perf_counter()
    scoring.score_examples(model, tok, examples, args.batch_size, torch.device("cpu"), None)
    wall_s = time.perf_counter() - t0
    print(
        f"{rung.id}: {len(examples)} examples x 4 choices in {wall_s:.2f} s = "
        f"{len(examples) / wall_s:.1f} examples/s on {args.threads} CPU thread(s)"
    )


if __name__ == "__main__":
    main()
