"""The report from tables alone: every plot file, the drawn law equal to fit.predict, report.md's
numbers equal to runs.csv and fits.json, and a study too small for most laws.

fits.json comes from ladder.fit on synthetic runs with a known Chinchilla law, so these tests
exercise the real contract between the two stages. The `snakemake --report` run on the tiny
study lives in the DAG test (test_pipeline.py).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from ladder import fit
from ladder.artifacts import REPORT_PLOTS
from ladder.fit.curve_entry import Options
from ladder.fit.curve_table import CURVE_LAW_NAMES, IN_ALL, fit_curves
from ladder.fit.curves import CurveColumns
from ladder.fit.table import write_fits
from ladder.report import allocation, build, cli, curves, inputs, laws, make_report
from tests.conftest import ALPHA, BETA, ROOT, A, B, E, runs_table


def curves_table(runs: pd.DataFrame, points: int = 30) -> pd.DataFrame:
    """Self-similar learning curves ending at each rung's loss."""
    rows = []
    for _, r in runs.iterrows():
        for step in range(points + 1):
            t = r["tokens"] * step / points
            loss = E + (r["loss_nats"] - E) * (max(step, 0.5) / points) ** -0.3
            rows.append(
                {
                    "rung": r["rung"],
                    "step": step,
                    "tokens": t,
                    "loss_nats": loss,
                    "val_loss_nats": loss if step in (3, 10, points) else np.nan,
                    "lr": 1e-3,
                    "params_non_embedding": r["params_non_embedding"],
                    "flops_per_token": r["flops"] / r["tokens"],
                    "batch_tokens": r["tokens"] / points,
                }
            )
    return pd.DataFrame(rows)


def write_study(folder: Path, runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "runs": folder / "runs.csv",
        "fits": folder / "fits.json",
        "meta": folder / "meta.json",
        "config": folder / "study.yaml",
    }
    runs.to_csv(paths["runs"], index=False)
    fits = fit.fit_table(runs, bootstrap=40, seed=0)
    if curves is not None:  # the curve laws, as `ladder fit --law all --curves` adds them
        opts = Options(bootstrap=20)
        fits["laws"].update(fit_curves(curves, list(IN_ALL), CurveColumns(), opts, skip=True)[0])
    write_fits(paths["fits"], fits)
    paths["meta"].write_text(json.dumps({"entropy_nats_per_token": E}))
    paths["config"].write_text(
        "study: synthetic\nladder: {widths: [32, 64, 96, 128, 160]}\n"
        "report:\n  extrapolate_to: {flops: 1.0e+20}\n"
    )
    if curves is not None:
        paths["curves"] = folder / "curves.csv"
        curves.to_csv(paths["curves"], index=False)
    return paths


def run_cli(paths: dict, out: Path, *extra: str) -> int:
    argv = [
        str(paths["runs"]),
        str(paths["fits"]),
        "--out",
        str(out),
        "--meta",
        str(paths["meta"]),
        "--config",
        str(paths["config"]),
        *extra,
    ]
    if "curves" in paths:
        argv += ["--curves", str(paths["curves"])]
    return cli.main(argv)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> dict:
    """Three budgets x five sizes: every law can be fitted."""
    root = tmp_path_factory.mktemp("full")
    runs = runs_table([1e15, 1e16, 1e17], np.geomspace(3e5, 3e7, 5))
    paths = write_study(root / "in", runs, curves_table(runs))
    paths["out"] = root / "report"
    assert run_cli(paths, paths["out"]) == 0
    return paths


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """Four rungs on one token budget, one of them diverged, no learning curves."""
    root = tmp_path_factory.mktemp("tiny")
    runs = runs_table([1e14], np.geomspace(1e5, 1e6, 5))
    runs["tokens"] = 2e6
    runs["flops"] = 6 * runs["params_non_embedding"] * runs["tokens"]
    runs.loc[4, ["loss_nats", "diverged"]] = [np.nan, 1]
    paths = write_study(root / "in", runs)
    paths["out"] = root / "report"
    assert run_cli(paths, paths["out"], "--extrapolate-to", "params=1e9") == 0
    return paths


def md_table(text: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header starts with `first_header` cells."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[: len(first_header.split())] == first_header.split():
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                values = [c.strip() for c in row.strip().strip("|").split("|")]
                rows.append(dict(zip(cells, values, strict=True)))
            return rows
    raise AssertionError(f"no table starting with '{first_header}'")


def close(cell: str, value, digits: int = 4) -> bool:
    """A report.md cell (4 significant digits) against the number it came from."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return cell == "–"
    return math.isclose(float(cell), float(value), rel_tol=0.6 * 10 ** (1 - digits), abs_tol=1e-300)


def test_every_plot_is_written_and_nontrivial(full, tiny):
    # a plot the tiny study cannot support is a figure that says so: smaller, never empty
    for paths, min_bytes in ((full, 15_000), (tiny, 5_000)):
        for stem in REPORT_PLOTS:
            png, svg = paths["out"] / f"{stem}.png", paths["out"] / f"{stem}.svg"
            # neither study scores tasks: task_scaling says so (drawn: test_task_fit.py)
            least = 5_000 if stem == "task_scaling" else min_bytes
            assert png.stat().st_size > least, stem
            pixels = mpimg.imread(png)[..., :3]
            # non-trivial: a good share of the canvas is not background
            assert (pixels.std(axis=-1) + np.abs(pixels - 1).mean(axis=-1) > 0.05).mean() > 0.02
            assert svg.read_text().count("<path") > 20, stem
        assert (paths["out"] / "report.md").exists()
        assert not list(paths["out"].glob(".*")), "temp files left behind"


def test_drawn_law_is_fit_predict_on_fits_json(full):
    study = inputs.load(str(full["runs"]), str(full["fits"]), config_yaml=str(full["config"]))
    entry = json.loads(full["fits"].read_text())["laws"]["power_compute"]
    fig = laws.plot_loss_vs(study, "compute")
    lines = [ln for ln in fig.axes[0].lines if ln.get_label().startswith(entry["formula"])]
    assert len(lines) == 1
    x, y = (np.asarray(v, dtype=float) for v in lines[0].get_data())
    assert len(x) > 20
    np.testing.assert_allclose(y, fit.predict(entry, C=x), rtol=1e-12)
    # the solid segment spans the rungs; the target 1e20 FLOPs lies on the dashed extension
    C = pd.read_csv(full["runs"])["flops"]
    assert x.min() < C.min() and math.isclose(x.max(), C.max(), rel_tol=1e-12)
    dashed = [
        ln
        for ln in fig.axes[0].lines
        if ln.get_linestyle() == "--" and ln.get_color() == lines[0].get_color()
    ]
    assert dashed and np.asarray(dashed[0].get_xdata()).max() > 1e20
    # the target's star sits at the predicted loss
    stars = [ln for ln in fig.axes[0].lines if ln.get_marker() == "*"]
    assert any(np.allclose(s.get_ydata(), fit.predict(entry, C=np.array([1e20]))) for s in stars)


def test_isoflop_plot_draws_the_fitted_curves_and_their_minima(full):
    """Each budget's curve is the profile fits.json stores (the Akima interpolant through its
    runs), and the stored minimum lies on it, within its spread of the curve's lowest point."""
    study = inputs.load(str(full["runs"]), str(full["fits"]))
    budgets = json.loads(full["fits"].read_text())["laws"]["isoflop"]["optimal_allocation"][
        "budgets"
    ]
    ax = allocation.plot_isoflop(study).axes[0]
    stars = [c.get_offsets()[0] for c in ax.collections if len(c.get_offsets()) == 1]
    for i, b in enumerate(budgets):
        lines = [ln for ln in ax.lines if ln.get_gid() == f"isoflop-curve-{i}"]
        assert lines, i
        x = np.concatenate([np.asarray(ln.get_xdata(), float) for ln in lines])
        y = np.concatenate([np.asarray(ln.get_ydata(), float) for ln in lines])
        np.testing.assert_allclose(y, fit.isoflop_curve(b, x), rtol=1e-12)
        assert b["loss"] == pytest.approx(float(fit.isoflop_curve(b, b["N_opt"])), rel=1e-12)
        if b["used"]:
            assert abs(math.log(x[np.argmin(y)] / b["N_opt"])) <= b["ln_N_opt_sd"]
        assert any(np.allclose(star, [b["N_opt"], b["loss"]], rtol=1e-12) for star in stars)
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "Akima interpolant of each budget" in legend


def test_isoflop_plot_without_stored_curves_falls_back(full, tmp_path):
    """A fits.json without the runs of each budget still draws: the Chinchilla law along
    each budget, and the minima."""
    fits = json.loads(full["fits"].read_text())
    for b in fits["laws"]["isoflop"]["optimal_allocation"]["budgets"]:
        b.pop("parabola", None)
        del b["points"]
    old = tmp_path / "fits.json"
    old.write_text(json.dumps(fits))
    ax = allocation.plot_isoflop(inputs.load(str(full["runs"]), str(old))).axes[0]
    assert not [ln for ln in ax.lines if (ln.get_gid() or "").startswith("isoflop-curve")]
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "Chinchilla law along each budget" in legend and "fitted minimum" in legend


def test_report_md_numbers_match_the_tables(full):
    text = (full["out"] / "report.md").read_text()
    runs = pd.read_csv(full["runs"]).set_index("rung")
    laws = json.loads(full["fits"].read_text())["laws"]
    rows = md_table(text, "rung params_total")
    assert [r["rung"] for r in rows] == list(runs.index)
    for row in rows:
        for col in (
            "params_total",
            "params_non_embedding",
            "tokens",
            "flops",
            "loss_nats",
            "bits_per_byte",
            "wall_s",
            "gpu_hours",
            "mfu",
        ):
            assert close(row[col], runs.loc[row["rung"], col]), (row["rung"], col)
    fitted = md_table(text, "law parameter value")
    runs_laws = {k: v for k, v in laws.items() if k not in CURVE_LAW_NAMES}
    assert {r["law"] for r in fitted} == {k for k, v in runs_laws.items() if "skipped" not in v}
    # the laws of whole curves have their own section: each size's error, the held-out check
    groups = laws["annealing"]["groups"].values()
    held = [v for g in groups for v in g["holdout"]["predicted"].values()]
    assert "held-out-schedule check (annealing)" in text and "Approach 1 (Hoffmann" in text
    assert f"(worst {max(held):.2%})" in text
    sized = laws["annealing_sized"]  # the law across sizes: its held-out-size line
    assert "held-out-size check (annealing_sized)" in text
    assert f"error {sized['holdout_size']['mare_mean']:.2%}" in text
    for row in fitted:
        entry = laws[row["law"]]
        assert close(row["value"], entry["params"][row["parameter"]])
        lo, hi = entry["ci95"][row["parameter"]]
        assert close(row["ci95_lo"], lo) and close(row["ci95_hi"], hi)
    C_max = runs["flops"].max()
    for row in md_table(text, "law flops N_opt"):
        entry = laws[row["law"]]
        N, D = fit.optimal_allocation(entry, float(row["flops"]))
        assert close(row["N_opt"], N) and close(row["D_opt"], D)
    assert {float(r["flops"]) for r in md_table(text, "law flops N_opt")} == {C_max, 1e20}
    for row in md_table(text, "law held_out"):
        if row["held_out"] == "–":  # a law whose check fits.json skipped says why
            assert "skipped" in laws[row["law"]]["extrapolation"] and "skipped" in row["note"]
            continue
        held = {h["run"]: h for h in laws[row["law"]]["extrapolation"]["held_out"]}
        h = held[row["held_out"]]
        assert close(row["observed"], h["observed"]) and close(row["predicted"], h["predicted"])
        assert close(row["pi_lo"], h["lo"]) and close(row["pi_hi"], h["hi"])
        assert row["inside"] == ("yes" if h["inside"] else "NO")
    iso = laws["isoflop"]
    m = re.search(
        r"IsoFLOP method sensitivity: a = ([\d.]+) by the akima method; the parabola method "
        r"gives a = ([\d.]+) \[([\d.]+), ([\d.]+)\] \((\d+) budgets\)",
        text,
    )
    assert m and close(m[1], iso["params"]["a"]) and close(m[2], iso["sensitivity"]["a"])
    assert "All allocations are in the runs' own FLOP count (`flops`)" in text
    chin = laws["chinchilla"]
    m = re.search(r"chinchilla: ([\d.]+) tokens per parameter \[([\d.]+), ([\d.]+)\]", text)
    assert m and close(m[1], chin["optimal_allocation"]["at_C_max"]["tokens_per_param"])
    lo, hi = chin["ci95"]["tokens_per_param"]
    assert close(m[2], lo) and close(m[3], hi)
    target = {r["law"]: r for r in md_table(text, "law evaluated loss_nats")}
    assert close(
        target["power_compute"]["loss_nats"],
        fit.predict(laws["power_compute"], C=np.array([1e20]))[0],
    )
    N, D = fit.optimal_allocation(laws["chinchilla"], 1e20)
    assert close(target["chinchilla"]["loss_nats"], fit.predict(laws["chinchilla"], N=N, D=D))
    assert text.startswith("# Scaling-law report: synthetic")
    assert "- **ladder**: widths=[32, 64, 96, 128, 160]" in text


def test_scale_properties_are_measured(full):
    text = (full["out"] / "report.md").read_text()
    section = text.split("## Scale properties")[1].split("## Warnings")[0]
    # synthetic curves share one shape: rescaling by each run's own compute and final loss
    # collapses them far better than rescaling by another run's (the shuffled baseline)
    m = re.search(
        r"collapse deviation .*?: ([\d.e+-]+) after rescaling vs ([\d.e+-]+) before and "
        r"([\d.e+-]+) when each curve is rescaled by another run's compute and final loss "
        r"\(mean of 20 shuffles; the baseline\): the runs' own scales collapse",
        section,
    )
    assert m and float(m[1]) < 0.05 < float(m[3]) and float(m[1]) < float(m[3]) / 3
    assert re.search(r"chinchilla alpha = 0\.3\d* \[[\d.]+, [\d.]+\] \(excludes 0", section)
    # three budgets: each refitted with one budget left out, judged against the full ladder's
    # bootstrap spread and interval
    m = re.search(
        r"- power_params: full ladder alpha = ([\d.]+) \[([\d.]+), ([\d.]+)\], bootstrap sd "
        r"([\d.e-]+); 3 one level left out: std [\d.e-]+, range \[[\d.]+, [\d.]+\], "
        r"(\d) outside the full ladder's 95% interval",
        section,
    )
    assert m and float(m[2]) < float(m[1]) < float(m[3]) and float(m[4]) > 0


def test_window_refits_need_two_residual_degrees_of_freedom(tiny):
    """Five rungs, three-parameter laws: a window (or a leave-one-out set of 4) would leave
    fewer than 2 residual degrees of freedom, so scale independence is not measured."""
    text = (tiny["out"] / "report.md").read_text()
    section = text.split("**Scale independence**")[1].split("## Warnings")[0]
    assert re.search(
        r"- power_params: not measured \(\d compute level\(s\): too few subsets with 5 runs "
        r"\(the law's parameters \+ 2\) to refit on\)",
        section,
    )


def test_a_one_ratio_ladder_says_why_there_is_no_allocation(tmp_path):
    """tokens = 20 x params_total on every rung: report.md says, in one sentence, why no
    Chinchilla fit and no allocation, and which design would identify them."""
    sizes = np.geomspace(2e4, 2e6, 7)
    runs = runs_table([1e15], sizes)
    runs["params_total"] = sizes + 2048 * 64
    runs["tokens"] = 20 * runs["params_total"]
    runs["flops"] = 6 * sizes * runs["tokens"]
    N, D = runs["params_non_embedding"], runs["tokens"]
    runs["loss_nats"] = E + A / N**ALPHA + B / D**BETA
    paths = write_study(tmp_path / "in", runs)
    make_report(inputs.load(str(paths["runs"]), str(paths["fits"])), tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    section = text.split("## Compute-optimal allocation")[1].split("## Extrapolation")[0]
    note = json.loads(paths["fits"].read_text())["meta"]["design"]["note"]
    assert section.strip().startswith(note)
    assert "D = 20 x params_total" in note and "`ladder.design: wsd`" in note
    assert "No compute-optimal allocation could be estimated." in section


def test_too_few_rungs_still_reports_what_it_can(tiny):
    text = (tiny["out"] / "report.md").read_text()
    warnings = text.split("## Warnings")[1]
    assert "diverged or without a loss (excluded from fits): L5-" in warnings
    for law in ("power_tokens", "chinchilla", "kaplan", "isoflop"):
        assert re.search(rf"- {law} not fitted: .+", warnings), law
    assert "not measured: no curves.csv" in text  # self-similarity needs learning curves
    target = md_table(text, "law evaluated loss_nats")
    assert [r["law"] for r in target] == ["power_params", "power_params_no_offset"]
    assert re.search(r"Not estimated: chinchilla skipped: .+; isoflop skipped: .+", text)
    # one token count: the frontier's N ∝ C^1, D ∝ C^0 is the design, so no allocation is shown
    assert "frontier: no optimal allocation: every run has the same tokens" in text
    assert "No compute-optimal allocation could be estimated." in text
    assert re.search(r"- frontier: no optimal allocation: .*by design", warnings)
    fig = allocation.plot_compute_frontier(inputs.load(str(tiny["runs"]), str(tiny["fits"])))
    assert not [ln for ln in fig.axes[1].lines if "frontier runs" in ln.get_label()]
    assert any("by design" in t.get_text() for t in fig.axes[1].texts)
    # the figures that cannot be drawn say why, in the figure
    study = inputs.load(str(tiny["runs"]), str(tiny["fits"]))
    for fig, expected in (
        (allocation.plot_isoflop(study), "no IsoFLOP fit"),
        (curves.plot_learning_curves(study), "no curves.csv"),
        (laws.plot_loss_vs(study, "tokens"), "power_tokens skipped"),
    ):
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any(expected in t for t in texts), (expected, texts)


def test_a_killed_run_leaves_no_complete_looking_report(full, tmp_path, monkeypatch):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("# an old report\n")
    study = inputs.load(str(full["runs"]), str(full["fits"]))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "collapse", killed)  # dies before the first plot
    with pytest.raises(KeyboardInterrupt):
        make_report(study, out)
    assert not (out / "report.md").exists()
    assert not list(out.glob(".*"))


def test_targets_and_bad_input():
    assert inputs.parse_target("params=1e9") == ("params", 1e9)
    assert inputs.parse_target({"flops": 1e21}) == ("compute", 1e21)
    assert inputs.parse_target(None) is None
    for bad in ("params", "bytes=3", "tokens=-1"):
        with pytest.raises(ValueError):
            inputs.parse_target(bad)


def test_cli_fails_clearly(full, tmp_path, capsys):
    assert (
        cli.main(
            [
                str(full["runs"]),
                str(full["fits"]),
                "--out",
                str(tmp_path),
                "--extrapolate-to",
                "bytes=3",
            ]
        )
        == 2
    )
    assert "unknown quantity 'bytes'" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "nope.csv"), str(full["fits"]), "--out", str(tmp_path)]) == 2


def test_snakemake_rule_declares_every_plot_with_a_caption(full):
    # report.smk declares ladder.artifacts.REPORT_PLOTS as the rule's outputs: make_report must
    # write exactly those files (PNG and SVG of every stem) and report.md
    expected = {f"{stem}.{ext}" for stem in REPORT_PLOTS for ext in ("png", "svg")}
    assert {p.name for p in full["out"].iterdir()} == expected | {"report.md"}
    for stem in [*REPORT_PLOTS, "report_md", "workflow"]:
        assert (ROOT / f"workflow/report/{stem}.rst").read_text().strip(), stem


def _brief(text: str) -> str:
    return text.split("## In brief", 1)[1].split("\n## ", 1)[0]


def test_the_report_opens_with_the_law_and_allocation_and_their_intervals(full, tiny):
    text = (full["out"] / "report.md").read_text()
    assert text.index("## In brief") < text.index("## Configuration in brief")
    brief, laws = _brief(text), json.loads(full["fits"].read_text())["laws"]
    chin, iso = laws["chinchilla"], laws["isoflop"]
    for symbol, name in (("α", "alpha"), ("β", "beta"), ("E", "E")):
        m = re.search(rf"{symbol} = ([\d.e+-]+) \[([\d.e+-]+), ([\d.e+-]+)\]", brief)
        assert m, symbol
        lo, hi = chin["ci95"][name]
        assert close(m[1], chin["params"][name], 3) and close(m[2], lo, 3) and close(m[3], hi, 3)
    m = re.search(r"N_opt ∝ C\^a with a = ([\d.]+) \[([\d.]+), ([\d.]+)\]", brief)
    assert m and close(m[1], chin["optimal_allocation"]["a"], 3)
    assert close(m[2], chin["ci95"]["a"][0], 3) and close(m[3], chin["ci95"]["a"][1], 3)
    m = re.search(r"IsoFLOP profiles\*\* \(approach 2, (\d+) budgets\) give a = ([\d.]+)", brief)
    assert m and int(m[1]) == len(iso["rows"]) and close(m[2], iso["params"]["a"], 3)
    held = [h for h in chin["extrapolation"]["held_out"] if h.get("inside") is not None]
    outside = sum(not h["inside"] for h in held)
    assert (f"{outside} of them OUTSIDE" in brief) == (outside > 0)
    loose = brief.split("Not pinned down by this design", 1)[-1] if "Not pinned" in brief else ""
    for name in ("alpha", "beta", "a", "b"):
        lo, hi = chin["ci95"][name]
        assert (f"{name} (95% interval" in loose) == (hi - lo > 0.5), name
    # one token budget: no L(N, D); the opening says so instead of a law
    brief = _brief((tiny["out"] / "report.md").read_text())
    assert "No L(N, D) law was fitted (chinchilla skipped:" in brief


def test_a_table_without_a_flops_column_reports_compute_as_6ND(tmp_path):
    """A user's runs.csv with parameters, tokens and loss only: the fits take C = 6·N·D, and so
    does every panel of the report (the scale-independence refits and residuals included)."""
    runs = runs_table([1e15, 1e16, 1e17], np.geomspace(3e5, 3e7, 5)).drop(columns=["flops"])
    paths = write_study(tmp_path / "in", runs)
    assert run_cli(paths, tmp_path / "out") == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## In brief" in text and "α =" in text
    study = inputs.load(str(paths["runs"]), str(paths["fits"]))
    N, D = runs["params_non_embedding"], runs["tokens"]
    assert np.allclose(study.values("compute"), 6 * N * D)


def test_sized_law_line_names_runs_the_held_out_refit_could_not_predict():
    """A held-out-size refit that extrapolates to inf on one run (seen on a vocab-512 WSD
    study) must not crash the report: that run is named, the error averages the others."""
    from ladder.report.curve_laws import _sized_lines

    entry = {"formula": "L = ...", "n_runs": 8, "sizes": [1, 2, 3], "lambda": 0.999,
             "params": {"E": 1.0}, "ci95": {}, "mare_mean": 0.01,
             "holdout_size": {"held_out_size": 3e5, "predicted": {"a": 0.25, "b": None},
                              "mare_mean": 0.25}}  # fmt: skip
    check = _sized_lines("annealing_sized", entry)[-1]
    assert "error 25.00% (worst 25.00%)" in check
    assert "no finite prediction for b" in check
