"""Laws of whole learning curves (ladder.fit.annealing, multipower, sized, approach1):
synthetic curves drawn from known parameters under cosine, constant and WSD schedules with
noise, the schedule recomputed from curves.csv, and the `ladder fit CURVES.csv` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ladder.fit import annealing, multipower, sized
from ladder.fit.cli import main as fit_main
from ladder.fit.curve_entry import (
    Options,
    fit_curve_law,
    fit_sized_law,
    fit_steps,
    predicted_curve,
)
from ladder.fit.curves import Curve, CurveColumns, Curves
from ladder.schedule import Schedule, parse_spec
from ladder.train import lr_at
from tests.conftest import tiny_rung

TRUE = {"L0": 2.5, "A": 1.2, "alpha": 0.45, "C": 0.6}  # Tissue et al.'s law
BASE = {"steps": 2000, "lr": 3e-3, "warmup_frac": 0.02, "min_lr_frac": 0.0}
SCHEDULES = {
    "cosine": Schedule(schedule="cosine", **BASE),
    "constant": Schedule(schedule="constant", **BASE),
    "wsd": Schedule(schedule="wsd", decay_frac=0.2, **BASE),
}
NOISE = 0.003  # sd of log loss, about a small run's step-to-step noise


def synthetic(name: str, sched: Schedule, kit=annealing, params=TRUE, every=1, seed=0) -> Curve:
    """A run's curve under `sched` from the law's own formula, with lognormal noise."""
    steps = np.arange(1, sched.steps + 1, every)
    curve = Curve(name, steps, np.ones(len(steps)), sched.lrs(), 1e5, None, sched)
    curve.warmup_steps = sched.warmup_steps
    clean = kit.loss_of(kit.Design([(curve, steps)], annealing.LAMBDA), params)
    rng = np.random.default_rng([seed, len(name)])
    curve.loss = clean * np.exp(rng.normal(0, NOISE, len(steps)))
    return curve


def curves_csv(curves: list[Curve], path) -> None:
    """The curves as ladder.aggregate writes curves.csv (with each run's schedule)."""
    rows = []
    for c in curves:
        s = c.schedule
        for step, loss in zip(c.steps, c.loss, strict=True):
            rows.append(
                {"rung": c.run, "step": step, "tokens": step * 1024, "loss_nats": loss}
                | {"lr": c.lrs[step - 1], "schedule": s.schedule, "lr_peak": s.lr}
                | {"warmup_frac": s.warmup_frac, "min_lr_frac": s.min_lr_frac}
                | {"decay_frac": s.decay_frac, "steps_total": s.steps, "batch_tokens": 1024}
                | {"params_non_embedding": c.size, "flops_per_token": 6 * c.size}
            )
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.mark.parametrize("name", ["cosine", "constant", "wsd"])
def test_schedule_lrs_are_the_trainers(name):
    r = tiny_rung(tokens=1024 * 300, schedule=name, warmup_frac=0.1, min_lr_frac=0.1)
    sched = Schedule.of(r)
    assert np.array_equal(sched.lrs(), [lr_at(s, r) for s in range(r.steps)])
    assert parse_spec("wsd:decay_frac=0.3,steps=50", sched) == Schedule(
        50, r.lr, "wsd", 0.1, 0.1, 0.3
    )
    with pytest.raises(ValueError, match="not one of cosine"):
        parse_spec("linear", sched)


def test_annealing_recovers_the_parameters():
    curves = [synthetic(n, s) for n, s in SCHEDULES.items()]
    entry, _ = fit_curve_law("annealing", Curves(curves, CurveColumns()), Options(bootstrap=50))
    group = entry["groups"]["N=1e+05"]
    for name, value in TRUE.items():
        assert group["params"][name] == pytest.approx(value, rel=0.02), name
        lo, hi = group["ci95"][name]
        assert lo <= group["params"][name] <= hi
    assert all(v < 1.5 * NOISE for v in group["mare"].values())  # the noise's own ~0.8 sd
    assert group["holdout"]["mare_mean"] < 0.01


@pytest.mark.parametrize("held", ["cosine", "constant", "wsd"])
def test_two_schedules_predict_the_third(held):
    train = [synthetic(n, s) for n, s in SCHEDULES.items() if n != held]
    opts = Options(bootstrap=0, predict=(held,))
    entry, rows = fit_curve_law("annealing", Curves(train, CurveColumns()), opts)
    group = entry["groups"]["N=1e+05"]
    steps, _, pred, _, _ = predicted_curve(annealing, group["params"], [], SCHEDULES[held], 0.999)
    truth = synthetic(held, SCHEDULES[held])
    late = steps > SCHEDULES[held].warmup_steps
    clean = annealing.loss_of(annealing.Design([(truth, steps[late])], 0.999), TRUE)
    assert np.mean(np.abs(pred[late] - clean) / clean) < 0.01
    assert len(rows) == len(steps) and rows[-1]["loss_nats"] == pytest.approx(pred[-1])


def test_multipower_fits_and_predicts():
    true = {"L0": 2.5, "A": 0.8, "alpha": 0.5, "B": 300.0, "C": 2.0, "beta": 0.6, "gamma": 0.6}
    base = {**BASE, "steps": 1000, "lr": 3e-4}
    cos, wsd = Schedule(schedule="cosine", **base), Schedule(schedule="wsd", **base)
    train = [synthetic(n, s, multipower, true, every=10) for n, s in (("c", cos), ("w", wsd))]
    entry, _ = fit_curve_law("multipower", Curves(train, CurveColumns()), Options(bootstrap=0))
    group = entry["groups"]["N=1e+05"]
    assert set(group["params"]) == set(multipower.NAMES)
    assert group["mare_mean"] < 1.5 * NOISE
    const = Schedule(schedule="constant", **base)
    steps, _, pred, _, _ = predicted_curve(multipower, group["params"], [], const, 0.999)
    truth = synthetic("k", const, multipower, true)
    clean = multipower.loss_of(multipower.Design([(truth, steps)]), true)
    late = steps > const.warmup_steps
    assert np.mean(np.abs(pred[late] - clean[late]) / clean[late]) < 0.01


def test_cli_fits_predicts_and_approach1(tmp_path):
    curves = [synthetic(n, s, every=4) for n, s in SCHEDULES.items()]
    # Approach 1: Chinchilla-like curves, L = E + A/N^a + B/D^b, for four sizes
    for n in (1e5, 3e5, 1e6, 3e6):
        sched = Schedule(steps=400, lr=1e-3, schedule="constant")
        steps = np.arange(1, 401, 2)
        D = steps * 1024.0 * (n / 1e5)  # larger sizes see more tokens per step here
        loss = 1.7 + 400 / n**0.34 + 400 / D**0.28
        c = Curve(f"N{n:g}", steps, loss, sched.lrs(), n, 6 * n, sched, 0, 1024.0 * n / 1e5)
        curves.append(c)
    path = tmp_path / "curves.csv"
    curves_csv(curves[:3], path)
    out, pred = tmp_path / "fits.json", tmp_path / "pred.csv"
    argv = [str(path), "--law", "annealing", "--bootstrap", "20", "--out", str(out)]
    assert (
        fit_main([*argv, "--predict-schedule", "wsd:decay_frac=0.3", "--predict-out", str(pred)])
        == 0
    )
    entry = json.loads(out.read_text())["laws"]["annealing"]
    group = entry["groups"]["N=1e+05"]
    assert group["params"]["alpha"] == pytest.approx(TRUE["alpha"], rel=0.03)
    assert set(group["mare"]) == set(SCHEDULES)
    table = pd.read_csv(pred)
    assert (table["spec"] == "wsd:decay_frac=0.3").all() and table["step"].max() == 2000
    assert group["predictions"][0]["final_loss_nats"] == pytest.approx(table["loss_nats"].iloc[-1])

    rows = []
    for c in curves[3:]:
        for s, loss in zip(c.steps, c.loss, strict=True):
            rows.append({"rung": c.run, "step": s, "loss_nats": loss, "lr": c.lrs[s - 1]})
            rows[-1] |= {"params_non_embedding": c.size, "flops_per_token": 6 * c.size}
            rows[-1] |= {"batch_tokens": c.batch_tokens}
    # without schedule columns the table must log every step (these log every other one)
    pd.DataFrame(rows).to_csv(path, index=False)
    assert fit_main([str(path), "--law", "approach1", "--out", str(out)]) == 2
    pd.DataFrame(rows).assign(step=lambda d: d.groupby("rung").cumcount() + 1).to_csv(path)
    assert fit_main([str(path), "--law", "approach1", "--bootstrap", "30", "--out", str(out)]) == 0
    a1 = json.loads(out.read_text())["laws"]["approach1"]
    assert 0 < a1["params"]["a"] < 1 and a1["ci95"]["a"][0] <= a1["params"]["a"]
    assert len(a1["sizes_on_envelope"]) >= 2


def test_cli_bad_curves_name_the_problem(tmp_path, capsys):
    curves = [synthetic("cos", SCHEDULES["cosine"], every=50)]
    path = tmp_path / "curves.csv"
    curves_csv(curves, path)
    table = pd.read_csv(path)
    table.loc[3, "lr"] *= 1.5  # a logged lr that is not the schedule's
    table.to_csv(path, index=False)
    assert fit_main([str(path), "--law", "annealing"]) == 2
    assert "is not its schedule's" in capsys.readouterr().err
    table.drop(columns=["rung"]).to_csv(path, index=False)
    assert fit_main([str(path), "--law", "annealing"]) == 2
    assert "no column 'rung' (--run-col)" in capsys.readouterr().err
    assert fit_main([str(path), "--law", "annealing", "--run-col", "x", "--lambda", "2"]) == 2
    assert "--lambda must be in (0, 1)" in capsys.readouterr().err


# the law across sizes (OLMo's form of Tissue et al.'s law): 4 sizes x 2 schedules
SIZED_TRUE = {"E": 1.8, "A": 40.0, "alpha": 0.35, "B": 0.5, "beta": 0.45, "F": 0.02, "gamma": 0.2}
SIZES = (1e5, 3e5, 1e6, 3e6)


def sized_ladder(every: int = 1) -> tuple[list[Curve], dict[str, np.ndarray]]:
    """Cosine and WSD runs of each size from SIZED_TRUE with NOISE, and their clean curves."""
    curves, clean = [], {}
    for N in SIZES:
        for name in ("cosine", "wsd"):
            sched = SCHEDULES[name]
            steps = np.arange(1, sched.steps + 1, every)
            c = Curve(f"{name}-N{N:g}", steps, np.ones(len(steps)), sched.lrs(), N, 6 * N, sched)
            c.warmup_steps = sched.warmup_steps
            clean[c.run] = sized.loss_of(sized.Design([(c, steps)], annealing.LAMBDA), SIZED_TRUE)
            rng = np.random.default_rng([int(N), len(name)])
            c.loss = clean[c.run] * np.exp(rng.normal(0, NOISE, len(steps)))
            curves.append(c)
    return curves, clean


def test_sized_law_recovers_the_parameters_and_predicts_a_larger_size():
    curves, clean = sized_ladder()
    opts = Options(bootstrap=40, predict_sizes=(1e7,))
    entry, rows = fit_sized_law("annealing_sized", Curves(curves, CurveColumns()), opts)
    p = entry["params"]
    for name in ("alpha", "beta"):
        assert p[name] == pytest.approx(SIZED_TRUE[name], rel=0.05), name
    for name in ("E", "gamma"):
        assert p[name] == pytest.approx(SIZED_TRUE[name], rel=0.1), name
    for name, (lo, hi) in entry["ci95"].items():
        assert lo <= p[name] <= hi, name
    assert entry["sizes"] == list(SIZES) and entry["n_runs"] == 8
    assert all(v < 1.5 * NOISE for v in entry["mare"].values())
    assert entry["bootstrap"]["unit"] == "runs" and entry["bootstrap"]["used"] >= 38
    # refit without N = 3e6: its two runs' curves predicted within 2% of the clean truth
    held = entry["holdout_size"]
    assert held["held_out_size"] == 3e6 and held["fitted_on_sizes"] == [1e5, 3e5, 1e6]
    assert set(held["predicted"]) == {"cosine-N3e+06", "wsd-N3e+06"}
    assert held["mare_mean"] < 0.02
    for c in curves[-2:]:
        steps = fit_steps(c, sized.MAX_POINTS)
        pred = sized.loss_of(sized.Design([(c, steps)], annealing.LAMBDA), held["params"])
        truth = clean[c.run][np.searchsorted(c.steps, steps)]
        assert np.mean(np.abs(pred - truth) / truth) < 0.02
    # a size that was not run (N = 1e7) under the largest size's WSD schedule: the predicted
    # curve is the true law's within 2%, its final loss inside the 95% band
    (pred,) = entry["predictions"]
    wsd = SCHEDULES["wsd"]
    assert pred["size"] == 1e7 and pred["spec"] == "as-run"
    assert pred["schedule"]["steps"] == wsd.steps
    c = Curve("N1e7", np.array([r["step"] for r in rows]), np.ones(len(rows)), wsd.lrs(), 1e7)
    c.warmup_steps = wsd.warmup_steps
    truth = sized.loss_of(sized.Design([(c, c.steps)], annealing.LAMBDA), SIZED_TRUE)
    loss = np.array([r["loss_nats"] for r in rows])
    after = c.steps > wsd.warmup_steps
    assert np.mean(np.abs(loss - truth)[after] / truth[after]) < 0.02
    lo, hi = pred["final_ci95"]
    assert lo <= pred["final_loss_nats"] <= hi and lo < truth[-1] < hi
    assert {r["group"] for r in rows} == {"N=1e+07"}


def test_cli_sized_law_and_its_bad_input(tmp_path, capsys):
    curves, _ = sized_ladder(every=8)
    path, out = tmp_path / "curves.csv", tmp_path / "fits.json"
    curves_csv(curves, path)
    argv = [str(path), "--law", "annealing_sized", "--bootstrap", "20", "--out", str(out)]
    assert fit_main(argv) == 0
    entry = json.loads(out.read_text())["laws"]["annealing_sized"]
    assert entry["method"] == sized.METHOD and entry["references"] == sized.REFERENCES
    assert entry["params"]["beta"] == pytest.approx(SIZED_TRUE["beta"], rel=0.05)
    assert entry["holdout_size"]["mare_mean"] < 0.02
    assert "held-out largest size: MARE" in capsys.readouterr().out
    # a size that was not run, under two schedules: fits.json's predictions and the curves
    pred_csv = tmp_path / "pred.csv"
    more = ["--predict-size", "1e7", "--predict-schedule", "cosine", "--predict-schedule"]
    more += ["wsd:decay_frac=0.3", "--predict-out", str(pred_csv)]
    assert fit_main(argv + more) == 0
    preds = json.loads(out.read_text())["laws"]["annealing_sized"]["predictions"]
    assert [(p["size"], p["spec"]) for p in preds] == [(1e7, "cosine"), (1e7, "wsd:decay_frac=0.3")]
    table = pd.read_csv(pred_csv)
    assert set(table["law"]) == {"annealing_sized"} and set(table["group"]) == {"N=1e+07"}
    assert set(table["spec"]) == {"cosine", "wsd:decay_frac=0.3"}
    # bigger model, same schedule: a lower predicted loss
    small = ["--predict-size", "1e5", "--predict-schedule", "cosine"]
    assert fit_main(argv + small) == 0
    low = json.loads(out.read_text())["laws"]["annealing_sized"]["predictions"][0]
    assert preds[0]["final_loss_nats"] < low["final_loss_nats"]
    # a size that is not a positive count, or a law that cannot predict a size
    capsys.readouterr()
    assert fit_main(argv + ["--predict-size", "-5"]) == 2
    assert "--predict-size must be a positive parameter count, got -5" in capsys.readouterr().err
    bad = [str(path), "--law", "annealing", "--predict-size", "1e7", "--bootstrap", "0"]
    assert fit_main(bad) == 2
    assert "--predict-size goes with --law annealing_sized" in capsys.readouterr().err
    # one size only: a clear error naming the size column
    curves_csv([c for c in curves if c.size == 1e5], path)
    assert fit_main(argv) == 2
    err = capsys.readouterr().err
    assert "at least 3 model sizes (column 'params_non_embedding')" in err and "got 1" in err
    assert "Traceback" not in err
