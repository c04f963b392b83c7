"""A diverged rung is data, not a crash (issue #12): training records it and exits 0,
evaluation records it without computing, runs.csv marks it, the sweep chooses among the
runs that did not diverge, and a WSD branch of a diverged stable run is marked too."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import ladder.evaluate as E
from ladder import aggregate, tune
from ladder.fit import cli as fit_cli
from ladder.train import lr_at
from tests.conftest import make_shards, nan_loss_from, read_log, run, tiny_rung

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def runs(shards, tmp_path_factory) -> tuple[Path, dict]:
    """runs/<id>/ of two rungs: `ok` (lr 0.003) and `hot` (lr 0.03, its loss NaN from step 3
    on by construction: `nan_loss_from`)."""
    root = tmp_path_factory.mktemp("runs")
    rungs = {"ok": tiny_rung(tokens=1024, eval_points=0)}
    rungs["hot"] = tiny_rung(tokens=1024, eval_points=0, lr=0.03)
    rungs = {k: r.__class__(**{**r.__dict__, "id": k}) for k, r in rungs.items()}
    assert run(rungs["ok"], shards, root / "ok") == 0
    with pytest.MonkeyPatch.context() as mp:
        nan_loss_from(mp, step=3)
        assert run(rungs["hot"], shards, root / "hot") == 0  # a divergence is not a failure
    return root, rungs


def evaluate(r, run_dir: Path, shards: Path, *extra: str) -> int:
    argv = ["--rung-json", r.to_json(), "--model-dir", str(run_dir / "model"),
            "--tokens-dir", str(shards), "--max-tokens", "512", "--batch-size", "4",
            "--train-json", str(run_dir / "train.json"), "--out", str(run_dir / "eval.json"),
            *extra]  # fmt: skip
    return E.main(argv)


def test_diverged_rung_writes_its_outputs_marked(runs):
    root, rungs = runs
    summary = json.loads((root / "hot" / "train.json").read_text())
    assert summary["diverged"] is True and summary["diverged_at_step"] == 3
    assert summary["diverged_loss"] == "nan" and summary["diverged_lr"] == lr_at(2, rungs["hot"])
    assert summary["loss_nats"] is None and summary["val_loss_nats"] is None
    assert summary["last_finite_step"] == 2 and summary["model_step"] == 0
    log = read_log(root / "hot")
    assert [r["step"] for r in log] == ["1", "2"]
    assert float(log[-1]["loss_nats"]) == summary["last_finite_loss_nats"]
    weights = load_file(root / "hot" / "model" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())  # never NaN weights
    assert json.loads((root / "ok" / "train.json").read_text())["diverged"] is False


def test_evaluate_records_a_diverged_rung_without_computing(runs, shards, monkeypatch):
    root, rungs = runs
    monkeypatch.setattr(E, "mean_loss", lambda *a, **k: pytest.fail("evaluated"))
    assert evaluate(rungs["hot"], root / "hot", shards) == 0
    record = json.loads((root / "hot" / "eval.json").read_text())
    assert record["diverged"] is True and record["loss_nats"] is None
    assert record["diverged_at_step"] == 3 and "step 3" in record["why"]
    monkeypatch.undo()
    assert evaluate(rungs["ok"], root / "ok", shards) == 0
    ok = json.loads((root / "ok" / "eval.json").read_text())
    assert ok["loss_nats"] > 0 and "diverged" not in ok


def test_non_finite_validation_loss_is_recorded_not_failed(runs, shards, tmp_path, monkeypatch):
    root, rungs = runs
    monkeypatch.setattr(E, "mean_loss", lambda *a, **k: (float("inf"), 512))
    out = tmp_path / "eval.json"
    argv = ["--rung-json", rungs["ok"].to_json(), "--model-dir", str(root / "ok" / "model"),
            "--tokens-dir", str(shards), "--max-tokens", "512", "--out", str(out)]  # fmt: skip
    assert E.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["diverged"] is True and record["loss_nats"] is None and "inf" in record["why"]


def test_runs_csv_marks_it_and_the_fit_leaves_it_out(runs, shards, tmp_path, capsys):
    root, rungs = runs
    for name in rungs:
        if not (root / name / "eval.json").exists():
            assert evaluate(rungs[name], root / name, shards) == 0
    rows = [{**r.row(), "id": name} for name, r in rungs.items()]
    out = tmp_path / "runs.csv"
    argv = ["--rungs-json", json.dumps(rows), "--runs-dir", str(root), "--out", str(out)]
    assert aggregate.main(argv) == 0
    table = pd.read_csv(out).set_index("rung")
    assert table.loc["hot", "diverged"] == 1 and table.loc["hot", "diverged_at_step"] == 3
    assert pd.isna(table.loc["hot", "loss_nats"])  # no NaN written as a loss: empty
    assert table.loc["ok", "diverged"] == 0 and table.loc["ok", "loss_nats"] > 0
    assert "(1 diverged)" in capsys.readouterr().out
    # the fit: a diverged row among good ones is left out, and said so
    good = pd.DataFrame(
        {
            "rung": [f"r{i}" for i in range(5)],
            "params_non_embedding": [1e5, 2e5, 4e5, 8e5, 1.6e6],
            "tokens": 1e7,
            "loss_nats": [4.0, 3.6, 3.3, 3.1, 2.95],
            "diverged": 0,
        }
    )
    both = pd.concat([good, table.reset_index().loc[table.index == "hot", good.columns]])
    both.to_csv(tmp_path / "mixed.csv", index=False)
    fits = tmp_path / "fits.json"
    assert fit_cli.main([str(tmp_path / "mixed.csv"), "--law", "power", "--bootstrap", "0",
                         "--out", str(fits)]) == 0  # fmt: skip
    assert "excluded 1 diverged run(s): hot" in capsys.readouterr().err
    assert "hot" not in json.loads(fits.read_text())["laws"]["power_params"]["rows"]


def test_sweep_chooses_among_runs_that_did_not_diverge(runs, tmp_path, capsys):
    root, rungs = runs
    sweep = [rungs["hot"].row(), rungs["ok"].row()]
    evals = [str(root / "hot" / "eval.json"), str(root / "ok" / "eval.json")]
    out = tmp_path / "size.json"
    argv = ["--size", "L1-d16", "--sweep-json", json.dumps(sweep), "--evals", *evals]
    assert tune.main([*argv, "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["best"]["rung"] == "ok"
    assert [c["diverged"] for c in summary["candidates"]] == [True, False]
    assert "1 diverged, not chosen" in capsys.readouterr().out
    # every run diverged: the size fails, naming its runs
    argv = ["--size", "L1-d16", "--sweep-json", json.dumps(sweep[:1]), "--evals", evals[0]]
    assert tune.main([*argv, "--out", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "size L1-d16: every sweep run diverged" in err and "hot (lr 0.03)" in err
    assert not (tmp_path / "none.json").exists()


def test_model_holds_the_last_checkpoint_before_the_nan(shards, tmp_path, monkeypatch):
    """With a checkpoint every step, the weights written are those after the last finite
    step: the same as a clean run's state there."""
    rung = tiny_rung(tokens=1024, eval_points=0, checkpoint_minutes=1e-9)
    clean = tmp_path / "clean"
    assert run(rung, shards, clean, "--stop-step", "5", "--state-out", str(tmp_path / "s5")) == 0
    nan_loss_from(monkeypatch, step=6)
    assert run(rung, shards, tmp_path / "hot") == 0
    summary = json.loads((tmp_path / "hot" / "train.json").read_text())
    assert summary["diverged_at_step"] == 6 and summary["model_step"] == 5
    state = torch.load(tmp_path / "s5", weights_only=True)
    weights = load_file(tmp_path / "hot" / "model" / "model.safetensors")
    assert state["step"] == 5 and set(weights) <= set(state["model"])
    for name, tensor in weights.items():  # bit for bit the clean run's weights at step 5
        assert torch.equal(tensor, state["model"][name]), name


def test_wsd_branch_of_a_diverged_stable_run_is_marked(shards, tmp_path, monkeypatch):
    rung = tiny_rung(tokens=1024, eval_points=0, schedule="wsd")
    state = tmp_path / "stable" / "b.state.pt"
    argv = ["--stop-step", "6", "--state-out", str(state)]
    nan_loss_from(monkeypatch, step=3)
    assert run(rung, shards, tmp_path / "stable", *argv) == 0
    saved = torch.load(state, weights_only=True)
    assert saved["diverged"]["step"] == 3 and "model" not in saved
    assert run(rung, shards, tmp_path / "branch", "--init-state", str(state)) == 0
    summary = json.loads((tmp_path / "branch" / "train.json").read_text())
    assert summary["diverged"] is True and summary["diverged_at_step"] == 3
    assert (tmp_path / "branch" / "model" / "model.safetensors").exists()
