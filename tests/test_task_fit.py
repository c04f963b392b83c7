"""The task law (ladder.fit.task, OLMo's two-step method): known parameters recovered from
noisy synthetic checkpoints, intervals that cover the truth, `ladder fit --law task` writing
laws.task, and bad input named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ladder.fit import main
from ladder.fit.task import TaskColumns, fit_task, load_points

STEP1 = {"E": 0.6, "A": 40.0, "alpha": 0.3, "B": 30.0, "beta": 0.3}
STEP2 = {"a": 0.65, "b": 0.25, "k": 5.0, "L0": 1.3}
TARGET = (1e8, 2e9)


def truth(N, D):
    L = STEP1["E"] + STEP1["A"] / N ** STEP1["alpha"] + STEP1["B"] / D ** STEP1["beta"]
    return L, STEP2["a"] / (1 + np.exp(STEP2["k"] * (L - STEP2["L0"]))) + STEP2["b"]


def sigmoid_acc(L):
    return STEP2["a"] / (1 + np.exp(STEP2["k"] * (L - STEP2["L0"]))) + STEP2["b"]


# Gadre et al. 2024's step 2: top-1 error Err = eps - k exp(-gamma L); accuracy 0.32 to
# 0.72 over the table's task losses (0.9 to 1.9 bits/byte)
GADRE = {"eps": 0.8, "k": 2.0, "gamma": 1.5}


def gadre_acc(L):
    return 1 - (GADRE["eps"] - GADRE["k"] * np.exp(-GADRE["gamma"] * L))


def tasks_table(seed: int = 0, noise: float = 0.01, acc_of=sigmoid_acc) -> pd.DataFrame:
    """tasks.csv's shape: 15 runs (5 sizes x 3 token budgets), 5 checkpoints each; accuracy
    `acc_of` the task loss, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in (1e6, 2e6, 4e6, 8e6, 16e6):
        for tpp in (5, 20, 80):
            for f in (0.1, 0.2, 0.4, 0.7, 1.0):
                D = N * tpp * f
                L = truth(N, D)[0] * np.exp(rng.normal(0, noise))
                acc = acc_of(L)
                rows.append(
                    {
                        "run": f"N{N:g}-T{tpp}",
                        "step": int(100 * f),
                        "tokens": D,
                        "params": N,
                        "task": "next_line",
                        "acc": float(np.clip(acc + rng.normal(0, noise), 0, 1)),
                        "acc_norm": acc,
                        "bpb": L,
                        "chance": 0.25,
                        "n_examples": 500,
                        "final": f == 1.0,
                    }
                )
    return pd.DataFrame(rows)


COLS = TaskColumns(params="params")


def test_fit_recovers_known_parameters_and_covers_the_truth():
    entry = fit_task(load_points(tasks_table(), COLS), [TARGET], bootstrap=100, seed=0)
    s2 = entry["step2"]["params"]
    assert s2["b"] == 0.25
    # step 2 sees 75 checkpoints with 1% noise: within 10% of the truth
    for name in ("a", "k", "L0"):
        assert s2[name] == pytest.approx(STEP2[name], rel=0.1), name
        lo, hi = entry["step2"]["ci95"][name]
        assert lo <= STEP2[name] <= hi, name
    # step 1 has 15 points: the exponents only loosely, but inside their intervals
    for name in ("alpha", "beta"):
        lo, hi = entry["step1"]["ci95"][name]
        assert lo <= STEP1[name] <= hi, name
    (pred,) = entry["predictions"]
    L, acc = truth(*TARGET)
    assert pred["task_loss_ci95"][0] <= L <= pred["task_loss_ci95"][1]
    assert pred["acc_ci95"][0] <= acc <= pred["acc_ci95"][1]
    assert abs(pred["acc"] - acc) < 0.05


def test_gadre_exp_step2_recovers_known_parameters_and_chains(tmp_path):
    """--step2 exp: Err = eps - k exp(-gamma L) (Gadre et al. 2024) fitted to noisy points
    of known parameters: recovered, inside their intervals, the prediction chained."""
    df = tasks_table(acc_of=gadre_acc)
    entry = fit_task(load_points(df, COLS), [TARGET], bootstrap=100, seed=0, step2="exp")
    assert entry["step2_form"] == entry["step2"]["form"] == "exp"
    assert "exp(-gamma" in entry["formula"]["step2"] and entry["step2"]["fixed"] == []
    s2, ci = entry["step2"]["params"], entry["step2"]["ci95"]
    assert set(s2) == set(GADRE) and set(ci) == set(GADRE)
    for name, value in GADRE.items():
        assert s2[name] == pytest.approx(value, rel=0.15), name
        assert ci[name][0] <= value <= ci[name][1], name
    assert {"eps", "k", "gamma", "E", "alpha"} <= set(entry["params"])
    (pred,) = entry["predictions"]
    L = truth(*TARGET)[0]
    assert pred["task_loss_ci95"][0] <= L <= pred["task_loss_ci95"][1]
    assert pred["acc"] == pytest.approx(
        1 - (s2["eps"] - s2["k"] * np.exp(-s2["gamma"] * pred["task_loss"]))
    )
    assert pred["acc_ci95"][0] <= gadre_acc(L) <= pred["acc_ci95"][1]
    assert abs(pred["acc"] - gadre_acc(L)) < 0.05
    # the sigmoid on the same points is another law: its own parameters, b at chance
    sig = fit_task(load_points(df, COLS), [TARGET], bootstrap=0)
    assert sig["step2_form"] == "sigmoid" and set(sig["step2"]["params"]) == {"a", "b", "k", "L0"}


def test_step1_fits_final_rows_only_and_step2_every_row():
    """Step 1 reads each run's final checkpoint only: moving the intermediate rows' tokens
    changes nothing of it, and a run without a final row (a WSD stable run's kept models)
    adds points to step 2 alone; step 2 reads every row."""
    df = tasks_table()
    stable = df[(df["run"] == "N1e+06-T80") & ~df["final"]].assign(run="N1e+06-stable")
    base = fit_task(load_points(df, COLS), bootstrap=0)
    moved = pd.concat([df.assign(tokens=np.where(df["final"], df["tokens"], 10 * df["tokens"])),
                       stable.assign(tokens=stable["tokens"] * 1e3)])  # fmt: skip
    points = load_points(moved, COLS)
    assert points.last.sum() == 15 and len(points.runs) == 16 and len(points.loss) == 79
    entry = fit_task(points, bootstrap=0)
    assert entry["step1"]["params"] == pytest.approx(base["step1"]["params"], rel=1e-9)
    assert entry["n_runs"] == entry["n_final"] == 15 and entry["n_intermediate"] == 64
    assert entry["step2"]["n_points"] == 79 and "N1e+06-stable" in entry["rows"]
    final_only = fit_task(load_points(df[df["final"]], COLS), bootstrap=0)
    assert final_only["step2"]["n_points"] == 15
    assert final_only["step2"]["params"] != pytest.approx(base["step2"]["params"], rel=1e-6)


def test_one_row_per_run_and_diverged_runs_left_out():
    df = tasks_table()
    final = df[df["final"]].drop(columns=["final"]).copy()
    final["diverged"] = False
    final.loc[final.index[0], "diverged"] = True
    points = load_points(final, COLS)
    assert len(points.runs) == 14 and points.last.all()
    assert "diverged" in points.warnings[0]


def test_cli_step2_exp_writes_its_form(tmp_path):
    path, out = tmp_path / "tasks.csv", tmp_path / "fits.json"
    tasks_table(acc_of=gadre_acc).to_csv(path, index=False)
    argv = [str(path), "--law", "task", "--params-col", "params", "--step2", "exp"]
    assert main([*argv, "--predict", "1e8,2e9", "--bootstrap", "20", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["laws"]["task"]
    assert entry["step2_form"] == "exp" and set(entry["step2"]["params"]) == set(GADRE)
    assert set(entry["step2"]["ci95"]) == set(GADRE) and entry["predictions"][0]["acc_ci95"]


def test_cli_writes_laws_task(tmp_path, capsys):
    path, out = tmp_path / "tasks.csv", tmp_path / "fits.json"
    tasks_table().to_csv(path, index=False)
    argv = [str(path), "--law", "task", "--params-col", "params", "--task-loss-col", "bpb"]
    argv += ["--acc-col", "acc", "--task", "next_line", "--predict", "1e8,2e9"]
    assert main([*argv, "--bootstrap", "30", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["laws"]["task"]
    assert set(entry["step1"]["params"]) == {"E", "A", "alpha", "B", "beta"}
    assert set(entry["step2"]["params"]) == {"a", "b", "k", "L0"}
    assert set(entry["step1"]["ci95"]) == {"E", "A", "alpha", "B", "beta"}
    assert entry["method"] and entry["chance"] == 0.25
    (pred,) = entry["predictions"]
    assert {"N", "D", "task_loss", "acc", "task_loss_ci95", "acc_ci95"} <= set(pred)
    assert "acc" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "extra", "says"),
    [
        (lambda df: df.drop(columns=["bpb"]), [], "'bpb'"),
        (lambda df: df, ["--acc-col", "accuracy"], "'accuracy'"),
        (lambda df: df[df["run"].str.startswith("N1e+06")], [], "runs for 5 parameters"),
        (lambda df: df.drop(columns=["chance"]), [], "--chance"),
        (lambda df: df, ["--task", "nope"], "'nope'"),
        (lambda df: df, ["--predict", "1e8"], "N,D"),
        (lambda df: df.assign(acc=df["acc"] + 2), [], "[0, 1]"),
        (lambda df: df, ["--step2", "logistic"], "--step2 must be one of sigmoid, exp; got"),
    ],
)
def test_bad_input_is_named(tmp_path, capsys, change, extra, says):
    path = tmp_path / "tasks.csv"
    change(tasks_table()).to_csv(path, index=False)
    argv = [str(path), "--law", "task", "--params-col", "params", "--bootstrap", "0", *extra]
    assert main([*argv, "--out", str(tmp_path / "fits.json")]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "fits.json").exists()


def test_law_all_with_tasks_fits_every_task_and_skips_what_it_cannot(tmp_path):
    """The study's fit rule: --law all --tasks tasks.csv; a task on too few runs is skipped
    with why, the others fitted, laws.task being the first task's entry."""
    df = tasks_table()
    tiny = df[df["run"].str.startswith("N1e+06")].assign(task="a_tiny")
    tasks = tmp_path / "tasks.csv"
    pd.concat([df, tiny]).to_csv(tasks, index=False)
    runs = df[df["final"]].assign(
        rung=lambda d: d["run"], params_non_embedding=lambda d: d["params"], loss_nats=3.0
    )
    runs["loss_nats"] = 3 * runs["bpb"]
    runs["diverged"] = runs["rung"] == "N1.6e+07-T80"  # runs.csv says so; tasks.csv does not
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out = tmp_path / "fits.json"
    argv = [str(tmp_path / "runs.csv"), "--law", "all", "--tasks", str(tasks)]
    assert main([*argv, "--predict", "1e8,2e9", "--bootstrap", "20", "--out", str(out)]) == 0
    laws = json.loads(out.read_text())["laws"]
    assert "chinchilla" in laws
    assert "runs for 5 parameters" in laws["task:a_tiny"]["skipped"]
    assert laws["task"] == laws["task:a_tiny"]
    assert laws["task:next_line"]["predictions"][0]["acc_ci95"] is not None
    assert laws["task:next_line"]["n_runs"] == 14
    assert "N1.6e+07-T80" not in laws["task:next_line"]["rows"]


def test_report_draws_each_task_and_says_one_line(tmp_path):
    """ladder report with a task law: task_scaling.png/svg and one report.md line per task
    whose numbers are fits.json's."""
    from ladder.report import cli as report_cli

    df = tasks_table()
    tasks = tmp_path / "tasks.csv"
    df.to_csv(tasks, index=False)
    runs = df[df["final"]].assign(rung=lambda d: d["run"], params_non_embedding=df["params"])
    runs = runs.assign(loss_nats=3 * runs["bpb"], flops=6 * runs["params"] * runs["tokens"])
    runs.to_csv(tmp_path / "runs.csv", index=False)
    fits = tmp_path / "fits.json"
    argv = [str(tmp_path / "runs.csv"), "--law", "all", "--tasks", str(tasks)]
    assert main([*argv, "--predict", "1e8,2e9", "--bootstrap", "20", "--out", str(fits)]) == 0
    out = tmp_path / "report"
    assert report_cli.main([str(tmp_path / "runs.csv"), str(fits), "--out", str(out)]) == 0
    for ext in ("png", "svg"):
        assert (out / f"task_scaling.{ext}").stat().st_size > 1000
    md = (out / "report.md").read_text()
    entry = json.loads(fits.read_text())["laws"]["task:next_line"]
    (line,) = [x for x in md.splitlines() if x.startswith("- **next_line**")]
    assert f"{entry['predictions'][0]['acc']:.3g}" in line
    assert f"L0 = {entry['step2']['params']['L0']:.3g}" in line
