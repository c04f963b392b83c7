"""The coordinate check, μP's standard test (Yang et al. 2022, Tensor Programs V, §D.1):
train the study's model at widths from the μP base to 8× it for a few steps at one learning
rate, and record each layer type's mean |activation| at every step. Under μP the curves
against width are flat from the first update on; under SP they grow with width.

    ladder coordcheck --configfile config/experiments/X.yaml [--tokens-dir results/X/tokens]

Writes coordcheck.csv (parametrization, width, step, layer, mean_abs), slopes.json (the
log-log slope of mean |activation| against width per parametrization, layer and step) and
coordcheck.png / .svg (SP beside μP, one panel per layer type, one line per step) to
`--out-dir` (default results/<study>/coordcheck).

Step t's values are those of the forward pass of step t, after t − 1 updates (step 1 is the
initialisation). Layer types: `embedding` (the token embedding's output), `attention` and
`mlp` (each block's branch output before the residual add, averaged over blocks) and
`logits` (the model's output, after μP's 1/m). The models have the depth of the study's
narrowest rung (μP is about width), the study's family, head_dim, seq_len, vocabulary and
lr, and train with AdamW as `ladder train` does (its parameter groups, no clipping, no
schedule: the check is about the update size). Data: the study's token shards if given,
else a fixed noisy walk over 32 token ids (`walk_tokens`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ladder.artifacts import write_json, write_text
from ladder.config import Study, load_config
from ladder.errors import ConfigError, DataError, failed

LAYERS = ("embedding", "attention", "mlp", "logits")
PARAMS = ("sp", "mup")


def coord_study(study: Study, widths: list[int], n_layer: int, parametrization: str) -> dict:
    """The study as a dict with one shape per width (depth n_layer) and a one-step budget."""
    cfg = study.to_dict()
    cfg["model"] |= {"parametrization": parametrization, "mup_base_width": widths[0]}
    cfg["ladder"] |= {
        "design": "grid",
        "widths": [],
        "params": [],
        "shapes": [{"n_layer": n_layer, "d_model": w} for w in widths],
        "tokens": cfg["train"]["batch_tokens"],
        "tokens_per_param": None,
        "budgets_flops": [],
        "sweep": {"lr": [], "batch_tokens": []},
        "overrides": {},
    }
    return cfg


WALK_IDS = 32  # distinct ids of the default data


def walk_tokens(vocab: int, n: int, seed: int = 0) -> np.ndarray:
    """A noisy walk over the first min(vocab, WALK_IDS) ids (tests/conftest.make_shards'
    pattern: id = 7i + i//5, 20% noise). Few distinct ids, so that each appears many times
    in a batch: the gradients then have the structure real text gives them, which a
    handful of steps at small widths needs to show μP's coherent updates."""
    k = min(vocab, WALK_IDS)
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    base = (i * 7 + i // 5) % k
    return np.where(rng.random(n) < 0.2, rng.integers(0, k, n), base).astype(np.int64)


def record_hooks(model, family: str, sums: dict[str, list[float]]) -> list:
    """Forward hooks adding each layer type's mean |output| to `sums` (lists per type)."""

    def hook(layer: str):
        def fn(module, inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            sums[layer].append(float(out.detach().abs().mean()))

        return fn

    blocks = model.model.layers if family == "llama" else model.transformer.h
    handles = [model.get_input_embeddings().register_forward_hook(hook("embedding"))]
    for b in blocks:
        attn = b.self_attn if family == "llama" else b.attn
        handles.append(attn.register_forward_hook(hook("attention")))
        handles.append(b.mlp.register_forward_hook(hook("mlp")))
    return handles


def train_and_record(rung, tokens: np.ndarray, steps: int, batch: int, seed: int) -> list:
    """(step, layer, mean |activation|) over `steps` AdamW steps of rung's model at its lr."""
    import torch
    import torch.nn.functional as F

    from ladder.model import build_model
    from ladder.train import make_optimizer

    model = build_model(rung.shape, seed, rung.base_width)
    opt = make_optimizer(model, rung, torch.device("cpu"))
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(1, steps + 1):
        sums: dict[str, list[float]] = {k: [] for k in LAYERS}
        handles = record_hooks(model, rung.family, sums)
        starts = rng.integers(0, len(tokens) - rung.seq_len - 1, batch)
        x = torch.from_numpy(np.stack([tokens[s : s + rung.seq_len + 1] for s in starts]))
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
        for h in handles:
            h.remove()
        sums["logits"].append(float(logits.detach().abs().mean()))
        loss = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        for g in opt.param_groups:
            g["lr"] = rung.lr * g["lr_mult"]
        opt.step()
        opt.zero_grad(set_to_none=True)
        rows += [(step, layer, float(np.mean(v))) for layer, v in sums.items()]
    return rows


def coord_data(
    study: Study,
    tokens: np.ndarray,
    mults: list[int],
    steps: int,
    seeds: int = 1,
    lr: float | None = None,
) -> list[dict[str, Any]]:
    """Every (parametrization, width, step, layer) mean |activation|, averaged over seeds."""
    from ladder.plan import plan

    base = study.model.mup_base_width or _narrowest(study)
    widths = [base * m for m in mults]
    n_layer = _depth(study)
    batch = study.train.batch_tokens // study.model.seq_len
    out = []
    for param in PARAMS:
        rungs = plan(load_config(coord_study(study, widths, n_layer, param)))
        for r in sorted(rungs, key=lambda r: r.d_model):
            if lr is not None:
                r = dataclasses.replace(r, lr=lr)
            acc: dict[tuple[int, str], list[float]] = {}
            for seed in range(seeds):
                for step, layer, v in train_and_record(r, tokens, steps, batch, study.seed + seed):
                    acc.setdefault((step, layer), []).append(v)
            out += [
                {"parametrization": param, "width": r.d_model, "step": s, "layer": layer,
                 "mean_abs": float(np.mean(v))}
                for (s, layer), v in sorted(acc.items())
            ]  # fmt: skip
    return out


def _narrowest(study: Study) -> int:
    from ladder.plan import plan

    return min(r.d_model for r in plan(study))


def _depth(study: Study) -> int:
    from ladder.plan import plan

    return min(plan(study), key=lambda r: r.d_model).n_layer


def slopes(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, float]]]:
    """parametrization -> layer -> step -> least-squares slope of log mean|a| on log width.
    A curve that is 0 at every width (μP's zero-initialised head gives logits of exactly 0
    at step 1) is flat: slope 0."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    keys = {(r["parametrization"], r["layer"], r["step"]) for r in rows}
    for param, layer, step in sorted(keys):
        pts = [
            (r["width"], r["mean_abs"])
            for r in rows
            if (r["parametrization"], r["layer"], r["step"]) == (param, layer, step)
        ]
        x, y = np.array(pts, dtype=float).T
        slope = 0.0 if not y.any() else float(np.polyfit(np.log(x), np.log(y), 1)[0])
        out.setdefault(param, {}).setdefault(layer, {})[step] = slope
    return out


def plot(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """coordcheck.png and .svg: SP (top) and μP (bottom), a panel per layer type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted({r["step"] for r in rows})
    fig, axes = plt.subplots(2, len(LAYERS), figsize=(3.2 * len(LAYERS), 6), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for i, param in enumerate(PARAMS):
        for j, layer in enumerate(LAYERS):
            ax = axes[i][j]
            for k, step in enumerate(steps):
                pts = sorted(
                    (r["width"], r["mean_abs"])
                    for r in rows
                    if (r["parametrization"], r["layer"], r["step"]) == (param, layer, step)
                )
                w, v = zip(*pts, strict=True)
                ax.plot(w, v, "o-", color=cmap(k / max(1, len(steps) - 1)), label=f"step {step}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{'SP' if param == 'sp' else 'μP'}: {layer}")
            ax.set_xlabel("width (d_model)")
            if j == 0:
                ax.set_ylabel("mean |activation|")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    paths = [out_dir / "coordcheck.png", out_dir / "coordcheck.svg"]
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def load_tokens(tokens_dir: str | None, vocab: int) -> np.ndarray:
    """The train split's tokens (at most 2M), or the noisy walk."""
    if not tokens_dir:
        return walk_tokens(vocab, 200_000)
    from ladder.shards import load_meta, open_split

    meta = load_meta(tokens_dir)
    if meta["vocab_size"] > vocab:
        raise DataError(
            f"{tokens_dir}/meta.json: vocab_size {meta['vocab_size']} exceeds the study's "
            f"tokenizer.vocab_size {vocab}"
        )
    data = open_split(tokens_dir, "train", meta)
    return np.asarray(data[: min(len(data), 2_000_000)], dtype=np.int64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder coordcheck", description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/config.yaml", help="study YAML")
    ap.add_argument("--tokens-dir", help="the study's tokens/ (default: a noisy walk)")
    ap.add_argument("--out-dir", help="default: results/<study>/coordcheck")
    ap.add_argument("--mults", default="1,2,4,8", help="widths as multiples of the base")
    ap.add_argument("--steps", type=int, default=5, help="training steps recorded")
    ap.add_argument("--seeds", type=int, default=2, help="seeds averaged per width")
    ap.add_argument("--lr", type=float, help="default: the study's train.lr")
    args = ap.parse_args(argv)
    try:
        study = load_config(args.configfile)
        if study.model.family == "bert":
            raise ConfigError("model.family: the coordinate check supports llama and gpt2")
        tokens = load_tokens(args.tokens_dir, study.tokenizer.vocab_size)
        mults = [int(m) for m in args.mults.split(",")]
        rows = coord_data(study, tokens, mults, args.steps, args.seeds, args.lr)
    except (ConfigError, DataError, ValueError, OSError) as e:
        return failed("ladder coordcheck", e)
    out = Path(args.out_dir or f"results/{study.study}/coordcheck")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "coordcheck.csv", to_csv(rows))
    fitted = slopes(rows)
    write_json(out / "slopes.json", fitted)
    paths = plot(rows, out)
    for param, layers in fitted.items():
        worst = max(abs(s) for by_step in layers.values() for t, s in by_step.items() if t > 1)
        print(f"{param}: largest |slope| from step 2 on: {worst:.3f}", file=sys.stdout)
    print(f"wrote {out}/coordcheck.csv, slopes.json, {', '.join(p.name for p in paths)}")
    return 0
