"""The ladder of a study: shapes, designs and hyperparameters expanded into rungs.

`plan()` turns a validated `Study` (ladder.config) into `Rung`s, one per training run, in
order of size then tokens; `sweep_plan` and `wsd_plan` add the tuning runs and the WSD
stable segments. `ladder plan` writes plan.csv and prints the plan with its cost.
It imports neither torch nor snakemake: the Snakefile calls it at parse time.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import yaml

from ladder.artifacts import write_text
from ladder.config import Study, load_config
from ladder.devices import node_layout
from ladder.errors import ConfigError, failed
from ladder.estimates import (
    ASSUMED,
    DEFAULT_FLOPS_PER_S,
    Throughput,
    check_memory,
    gpu_hours,
    memory_warnings,
)
from ladder.model import ModelShape, default_d_ff, flops_per_token, param_groups
from ladder.rung import (
    Rung,
    decay_start,
    format_count,
    keep_steps,
    largest_divisor_at_most,
    retarget,
    size_of,
)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


MAX_WIDTH = 16384  # the widest d_model ladder.params scans (that of the largest LLMs)


def shape_for_params(target: float, study: Study, key: str = "ladder.params") -> dict[str, int]:
    """The width and depth whose non-embedding count is closest to `target`.

    Depth follows width by the aspect ratio (n_layer = round(d / aspect_ratio)); widths
    are multiples of head_dim (and of 64 from 256 up, for tensor-core-friendly matmuls).
    Candidates are scanned exhaustively: counts are exact, not the 12·L·d² estimate.
    A target more than twice beyond the widest or narrowest shape is an error (`key`).
    """
    model = study.model
    hd = model.head_dim
    best = None
    for d in range(hd, MAX_WIDTH + 1, hd):
        if d >= 256 and d % 64:
            continue
        n_layer = max(1, _round_half_up(d / model.aspect_ratio))
        shape = _model_shape(study, {"n_layer": n_layer, "d_model": d})
        n = param_groups(shape)["params_non_embedding"]
        err = abs(math.log(n / target))
        if best is None or err < best[0]:
            best = (err, {"n_layer": n_layer, "d_model": d})
        if n > 2 * target:
            break
    if best[0] > math.log(2):
        shape = _model_shape(study, best[1])
        n = param_groups(shape)["params_non_embedding"]
        end = "beyond the largest" if n < target else "below the smallest"
        fix = (
            "give ladder.shapes to go wider than d_model 16384"
            if n < target
            else "use ladder.widths or ladder.shapes for tiny models"
        )
        raise ConfigError(
            f"{key}: {target:.3g} non-embedding parameters is {end} shape the "
            f"width rule gives (L{shape.n_layer}-d{shape.d_model}: {format_count(n)}); {fix}"
        )
    return best[1]


def _shapes(study: Study) -> list[tuple[str, dict[str, int]]]:
    """(config key, shape) for every size: target params, then widths, then shapes."""
    model = study.model
    out = []
    for i, n in enumerate(study.ladder.params):
        out.append((f"ladder.params[{i}]", shape_for_params(n, study, f"ladder.params[{i}]")))
    for i, d in enumerate(study.ladder.widths):
        if d % model.head_dim:
            raise ConfigError(
                f"ladder.widths[{i}]: {d} is not a multiple of model.head_dim "
                f"({model.head_dim}); use widths divisible by it or change head_dim"
            )
        n_layer = max(1, _round_half_up(d / model.aspect_ratio))
        out.append((f"ladder.widths[{i}]", {"n_layer": n_layer, "d_model": d}))
    for i, s in enumerate(study.ladder.shapes):
        out.append((f"ladder.shapes[{i}]", dict(s)))
    return out


def _model_shape(study: Study, s: dict[str, int], key: str = "") -> ModelShape:
    model = study.model
    family = model.family
    tie = model.tie_embeddings
    if tie is None:
        tie = family != "llama"  # HF's defaults: Llama unties its head, GPT-2/BERT tie
    d = s["d_model"]
    n_head = s.get("n_head") or max(1, d // model.head_dim)
    if d % n_head:
        raise ConfigError(f"{key}: d_model {d} is not divisible by n_head {n_head}")
    n_kv = n_head // model.kv_groups if family == "llama" else n_head
    if n_kv < 1 or n_head % model.kv_groups:
        raise ConfigError(
            f"{key}: n_head {n_head} is not divisible by model.kv_groups ({model.kv_groups})"
        )
    return ModelShape(
        family=family,
        n_layer=s["n_layer"],
        d_model=d,
        n_head=n_head,
        n_kv_head=n_kv,
        d_ff=s.get("d_ff") or default_d_ff(family, d),
        vocab_size=study.tokenizer.vocab_size,
        seq_len=model.seq_len,
        tie_embeddings=tie,
    )


def _as_list(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def deepseek_hparams(flops: float, seq_len: int) -> tuple[float, int]:
    """DeepSeek LLM (2024, eq. 1): lr = 0.3118·C^-0.125, batch = 0.2920·C^0.3271 tokens,
    fitted on their IsoFLOP sweeps; batch rounded to whole sequences (at least one)."""
    lr = 0.3118 * flops**-0.125
    batch = max(1, _round_half_up(0.2920 * flops**0.3271 / seq_len)) * seq_len
    return lr, batch


def _sizes_and_budgets(study: Study) -> list[tuple[str, ModelShape, float, float]]:
    """(key, shape, token budget, compute budget) for every rung of the design."""
    lad = study.ladder
    out = []
    if lad.design == "isoflop":
        for b, budget in enumerate(lad.budgets_flops):
            if lad.params:
                targets = lad.params
            else:
                # centre on Chinchilla's rule: C ≈ 6·N·D with D = r·N  =>  N = sqrt(C / 6r)
                n_opt = math.sqrt(budget / (6 * lad.optimal_tokens_per_param))
                half = math.sqrt(lad.isoflop_span)
                k = lad.isoflop_sizes
                targets = [n_opt / half * (half * half) ** (i / (k - 1)) for i in range(k)]
            seen = set()
            for n in targets:
                s = shape_for_params(n, study, f"ladder.budgets_flops[{b}]")
                if (s["n_layer"], s["d_model"]) in seen:
                    continue  # two targets rounded onto one shape
                seen.add((s["n_layer"], s["d_model"]))
                shape = _model_shape(study, s, f"ladder.budgets_flops[{b}]")
                out.append(
                    (f"ladder.budgets_flops[{b}]", shape, budget / flops_per_token(shape), budget)
                )
        return out
    for key, s in _shapes(study):
        shape = _model_shape(study, s, key)
        if lad.tokens_per_param is not None:
            total = param_groups(shape)["params_total"]
            budgets = [r * total for r in _as_list(lad.tokens_per_param)]
        else:
            budgets = _as_list(lad.tokens)
        out += [(key, shape, budget, 0.0) for budget in budgets]
    return out


def check_layout(r: Rung, study: Study) -> None:
    """A rung larger than one node (cluster.gpus_per_node) must fill whole nodes, and one
    with train.nodes must split its GPUs evenly over them. The error names the key that
    set the node count (nodes if given, else gpus), as an override or in train."""
    try:
        node_layout(r.gpus, study.cluster.gpus_per_node, r.nodes)
    except ValueError as e:
        name = "gpus" if r.nodes is None else "nodes"
        key = f"ladder.overrides.{r.id}.{name}"
        key = key if name in study.ladder.overrides.get(r.id, {}) else f"train.{name}"
        raise ConfigError(f"{key}: {e}") from None


def plan(study: Study) -> list[Rung]:
    """Expand a validated study into its rungs, in order of size, then tokens."""
    model, lad, tr = study.model, study.ladder, study.train
    rungs: list[Rung] = []
    seen: dict[str, str] = {}
    check_budget_ids(lad.budgets_flops)
    sizes = _sizes_and_budgets(study)
    base_width = mup_base_width(study, [(key, shape) for key, shape, _, _ in sizes])
    for key, shape, budget, budget_flops in sizes:
        name = f"L{shape.n_layer}-d{shape.d_model}"
        if budget_flops:
            rid = f"{budget_id(budget_flops)}-{name}"
        else:
            rid = f"{name}-T{format_count(budget)}"
        if rid in seen:
            raise ConfigError(f"{key}: rung {rid} duplicates {seen[rid]}")
        seen[rid] = key
        hp = asdict(tr)
        if tr.hparam_rule == "deepseek":
            hp["lr"], hp["batch_tokens"] = deepseek_hparams(
                flops_per_token(shape) * budget, model.seq_len
            )
        hp.update(lad.overrides.get(rid, {}))
        steps = max(1, math.ceil(budget / hp["batch_tokens"]))
        seqs = hp["batch_tokens"] // model.seq_len
        rung = dict(
            id=rid,
            **asdict(shape),
            tokens=steps * hp["batch_tokens"],
            steps=steps,
            seed=study.seed,
            **{k: v for k, v in hp.items() if k not in ("micro_batch", "hparam_rule")},
            micro_batch=largest_divisor_at_most(seqs, hp["micro_batch"]),
            design=lad.design,
            budget_flops=float(budget_flops),
            parametrization=model.parametrization,
            mup_base_width=base_width,
            keep_steps=keep_steps(steps, checkpoint_fractions(study)),
        )
        rungs.append(Rung(**rung))
        check_memory(rungs[-1], key)
        check_layout(rungs[-1], study)
    unknown = sorted(set(lad.overrides) - set(seen))
    if unknown:
        raise ConfigError(
            f"ladder.overrides: unknown rung id(s) {unknown}; rungs are: {', '.join(seen)}"
        )
    # the keys and values of an override are checked by the schema (ladder.config)
    for rid, over in lad.overrides.items():
        if over.get("batch_tokens", model.seq_len) % model.seq_len:
            raise ConfigError(
                f"ladder.overrides.{rid}.batch_tokens must be a multiple of model.seq_len"
            )
    if lad.design == "wsd":
        rungs = _wsd_branches(rungs)
    return sorted(
        rungs,
        key=lambda r: (r.budget_flops, param_groups(r.shape)["params_non_embedding"], r.tokens),
    )


def mup_base_width(study: Study, shapes: list[tuple[str, ModelShape]]) -> int | None:
    """μP's base width: model.mup_base_width, or the narrowest rung's d_model; None under
    SP. A base wider than a rung is an error: μP carries the base's hyperparameters up to
    wider models (m >= 1); a narrower one is a new base, to be tuned itself."""
    model = study.model
    if model.parametrization != "mup":
        return None
    base = model.mup_base_width or min(s.d_model for _, s in shapes)
    for key, s in shapes:
        if s.d_model < base:
            raise ConfigError(
                f"model.mup_base_width: {base} is wider than {key} (d_model {s.d_model}); "
                f"μP scales up from its base, so it must be <= the narrowest rung's width"
            )
    return base


def budget_id(flops: float) -> str:
    """An isoflop budget's id: 1e18 -> 'C1e18', 1.5e12 -> 'C1.5e12' (3 significant digits)."""
    mantissa, exponent = f"{flops:.2e}".split("e")
    return f"C{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def check_budget_ids(budgets: tuple[float, ...]) -> None:
    seen: dict[str, int] = {}
    for i, b in enumerate(budgets):
        bid = budget_id(b)
        if bid in seen:
            j = seen[bid]
            raise ConfigError(
                f"ladder.budgets_flops[{i}]: {b:.6g} and ladder.budgets_flops[{j}] "
                f"({budgets[j]:.6g}) both round to the rung id prefix {bid}; budgets must "
                "differ in their first 3 significant digits (or give each once)"
            )
        seen[bid] = i


def checkpoint_fractions(study: Study) -> tuple[float, ...]:
    """The fractions of each rung's steps whose model is kept and scored (tasks.checkpoints);
    none when the study scores no task."""
    return study.tasks.checkpoints if study.tasks.list else ()


def _wsd_branches(rungs: list[Rung]) -> list[Rung]:
    """WSD rungs of one size share everything up to their cooldown, so that each branch can
    continue the size's one stable run: the schedule is wsd and the warmup lasts the same
    number of steps in every branch (that of the size's shortest run, at least one). A
    branch keeps only the steps of its own cooldown; those before it are the stable run's
    (`wsd_plan`), the same weights for every branch."""
    out = []
    for size in dict.fromkeys(size_of(r) for r in rungs):
        group = [r for r in rungs if size_of(r) == size]
        warm = max(1, round(min(r.warmup_frac * r.steps for r in group)))
        for r in group:
            r = replace(r, schedule="wsd", warmup_frac=warm / r.steps)
            stop = decay_start(r.steps, warm, r.decay_frac)
            out.append(replace(r, keep_steps=_steps(s for s in r.kept if s > stop)))
    return out


def _steps(steps) -> str:
    """Rung.keep_steps of these steps (ascending, once each)."""
    return " ".join(str(s) for s in sorted(set(steps)))


def wsd_plan(study: Study, rungs: list[Rung]) -> dict[str, dict[str, Any]]:
    """size -> {"stable": the size's longest branch, renamed, which the stable segments
    run; "stops": {rung id: the step its cooldown starts}} for design wsd."""
    if study.ladder.design != "wsd":
        return {}
    out: dict[str, dict[str, Any]] = {}
    for size in dict.fromkeys(size_of(r) for r in rungs):
        group = sorted((r for r in rungs if size_of(r) == size), key=lambda r: r.steps)
        if len({r.batch_tokens for r in group}) > 1 or len({r.lr for r in group}) > 1:
            raise ConfigError(
                f"ladder.overrides: WSD branches of {size} share one stable run, so they "
                "need one lr and one batch_tokens"
            )
        stops, kept = {}, set()
        for r in group:
            stops[r.id] = decay_start(r.steps, round(r.warmup_frac * r.steps), r.decay_frac)
            if stops[r.id] < 1:
                raise ConfigError(
                    f"ladder.tokens: rung {r.id} is too short for a stable phase; "
                    "raise its tokens or lower train.decay_frac"
                )
            # the branch's kept steps before its cooldown are the stable run's
            whole = keep_steps(r.steps, checkpoint_fractions(study))
            kept |= {int(s) for s in whole.split() if int(s) <= stops[r.id]}
        stable = replace(
            group[-1], id=f"{size}-stable", design="wsd-stable", keep_steps=_steps(kept)
        )
        out[size] = {"stable": stable, "stops": stops}
    return out


def sweep_plan(study: Study, rungs: list[Rung], per_size: bool = False) -> dict[str, list[Rung]]:
    """size -> its tuning runs: lr multipliers x batch sizes at a reduced token budget.
    Under μP only the base width's size is swept (its lr and batch serve every size,
    `sweep_sources`), unless `per_size` (what SP would sweep: `ladder plan`'s comparison)."""
    sw = study.ladder.sweep
    if not sw.lr and not sw.batch_tokens:
        return {}
    seq = study.model.seq_len
    if sw.batch_tokens and study.ladder.design == "wsd":
        # the stable run's segments end at steps planned from train.batch_tokens
        raise ConfigError(
            "ladder.sweep.batch_tokens: design wsd plans each branch's cooldown step from "
            "train.batch_tokens, so its sweeps tune lr only; leave batch_tokens empty"
        )
    for i, b in enumerate(sw.batch_tokens):
        if b % seq:
            raise ConfigError(
                f"ladder.sweep.batch_tokens[{i}]: {b} is not a multiple of model.seq_len ({seq})"
            )
    swept = rungs if per_size else [r for r in rungs if size_of(r) in _swept_sizes(study, rungs)]
    out: dict[str, list[Rung]] = {}
    for r in sorted(swept, key=lambda r: r.tokens):
        size = size_of(r)
        if size in out:
            continue  # the size's smallest budget sets the sweep budget
        budget = max(1, round(sw.tokens_frac * r.tokens))
        out[size] = []
        for mult in sw.lr or [1.0]:
            for batch in sw.batch_tokens or [r.batch_tokens]:
                lr = r.lr * mult
                # a tuning run keeps no checkpoints: it is scored on no task
                base = replace(r, tokens=budget, design="sweep", budget_flops=0.0, keep_steps="")
                sid = f"{size}-sweep-lr{lr:.3g}-b{batch}"
                out[size].append(retarget(base, id=sid, lr=lr, batch_tokens=batch))
    return out


def _swept_sizes(study: Study, rungs: list[Rung]) -> list[str]:
    """The sizes a sweep runs at: every size under SP; under μP the base width's (the
    shallowest if several depths have it), which must be one of the ladder's sizes."""
    sizes = list(dict.fromkeys(size_of(r) for r in rungs))
    base = rungs[0].base_width if rungs else None
    if base is None:
        return sizes
    at_base = sorted((r.n_layer, size_of(r)) for r in rungs if r.d_model == base)
    if not at_base:
        widths = sorted({r.d_model for r in rungs})
        raise ConfigError(
            f"ladder.sweep: under μP the sweep runs at the base width, but no rung has "
            f"d_model {base} (model.mup_base_width); widths are {widths}: add a rung of "
            "that width or set mup_base_width to one of them"
        )
    return [at_base[0][1]]


def sweep_sources(study: Study, rungs: list[Rung]) -> dict[str, str]:
    """size -> the size whose sweep (sweeps/<size>.json) sets its lr and batch: itself
    under SP, the base width's size under μP; sizes without a sweep are left out."""
    sweeps = sweep_plan(study, rungs)
    if not sweeps:
        return {}
    sizes = dict.fromkeys(size_of(r) for r in rungs)
    if rungs[0].base_width is None:
        return {s: s for s in sizes if s in sweeps}
    (base,) = sweeps
    return {s: base for s in sizes}


# The GPU-hours estimate's throughput when the study states none: an H100/H200 at ~40% MFU
# of its 989 TFLOP/s dense bf16 peak (benchmarks/gpu_acceptance.py measures the real one).
def own_steps(study: Study, rungs: list[Rung]) -> dict[str, tuple[Rung, int, int]]:
    """Every run the study trains (sweep runs, WSD stable runs, the rungs) -> (run, first
    step, end step) of the steps it trains itself: a WSD stable run to its size's last
    branch point, a WSD branch its cooldown only (it continues the stable run), any other
    run all its steps. A rung's own row (and the fits) count its whole run."""
    out = {r.id: (r, 0, r.steps) for runs in sweep_plan(study, rungs).values() for r in runs}
    out |= {r.id: (r, 0, r.steps) for r in rungs}
    for size in wsd_plan(study, rungs).values():
        stable, stops = size["stable"], size["stops"]
        out[stable.id] = (stable, 0, max(stops.values()))
        out |= {rid: (out[rid][0], stop, out[rid][0].steps) for rid, stop in stops.items()}
    return out


def trained_flops(study: Study, rungs: list[Rung]) -> float:
    """The FLOPs the study actually trains (own_steps: each WSD stable run once)."""
    return sum(
        r.row()["flops"] * (end - first) / r.steps
        for r, first, end in own_steps(study, rungs).values()
    )


def plan_csv(
    rungs: list[Rung], throughput: Throughput = ASSUMED, gpus_per_node: int | None = None
) -> str:
    """plan.csv: each rung's row, the nodes × GPUs it trains on (`nodes` is the resolved
    count: train.nodes, else from cluster.gpus_per_node), its estimated GPU-hours and the
    throughput they assume (est_flops_per_s, and est_basis: where that number came from)."""
    rows = [r.row() for r in rungs]
    for row, r in zip(rows, rungs, strict=True):
        layout = node_layout(r.gpus, gpus_per_node, r.nodes)
        row["nodes"], row["gpus_per_node"] = layout.nodes, layout.gpus_per_node
        row["est_gpu_hours"] = gpu_hours(r, throughput.flops_per_s)
        row["est_flops_per_s"] = throughput.flops_per_s
        row["est_basis"] = throughput.basis
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def summary_table(
    rungs: list[Rung], throughput: Throughput = ASSUMED, gpus_per_node: int | None = None
) -> str:
    """The plan as a fixed-width table with totals, for `ladder plan`: each rung's nodes ×
    GPUs per node, its GPU-hours at that size, and the wall hours they take there (GPU-h /
    GPUs: the estimate assumes the per-GPU throughput holds across nodes)."""
    head = f"{'rung':<22}{'non-emb params':>15}{'total params':>14}{'tokens':>10}{'FLOPs':>11}"
    lines = [head + f"{'nodes×GPUs':>12}{'est. GPU-h':>12}{'est. wall-h':>12}"]
    total_flops = total_h = 0.0
    for r in rungs:
        row = r.row()
        hours = gpu_hours(r, throughput.flops_per_s)
        layout = node_layout(r.gpus, gpus_per_node, r.nodes)
        total_flops += row["flops"]
        total_h += hours
        lines.append(
            f"{r.id:<22}{format_count(row['params_non_embedding']):>15}"
            f"{format_count(row['params_total']):>14}{format_count(r.tokens):>10}"
            f"{row['flops']:>11.3g}{str(layout):>12}{hours:>12.4g}"
            f"{hours / r.gpus:>12.4g}"
        )
    lines.append(f"{'total':<61}{total_flops:>11.3g}{'':>12}{total_h:>12.4g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ladder plan", description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/config.yaml", help="study YAML")
    ap.add_argument("--config-json", help="the study as JSON (the Snakefile passes this)")
    ap.add_argument("--out", help="write plan.csv here (default: results/<study>/plan.csv)")
    ap.add_argument("--resolved", help="also write the resolved config (defaults filled) here")
    ap.add_argument(
        "--flops-per-s",
        type=float,
        help="sustained training FLOP/s per GPU for the GPU-hours estimate (default: the "
        f"study's cluster.flops_per_s, else an assumed {DEFAULT_FLOPS_PER_S:.3g})",
    )
    args = ap.parse_args(argv)
    try:
        study = load_config(json.loads(args.config_json) if args.config_json else args.configfile)
        rungs = plan(study)
    except ConfigError as e:
        return failed("ladder plan", e)
    for warning in memory_warnings(rungs):
        print(f"ladder plan: warning: {warning}", file=sys.stderr)
    throughput = Throughput.choose(args.flops_per_s, study.cluster.flops_per_s)
    out = args.out or f"results/{study.study}/plan.csv"
    write_text(out, plan_csv(rungs, throughput, study.cluster.gpus_per_node))
    if args.resolved:
        write_text(args.resolved, yaml.safe_dump(study.to_dict(), sort_keys=False))
    print(summary_table(rungs, throughput, study.cluster.gpus_per_node))
    print(throughput.describe())
    listed = sum(r.row()["flops"] for r in rungs)
    spent = trained_flops(study, rungs)
    if not math.isclose(spent, listed, rel_tol=1e-9):
        why = []
        if study.ladder.design == "wsd":
            why.append("WSD branches share their size's stable run")
        if sweep_plan(study, rungs):
            why.append("the lr/batch sweeps add their runs")
        print(
            f"trained in all: {spent:.3g} FLOPs, {spent / throughput.flops_per_s / 3600:.4g} "
            f"GPU-h ({'; '.join(why)}; each rung's row counts its whole run, as the fits do)"
        )
    saved = mup_sweep_saving(study, rungs, throughput)
    if saved:
        print(saved)
    print_reuse(study, rungs, throughput, Path(out).parent)
    print(f"wrote {out} ({len(rungs)} rungs)")
    return 0


def mup_sweep_saving(study: Study, rungs: list[Rung], throughput: Throughput) -> str | None:
    """Under μP with a sweep: what the one sweep at the base width costs against one sweep
    per size (the SP way), in FLOPs and GPU-hours; None otherwise."""
    if not rungs or rungs[0].base_width is None:
        return None
    one = [r for runs in sweep_plan(study, rungs).values() for r in runs]
    every = [r for runs in sweep_plan(study, rungs, per_size=True).values() for r in runs]
    if not one:
        return None
    cost = [sum(r.row()["flops"] for r in runs) for runs in (one, every)]
    hours = [c / throughput.flops_per_s / 3600 for c in cost]
    n_sizes = len({size_of(r) for r in rungs})
    return (
        f"μP sweep: {len(one)} runs at the base width ({size_of(one[0])}), {cost[0]:.3g} FLOPs, "
        f"{hours[0]:.4g} GPU-h, serve all {n_sizes} sizes; one sweep per size would be "
        f"{len(every)} runs, {cost[1]:.3g} FLOPs, {hours[1]:.4g} GPU-h "
        f"(saves {cost[1] - cost[0]:.3g} FLOPs, {1 - cost[0] / cost[1]:.0%})"
    )


def print_reuse(study: Study, rungs: list[Rung], throughput: Throughput, results: Path) -> None:
    """The runs the run store holds (ladder.store): reused, not trained, and the GPU-hours
    that saves. `results`: the study's folder (its tokens say whether a key is exact)."""
    from ladder import store

    root = store.resolve(study.store.dir, study.store.enabled)
    if root is None:
        print("run store: off (store.enabled false or LADDER_STORE=off); every run trains")
        return
    runs = [r for runs in sweep_plan(study, rungs).values() for r in runs] + rungs
    try:
        found = store.planned_reuse(runs, results, study.eval.max_tokens, root)
    except (store.StoreError, OSError) as e:
        print(f"ladder plan: warning: run store {root} not read: {e}", file=sys.stderr)
        return
    print(
        store.reuse_summary(found, len(runs), root, lambda r: gpu_hours(r, throughput.flops_per_s))
    )
