"""The real DAG with runs that diverge (issue #12): a learning-rate sweep whose high point
goes NaN, and a rung of the ladder that goes NaN, still give runs.csv, fits and a report,
each saying which runs diverged. One Snakemake run of tests/configs/tiny_diverge.yaml."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import ROOT, snakemake

CONFIG = ROOT / "tests/configs/tiny_diverge.yaml"
BAD_RUNG = "L1-d16-T8.19K"  # its override decays the weights to inf

pytestmark = pytest.mark.slow  # one real Snakemake run of the study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("diverge")
    proc = snakemake(workdir, configfile=CONFIG)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir / "results/diverge"


def test_each_sweep_chooses_a_run_that_did_not_diverge(study):
    for size in ("L1-d8", "L1-d16"):
        sweep = json.loads((study / f"sweeps/{size}.json").read_text())
        by_lr = {c["lr"]: c for c in sweep["candidates"]}
        assert set(by_lr) == {0.01, 1e4}
        assert by_lr[1e4]["diverged"] is True and by_lr[1e4]["loss_nats"] is None
        assert by_lr[0.01]["diverged"] is False and sweep["best"]["lr"] == 0.01
        hot = study / "runs" / by_lr[1e4]["rung"]
        train = json.loads((hot / "train.json").read_text())
        # the step a 1e6 × lr diverges at depends on the CPU's floating point: check
        # that every output agrees with the step the run recorded
        step = train["diverged_at_step"]
        assert train["diverged"] is True and 1 <= step <= train["steps"]
        assert train["last_finite_step"] == step - 1
        rows = list(csv.DictReader((hot / "train_log.csv").open()))
        assert [int(r["step"]) for r in rows] == list(range(1, step))
        assert json.loads((hot / "eval.json").read_text())["diverged"] is True
        log = (study / f"logs/train/{by_lr[1e4]['rung']}.log").read_text()
        assert f"diverged at step {step}" in log and "Traceback" not in log


def test_runs_csv_fits_and_report_mark_the_diverged_rung(study):
    runs = {r["rung"]: r for r in csv.DictReader((study / "runs.csv").open())}
    assert len(runs) == 4
    assert runs[BAD_RUNG]["diverged"] == "1" and runs[BAD_RUNG]["loss_nats"] == ""
    assert all(r["diverged"] == "0" and float(r["loss_nats"]) > 0 for k, r in runs.items()
               if k != BAD_RUNG)  # fmt: skip
    assert all(float(r["lr"]) == 0.01 for r in runs.values())  # the tuned lr
    fits = json.loads((study / "fits.json").read_text())
    assert any(BAD_RUNG in w and "diverged" in w for w in fits["meta"]["data_warnings"])
    for entry in fits["laws"].values():
        assert BAD_RUNG not in entry.get("rows", [])
    md = (study / "report/report.md").read_text()
    assert f"diverged or without a loss (excluded from fits): {BAD_RUNG}" in md
