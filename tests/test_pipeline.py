"""The real DAG on a tiny study: artifacts and their contents, caching, and reruns."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml

from tests.conftest import TINY, planned_jobs, snakemake


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dag")
    proc = snakemake(workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_artifacts(study):
    res = study / "results/tiny"
    plan = list(csv.DictReader((res / "plan.csv").open()))
    runs = list(csv.DictReader((res / "runs.csv").open()))
    assert [r["id"] for r in plan] == [r["rung"] for r in runs]
    assert len(runs) == 4
    meta = json.loads((res / "tokens/meta.json").read_text())
    assert meta["val"]["n_bytes"] > meta["val"]["n_tokens"] > 0
    for row in runs:
        loss = float(row["loss_nats"])
        assert 0 < loss < math.log(320) + 1  # below a uniform guess over the vocabulary
        assert float(row["bits_per_byte"]) == pytest.approx(
            loss / math.log(2) * meta["val"]["n_tokens"] / meta["val"]["n_bytes"], rel=1e-6
        )
        assert int(row["tokens"]) >= 16384 and float(row["wall_s"]) > 0
        assert row["diverged"] == "0"
        train = json.loads((res / f"runs/{row['rung']}/train.json").read_text())
        assert int(train["params_non_embedding"]) == int(row["params_non_embedding"])
        log = list(csv.DictReader((res / f"runs/{row['rung']}/train_log.csv").open()))
        assert float(log[-1]["tokens"]) == int(row["tokens"])
    # every eval saw the same tokens
    assert len({r["eval_tokens"] for r in runs}) == 1
    fits = json.loads((res / "fits.json").read_text())["laws"]
    fitted = {k: v for k, v in fits.items() if "skipped" not in v}
    assert any(k.startswith("power") for k in fitted)
    for law in fitted.values():  # a per-size curve law's parameters are in its groups
        groups = law.get("groups", {}).values()
        for params in [law["params"]] if "params" in law else [g["params"] for g in groups]:
            assert all(math.isfinite(v) for v in params.values())


@pytest.mark.slow
def test_curve_laws_on_the_real_curves(study):
    """The tiny study's curves through the whole path: curves.csv's schedule columns give
    back every logged lr, the fit rule fits the annealing law per size, the law across sizes
    and Approach 1, and report.md has their section."""
    import pandas as pd

    from ladder.fit.curves import CurveColumns, load_curves

    res = study / "results/tiny"
    table = pd.read_csv(res / "curves.csv")
    curves = load_curves(table, CurveColumns())  # a logged lr off its schedule: FitError
    assert len(curves.curves) == 4 and all(c.n_steps == 16 for c in curves.curves)
    laws = json.loads((res / "fits.json").read_text())["laws"]
    groups = laws["annealing"]["groups"]
    assert len(groups) == 4  # one size per rung here
    for group in groups.values():
        assert all(math.isfinite(v) for v in group["params"].values())
        assert 0 <= group["mare_mean"] < 0.1
    assert "approach1" in laws
    sized = laws["annealing_sized"]  # one law over the 4 sizes, refitted without the largest
    assert all(math.isfinite(v) for v in sized["params"].values())
    assert set(sized["mare"]) == {c.run for c in curves.curves}
    text = (res / "report/report.md").read_text()
    assert "## Whole learning curves" in text and "**annealing**" in text
    assert "held-out-size check (annealing_sized)" in text
    if "skipped" not in laws["approach1"]:  # beside approaches 2 and 3 in the allocation tables
        assert any(line.startswith("| approach1 |") for line in text.splitlines())
        if "skipped" not in laws["chinchilla"]:  # the opening lines state a law first
            assert "**Envelope of the learning curves** (approach 1) gives a = " in text


@pytest.mark.slow
def test_checkpoint_loads_with_from_pretrained(study):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    res = study / "results/tiny"
    rung = next(csv.DictReader((res / "runs.csv").open()))["rung"]
    model = AutoModelForCausalLM.from_pretrained(res / f"runs/{rung}/model")
    tok = AutoTokenizer.from_pretrained(res / "tokenizer")
    ids = tok("def main():", return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape[-1] == 320


@pytest.mark.slow
def test_rerun_does_nothing(study):
    proc = snakemake(study, "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_rung_hyperparameter_change_reruns_only_that_rung(study, tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    rung = next(csv.DictReader((study / "results/tiny/plan.csv").open()))["id"]
    cfg["ladder"]["overrides"] = {rung: {"lr": 0.005}}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(snakemake(study, "-n", configfile=changed))
    assert jobs.get("train") == 1 and jobs.get("evaluate") == 1
    assert not {"corpus", "tokenizer", "encode"} & set(jobs)


@pytest.mark.slow
def test_vocab_change_reruns_from_the_tokenizer_on(study, tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["tokenizer"]["vocab_size"] = 384
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(snakemake(study, "-n", configfile=changed))
    assert "corpus" not in jobs
    assert jobs["tokenizer"] == jobs["encode"] == 1
    assert jobs["train"] == jobs["evaluate"] == 4


def test_config_error_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: bad\nmodel:\n  family: gtp2\n")
    proc = snakemake(tmp_path, "-n", configfile=bad)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "model.family" in out and "llama, gpt2, bert" in out
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_report_files_and_snakemake_report(study):
    report = study / "results/tiny/report"
    md = (report / "report.md").read_text()
    runs = list(csv.DictReader((study / "results/tiny/runs.csv").open()))
    assert all(r["rung"] in md for r in runs)
    for stem in ("loss_vs_params", "learning_curves", "scale_sensitivity", "residuals"):
        assert (report / f"{stem}.png").stat().st_size > 5000
        assert "<svg" in (report / f"{stem}.svg").read_text()[:2000]
    html = study / "report.html"
    proc = snakemake(study, "--report", str(html))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = html.read_text(errors="replace")
    assert html.stat().st_size > 50_000 and "loss_vs_params" in text
