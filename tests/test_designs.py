"""Study designs expand to the expected rungs and DAG; the synthetic source's entropy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from ladder.config import SyntheticConfig, load_config
from ladder.data import entropy_nats, synthetic_corpus, zipf_probs
from ladder.model import flops_per_token, param_groups
from ladder.plan import deepseek_hparams, plan, shape_for_params
from tests.conftest import make_shards, merged, planned_jobs, snakemake, wsd_study


def test_grid_is_sizes_times_budgets(base_config):
    cfg = merged(base_config, ladder={"widths": [16, 32], "tokens": [4096, 8192, 16384]})
    rungs = plan(load_config(cfg))
    assert len(rungs) == 6
    assert {(r.d_model, r.tokens) for r in rungs} == {
        (d, t) for d in (16, 32) for t in (4096, 8192, 16384)
    }
    assert len({r.id for r in rungs}) == 6


def test_tokens_per_param_multiples(base_config):
    cfg = merged(base_config, ladder={"widths": [32], "tokens": None, "tokens_per_param": [1, 4]})
    small, big = plan(load_config(cfg))
    total = param_groups(small.shape)["params_total"]
    assert abs(small.tokens - total) < small.batch_tokens
    assert abs(big.tokens - 4 * total) < big.batch_tokens


def test_isoflop_budgets_and_sizes(base_config):
    budgets = [1e12, 1e13]
    cfg = merged(
        base_config,
        ladder={
            "design": "isoflop",
            "budgets_flops": budgets,
            "isoflop_sizes": 4,
            "isoflop_span": 16,
        },
    )
    rungs = plan(load_config(cfg))
    for budget in budgets:
        group = [r for r in rungs if r.budget_flops == budget]
        assert len(group) >= 3
        for r in group:
            # tokens fill the budget to within one batch
            assert (
                abs(flops_per_token(r.shape) * r.tokens - budget)
                <= flops_per_token(r.shape) * r.batch_tokens
            )
        sizes = [param_groups(r.shape)["params_non_embedding"] for r in group]
        n_opt = math.sqrt(budget / (6 * 20))
        assert min(sizes) < n_opt < max(sizes)  # spread around the expected optimum
        assert all(r.id.startswith(f"C{budget:.0e}".replace("e+", "e")) for r in group)


def test_shape_for_params_is_close_and_friendly(base_config):
    cfg = load_config(merged(base_config, model={"head_dim": 64, "aspect_ratio": 64}))
    for target in (1e6, 1e7, 1e8):
        s = shape_for_params(target, cfg)
        assert s["d_model"] % 64 == 0
        rows = plan(
            load_config(
                merged(
                    base_config,
                    model={"head_dim": 64, "aspect_ratio": 64},
                    ladder={"widths": [], "params": [target]},
                )
            )
        )
        n = param_groups(rows[0].shape)["params_non_embedding"]
        assert 0.6 < n / target < 1.6


def test_deepseek_rule(base_config):
    lr, batch = deepseek_hparams(1e20, 1024)
    assert lr == pytest.approx(0.3118 * 1e20**-0.125)
    assert batch % 1024 == 0 and abs(batch - 0.2920 * 1e20**0.3271) <= 512
    cfg = merged(base_config, train={"hparam_rule": "deepseek"}, ladder={"widths": [16, 32]})
    small, big = plan(load_config(cfg))
    assert small.lr > big.lr  # bigger compute, smaller learning rate


def test_synthetic_source_has_the_stated_entropy():
    syn = SyntheticConfig(n_symbols=16, zipf_exponent=1.0, train_tokens=200_000, val_tokens=10)
    (train,), _, h = synthetic_corpus(syn, seed=3)
    assert h == pytest.approx(entropy_nats(zipf_probs(16, 1.0)))
    x = np.array([ord(c) - 0xE000 for c in train])
    counts = np.zeros((16, 16))
    np.add.at(counts, (x[:-1], x[1:]), 1)
    p = counts / counts.sum(1, keepdims=True)
    empirical = -(counts * np.log(np.where(p > 0, p, 1))).sum() / counts.sum()
    assert empirical == pytest.approx(h, abs=0.01)  # plug-in estimate, 200K transitions
    # every row is a permutation of the same Zipf probabilities
    assert np.allclose(np.sort(p, axis=1)[:, ::-1], zipf_probs(16, 1.0), atol=0.02)


def test_isoflop_dag_dry_run(tmp_path):
    cfg = tmp_path / "iso.yaml"
    cfg.write_text(
        "study: iso\nmodel: {seq_len: 32, head_dim: 8}\ntokenizer: {vocab_size: 300}\n"
        "train: {batch_tokens: 1024}\n"
        "ladder: {design: isoflop, budgets_flops: [1e11, 1e12], isoflop_sizes: 3}\n"
    )
    jobs = planned_jobs(snakemake(tmp_path, "-n", configfile=cfg))
    assert jobs["train"] == jobs["evaluate"] == 6
    assert jobs["corpus"] == jobs["tokenizer"] == jobs["encode"] == jobs["fit"] == 1


def test_plan_counts_a_wsd_stable_run_once(capsys, tmp_path):
    """The cost preview: branches of one size share the stable run, so the study trains
    the stable run to its last branch point plus each cooldown, not every branch whole."""
    from ladder.plan import main, trained_flops, wsd_plan

    raw = wsd_study(widths=[16, 32], tokens=[1024, 2048, 4096])
    cfg = load_config(raw)
    rungs = plan(cfg)
    per_step = {r.id: r.row()["flops"] / r.steps for r in rungs}
    expected = 0.0
    for size in wsd_plan(cfg, rungs).values():
        stops = size["stops"]
        by_id = {r.id: r for r in rungs if r.id in stops}
        longest = max(by_id.values(), key=lambda r: r.steps)
        expected += per_step[longest.id] * longest.steps  # stable to 0.75 of it + its cooldown
        for rid, r in by_id.items():
            if r is not longest:
                expected += per_step[rid] * (r.steps - stops[rid])  # the other cooldowns
    listed = sum(r.row()["flops"] for r in rungs)
    assert trained_flops(cfg, rungs) == pytest.approx(expected)
    assert expected < listed
    # `ladder plan` says so, next to the per-rung total
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(raw))
    assert main(["--configfile", str(tmp_path / "w.yaml"), "--out", str(tmp_path / "p.csv")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("trained in all"))
    assert f"{expected:.3g} FLOPs" in line and "share their size's stable run" in line
    # a grid study trains exactly its rungs
    grid = load_config({**raw, "ladder": {"widths": [16, 32], "tokens": [1024, 2048]}})
    assert trained_flops(grid, plan(grid)) == pytest.approx(
        sum(r.row()["flops"] for r in plan(grid))
    )


def test_wsd_branches_continue_the_stable_run_exactly(tmp_path):
    """A cooldown branch started from the stable segment's state ends with the same weights
    as the same WSD rung trained from scratch; branches have distinct D."""
    import torch

    from ladder import train as T
    from ladder.plan import wsd_plan

    torch.set_num_threads(1)
    shards = make_shards(tmp_path / "tokens")
    cfg = load_config(wsd_study())
    short, long = plan(cfg)
    assert short.tokens < long.tokens and short.schedule == long.schedule == "wsd"
    (size,) = wsd_plan(cfg, [short, long]).values()
    stable, stops = size["stable"], size["stops"]
    assert stops == {short.id: 6, long.id: 12}  # 8 and 16 steps, the last quarter decays

    def train(rung, out, *extra):
        args = ["--rung-json", rung.to_json(), "--tokens-dir", str(shards), "--out-dir", str(out)]
        assert T.main([*args, *extra]) == 0

    seg1, seg2 = tmp_path / "seg1.pt", tmp_path / "seg2.pt"
    train(stable, tmp_path / "stable", "--stop-step", "6", "--state-out", str(seg1))
    train(stable, tmp_path / "stable", "--init-state", str(seg1), "--stop-step", "12",
          "--state-out", str(seg2))  # fmt: skip
    for rung, seg in ((short, seg1), (long, seg2)):
        train(rung, tmp_path / f"branch-{rung.id}", "--init-state", str(seg))
        train(rung, tmp_path / f"scratch-{rung.id}")
        branch = (tmp_path / f"branch-{rung.id}/model/model.safetensors").read_bytes()
        scratch = (tmp_path / f"scratch-{rung.id}/model/model.safetensors").read_bytes()
        assert branch == scratch
    # a state cannot start a rung whose earlier learning rates differ
    other = dataclasses.replace(long, lr=long.lr * 2)
    with pytest.raises(ValueError, match="cannot start"):
        T.train(other, str(shards), str(tmp_path / "x"), None, True, init_state=str(seg2))


SYNTHETIC = """
study: synthetic
seed: 3
data:
  source: synthetic
  synthetic: {n_symbols: 16, zipf_exponent: 1.0, train_tokens: 200000, val_tokens: 16384}
tokenizer: {kind: symbols, vocab_size: 18}
model: {seq_len: 32, head_dim: 8, aspect_ratio: 16}
ladder: {widths: [8, 16, 32, 48], tokens: 49152}
train: {lr: 0.01, batch_tokens: 1024, eval_points: 3}
eval: {max_tokens: 16384}
fit: {bootstrap: 50}
"""


@pytest.mark.slow
def test_synthetic_study_fits_e_near_the_known_entropy(tmp_path):
    import json

    cfg = tmp_path / "synthetic.yaml"
    cfg.write_text(SYNTHETIC)
    proc = snakemake(tmp_path, "--until", "fit", configfile=cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = tmp_path / "results/synthetic"
    entropy = json.loads((res / "tokens/meta.json").read_text())["entropy_nats_per_token"]
    fit = json.loads((res / "fits.json").read_text())["laws"]["power_params"]
    # E is the loss floor at this token budget: above the source's entropy (no model can
    # beat it; a 0.01 margin covers the validation sample's own noise) and near it
    assert entropy - 0.01 < fit["params"]["E"] < entropy + 0.1


SWEEP = """
study: sweep
seed: 5
data: {source: stdlib, max_bytes: 200000, val_fraction: 0.1}
tokenizer: {vocab_size: 300}
model: {seq_len: 32, head_dim: 8, aspect_ratio: 16}
ladder:
  widths: [8, 16]
  tokens: 16384
  sweep: {lr: [0.05, 1.0], tokens_frac: 0.5}
train: {lr: 0.01, batch_tokens: 1024, eval_points: 2}
eval: {max_tokens: 4096}
fit: {bootstrap: 0}
"""


@pytest.mark.slow
def test_sweep_picks_the_lowest_loss_and_the_rung_uses_it(tmp_path):
    import csv
    import json

    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(SWEEP)
    proc = snakemake(tmp_path, "--until", "aggregate", configfile=cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = tmp_path / "results/sweep"
    runs = {r["rung"]: r for r in csv.DictReader((res / "runs.csv").open())}
    assert len(runs) == 2  # tuning runs are not rungs of the law
    for size in ("L1-d8", "L1-d16"):
        summary = json.loads((res / f"sweeps/{size}.json").read_text())
        losses = {c["lr"]: c["loss_nats"] for c in summary["candidates"]}
        assert len(losses) == 2 and summary["best"]["lr"] == min(losses, key=losses.get)
        for c in summary["candidates"]:  # each sweep run really ran at its reduced budget
            run = json.loads((res / f"runs/{c['rung']}/train.json").read_text())
            assert run["tokens"] == 8192
        (rung,) = [r for r in runs.values() if r["rung"].startswith(size + "-")]
        spec = json.loads((res / f"runs/{rung['rung']}/rung.json").read_text())
        assert spec["lr"] == summary["best"]["lr"] == float(rung["lr"])
        log = list(csv.DictReader((res / f"runs/{rung['rung']}/train_log.csv").open()))
        assert max(float(row["lr"]) for row in log) == pytest.approx(spec["lr"])


@pytest.mark.slow
def test_a_wsd_sweep_tunes_the_stable_run_and_its_branches(tmp_path):
    """The stable segments and the branches continuing them train at the size's tuned lr
    (a branch whose stable state was made at another lr could not start)."""
    import csv
    import json

    raw = yaml.safe_load(SWEEP)
    raw["ladder"] |= {"design": "wsd", "widths": [16], "tokens": [8192, 16384]}
    cfg = tmp_path / "wsd_sweep.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    proc = snakemake(tmp_path, "--until", "aggregate", configfile=cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = tmp_path / "results/sweep"
    best = json.loads((res / "sweeps/L1-d16.json").read_text())["best"]["lr"]
    assert json.loads((res / "runs/L1-d16-stable/rung.json").read_text())["lr"] == best
    for rung in ("L1-d16-T8.19K", "L1-d16-T16.4K"):
        assert json.loads((res / f"runs/{rung}/rung.json").read_text())["lr"] == best
        log = list(csv.DictReader((res / f"runs/{rung}/train_log.csv").open()))
        assert max(float(row["lr"]) for row in log) == pytest.approx(best)
    # curves.csv carries each branch's schedule, and it recomputes every logged lr exactly
    from ladder.fit.curves import CurveColumns, load_curves

    table = pd.read_csv(res / "curves.csv")
    assert (table["lr_peak"] == best).all() and set(table["schedule"]) == {"wsd"}
    curves = load_curves(table, CurveColumns())  # a logged lr off its schedule: FitError
    assert {c.run: c.n_steps for c in curves.curves} == {"L1-d16-T8.19K": 8, "L1-d16-T16.4K": 16}


def test_a_wsd_sweep_of_batch_sizes_is_refused(base_config):
    from ladder.errors import ConfigError
    from ladder.plan import sweep_plan

    raw = merged(base_config, ladder={"design": "wsd", "tokens": [4096, 8192]})
    raw["ladder"]["sweep"] = {"batch_tokens": [512, 1024]}
    study = load_config(raw)
    with pytest.raises(ConfigError, match="ladder.sweep.batch_tokens.*design wsd"):
        sweep_plan(study, plan(study))
