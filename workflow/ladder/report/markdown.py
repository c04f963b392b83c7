"""report.md: the study in numbers, every one read from runs.csv and fits.json or computed from
them by ladder.fit (tables parse back with float(), so tests can check them)."""

from __future__ import annotations

import math

import numpy as np

from ladder.artifacts import REPORT_PLOTS
from ladder.report.curve_laws import section_curve_laws
from ladder.report.inputs import AXES, ReportInputs
from ladder.report.predictions import ALLOCATORS, allocation_band, target_predictions
from ladder.report.scale import exponents, sensitivity, verdict
from ladder.report.tasks import section_tasks


def fmt(x, digits: int = 4) -> str:
    """Numbers in report.md: plain %g, so a table cell parses back with float()."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)) and abs(x) < 1e15:
        return str(int(x))
    return f"{float(x) + 0.0:.{digits}g}"  # + 0.0: no "-0"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


RUN_COLUMNS = (
    "params_total",
    "params_non_embedding",
    "tokens",
    "flops",
    "loss_nats",
    "bits_per_byte",
    "wall_s",
    "gpu_hours",
    "mfu",
    "diverged",
)


WIDE_CI = 0.5  # an exponent whose 95% interval is wider than this is not pinned down


def _ci(entry: dict, name: str) -> list | None:
    ci = (entry.get("ci95") or {}).get(name)
    return ci if ci and None not in ci else None


def _with_ci(entry: dict, name: str, value: float, digits: int = 3) -> str:
    ci = _ci(entry, name)
    return fmt(value, digits) + (f" [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]" if ci else "")


def _loosely_fitted(entry: dict, names: tuple[str, ...]) -> list[str]:
    out = []
    for name in names:
        ci = _ci(entry, name)
        if ci is not None and ci[1] - ci[0] > WIDE_CI:
            out.append(f"{name} (95% interval {fmt(ci[0], 3)} to {fmt(ci[1], 3)})")
    return out


def section_summary(study: ReportInputs) -> str:
    """The study's answer first: the fitted law and the compute-optimal allocation with their
    95% intervals, IsoFLOP's exponent beside Chinchilla's, the held-out check, and which
    exponent the design leaves loose (interval wider than WIDE_CI)."""
    law = study.law("chinchilla")
    if law is None:
        return (
            f"No L(N, D) law was fitted ({study.why_missing('chinchilla')}): this design does "
            "not identify how loss depends on model size and data separately."
        )
    p, n = law["params"], study.fit_meta.get("columns", {}).get("params", "N")
    lines = [
        f"- **Loss law** (Chinchilla approach 3, {fmt(law.get('n_points'))} runs, N = "
        f"`{n}`): L(N, D) = E + A/N^α + B/D^β with α = {_with_ci(law, 'alpha', p['alpha'])}, "
        f"β = {_with_ci(law, 'beta', p['beta'])} and E = {_with_ci(law, 'E', p['E'])} nats "
        "(95% intervals)."
    ]
    loose = _loosely_fitted(law, ("alpha", "beta"))
    if (alloc_entry := study.allocation("chinchilla")) is not None:
        alloc = alloc_entry["optimal_allocation"]
        a, b = alloc["a"], alloc["b"]
        lines.append(
            f"- **Compute-optimal allocation**: N_opt ∝ C^a with a = "
            f"{_with_ci(alloc_entry, 'a', a)} and D_opt ∝ C^b with b = "
            f"{_with_ci(alloc_entry, 'b', b)}: each 10× more compute should go "
            f"{fmt(10**a, 2)}× to model size and {fmt(10**b, 2)}× to tokens."
        )
        if (top := alloc.get("at_C_max")) is not None:
            lines.append(
                f"- At the study's largest compute (C = {fmt(top['C'], 3)} FLOPs) the optimum "
                f"is N = {fmt(top['N_opt'], 3)}, D = {fmt(top['D_opt'], 3)} tokens: "
                f"{_with_ci(alloc_entry, 'tokens_per_param', top['tokens_per_param'])} "
                "tokens per parameter."
            )
        loose += _loosely_fitted(alloc_entry, ("a", "b"))
    iso = study.allocation("isoflop")
    if iso is not None:
        lines.append(
            f"- **IsoFLOP profiles** (approach 2, {len(iso.get('rows', []))} budgets) give "
            f"a = {_with_ci(iso, 'a', iso['optimal_allocation']['a'])}, beside approach 3's."
        )
    else:
        lines.append(f"- IsoFLOP profiles (approach 2): {study.why_no_allocation('isoflop')}.")
    if (a1 := study.allocation("approach1")) is not None:
        lines.append(
            f"- **Envelope of the learning curves** (approach 1) gives a = "
            f"{_with_ci(a1, 'a', a1['optimal_allocation']['a'])}."
        )
    lines.append(_held_out_line(law))
    if loose:
        lines.append(
            "- **Not pinned down by this design**: " + "; ".join(loose) + ". Add sizes or token "
            "budgets that spread the runs along the loose variable before relying on it."
        )
    return "\n".join(lines)


def _held_out_line(law: dict) -> str:
    ex = law.get("extrapolation") or {}
    if "skipped" in ex or not ex.get("held_out"):
        return f"- Extrapolation check: {ex.get('skipped', 'not run')}."
    held = [h for h in ex["held_out"] if h.get("inside") is not None]
    inside = sum(bool(h["inside"]) for h in held)
    verdict = (
        "inside its 95% prediction interval"
        if inside == len(held)
        else f"{len(held) - inside} of them OUTSIDE their 95% prediction interval"
    )
    return (
        f"- **Extrapolation check**: refitted on {fmt(ex.get('n_fit'))} runs without the "
        f"largest compute, the law predicts the {len(held)} held-out rung(s) {verdict}."
    )


def section_config(study: ReportInputs) -> str:
    if not study.config:
        return "No study config given (`--config`); the report is built from the tables alone."
    lines = []
    for section, value in study.config.items():
        if section == "study":
            continue  # the report's title
        if isinstance(value, dict):
            items = [
                f"{k}={v}"
                for k, v in value.items()
                if v not in (None, {}, []) and not isinstance(v, dict)
            ]
            if items:
                lines.append(f"- **{section}**: " + ", ".join(items))
        elif value is not None:
            lines.append(f"- **{section}**: {value}")
    return "\n".join(lines)


def section_runs(study: ReportInputs) -> str:
    cols = [c for c in RUN_COLUMNS if c in study.runs.columns]
    rows = []
    for _, run in study.runs.iterrows():
        rows.append(
            [str(run["rung"])]
            + [fmt(run[c]) if not isinstance(run[c], str) else run[c] for c in cols]
        )
    n_bad = int((~study.runs["ok"]).sum())
    head = (
        f"{len(study.runs)} rungs, {n_bad} diverged or without a loss. Units are in the "
        "column names (runs.csv): loss in nats/token, wall time in seconds. "
        f"{parametrization_line(study)}\n\n"
    )
    return head + _table(["rung", *cols], rows)


def parametrization_line(study: ReportInputs) -> str:
    """Which parametrization the rungs trained under (runs.csv's column, else the config)."""
    runs = study.runs
    if "parametrization" in runs.columns and len(runs):
        kinds = sorted(set(runs["parametrization"].astype(str)))
        bases = sorted(set(runs.get("mup_base_width", []).dropna().astype(int)))
    else:
        model = (study.config or {}).get("model", {})
        kinds, bases = [model.get("parametrization", "sp")], [model.get("mup_base_width")]
    if kinds == ["mup"]:
        base = f" at base width {bases[0]}" if bases and bases[0] else ""
        return f"Parametrization: μP{base} (ladder.mup; one lr serves every width)."
    if kinds == ["sp"]:
        return "Parametrization: standard (SP)."
    return f"Parametrizations: {', '.join(kinds)}."


def section_laws(study: ReportInputs) -> str:
    rows, summary = [], []
    for key, entry in study.laws.items():
        if "skipped" in entry:
            summary.append([key, "skipped: " + str(entry["skipped"]), "–", "–", "–"])
            continue
        for name, value in entry["params"].items():
            ci = (entry.get("ci95") or {}).get(name) or [None, None]
            rows.append([key, name, fmt(value), fmt(ci[0]), fmt(ci[1])])
        boot = entry.get("bootstrap") or {}
        summary.append(
            [
                key,
                f"`{entry.get('formula', '?')}`",
                fmt(entry.get("n_points")),
                fmt(entry.get("objective")),
                fmt(boot.get("used")),
            ]
        )
    out = (
        _table(["law", "parameter", "value", "ci95_lo", "ci95_hi"], rows)
        if rows
        else "No law could be fitted."
    )
    out += "\n\n" + _table(["law", "formula", "n_points", "objective", "bootstrap_used"], summary)
    return out


def section_allocation(study: ReportInputs) -> str:
    """N_opt and D_opt at the largest sampled compute (and the target), and the exponents, from
    every law that estimates them; the others are named with the reason. The design's
    identifiability, the FLOP count the allocations are in, and the IsoFLOP method's
    sensitivity come first and last."""
    C = study.finished_values("compute")
    budgets = [float(C.max())] if len(C) else []
    if study.target and study.target[0] == "compute":
        budgets.append(study.target[1])
    rows, exps, absent, tpp = [], [], [], []
    for key, _, _ in ALLOCATORS:
        if (entry := study.allocation(key)) is None:
            absent.append(study.why_no_allocation(key))
            continue
        ci, alloc = entry.get("ci95") or {}, entry["optimal_allocation"]
        exps.append(
            [key, fmt(alloc["a"]), *map(fmt, ci.get("a", [None, None]))]
            + [fmt(alloc["b"]), *map(fmt, ci.get("b", [None, None]))]
        )
        rows += [_allocation_row(key, entry, c) for c in budgets]
        if "tokens_per_param" in ci and "at_C_max" in alloc:
            top = alloc["at_C_max"]
            lo, hi = ci["tokens_per_param"]
            tpp.append(
                f"{key}: {fmt(top['tokens_per_param'])} tokens per parameter "
                f"[{fmt(lo)}, {fmt(hi)}] at C = {fmt(top['C'])}"
            )
    design = study.fit_meta.get("design") or {}
    out = design["note"] + "\n\n" if design.get("identifiable") is False else ""
    if not exps:
        out += "No compute-optimal allocation could be estimated."
    else:
        out += "N_opt = k_N C^a and D_opt = k_D C^b; at the largest sampled compute"
        out += " and at the study's target:\n\n" if len(budgets) > 1 else ":\n\n"
        out += _table(
            ["law", "flops", "N_opt", "N_opt_lo", "N_opt_hi", "D_opt", "tokens_per_param"], rows
        )
        out += "\n\n" + _table(["law", "a", "a_lo", "a_hi", "b", "b_lo", "b_hi"], exps)
        if tpp:
            out += "\n\n" + "; ".join(tpp) + " (95% interval)."
        out += "\n\n" + _counting(study)
    if (iso := study.law("isoflop")) is not None and iso.get("sensitivity"):
        out += "\n\n" + _isoflop_sensitivity(iso)
    if absent:
        out += "\n\nNot estimated: " + "; ".join(absent) + "."
    return out


def _counting(study: ReportInputs) -> str:
    """One line on the FLOP count every allocation above is in."""
    compute = study.fit_meta.get("compute") or {}
    c = compute.get("flops_per_param_token")
    if not c:
        return "Compute is the runs' own FLOP count."
    source = compute.get("column", "?")
    spread = (
        f"{fmt(c['median'], 3)}"
        if abs(c["max"] - c["min"]) < 1e-9 * c["max"]
        else f"{fmt(c['min'], 3)}-{fmt(c['max'], 3)}"
    )
    return (
        f"All allocations are in the runs' own FLOP count (`{source}`): C = c(N)·N·D with "
        f"c = {spread} FLOPs per parameter per token; Chinchilla's minimises the fitted loss "
        "at fixed C under it, so it is comparable with IsoFLOP's and the frontier's."
    )


def _isoflop_sensitivity(entry: dict) -> str:
    """The IsoFLOP exponent by the other method, as fits.json records it."""
    method = entry.get("method", "?")
    other = entry["sensitivity"]
    alt = other.get("isoflop_method", "?")
    if "skipped" in other:
        why = other["skipped"]
        return f"IsoFLOP method sensitivity: the {alt} method could not be fitted ({why})."
    ci = (other.get("ci95") or {}).get("a")
    interval = f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""
    return (
        f"IsoFLOP method sensitivity: a = {fmt(entry['params']['a'])} by the {method} method; "
        f"the {alt} method gives a = {fmt(other['a'])}{interval} "
        f"({other.get('budgets_used', '?')} budgets)."
    )


def _allocation_row(key: str, entry: dict, C: float) -> list[str]:
    got = allocation_band(entry, np.array([C]))
    n, d = (float(got[s][0][0]) for s in ("N", "D"))
    lo_hi = [fmt(None if got["N"][1] is None else got["N"][j][0]) for j in (1, 2)]
    return [key, fmt(C), fmt(n), *lo_hi, fmt(d), fmt(d / n, 3)]


def section_extrapolation(study: ReportInputs) -> str:
    rows, outside = [], []
    for key, entry in study.laws.items():
        if study.law(key) is None:
            continue
        ex = entry.get("extrapolation") or {}
        if "skipped" in ex:
            rows.append([key, "–", "–", "–", "–", "–", "–", "–", "skipped: " + str(ex["skipped"])])
            continue
        for h in ex.get("held_out", []):
            inside = h.get("inside")
            if inside is False:
                outside.append(f"{key} ({h['run']})")
            rows.append(
                [
                    key,
                    str(h["run"]),
                    ex.get("quantity", "loss_nats"),
                    fmt(h["observed"]),
                    fmt(h["predicted"]),
                    fmt(h.get("lo")),
                    fmt(h.get("hi")),
                    "–" if inside is None else ("yes" if inside else "NO"),
                    f"fit on {ex.get('n_fit', '?')} runs",
                ]
            )
    out = (
        "Each law refitted without the largest-compute rung(s), then asked to predict them, with "
        "a 95% prediction interval (a bootstrap of the refit plus its residual noise; IsoFLOP: "
        "the refit under the noise draws plus the held-out budget's own spread). A held-out "
        "value outside its interval is evidence against the law at that scale:\n\n"
    )
    header = ["law", "held_out", "quantity", "observed", "predicted", "pi_lo", "pi_hi"]
    out += (
        _table([*header, "inside", "note"], rows)
        if rows
        else "No extrapolation check in fits.json."
    )
    if rows:
        checked = sum(r[7] != "–" for r in rows)
        out += "\n\n" + (
            f"Outside their 95% prediction interval: {', '.join(outside)}."
            if outside
            else f"All {checked} held-out value(s) with an interval lie inside it."
        )
    if study.target:
        var, value = study.target
        s = AXES[var][0]
        rows = [
            [r["law"], r["how"], fmt(r["loss"]), fmt(r["lo"]), fmt(r["hi"])]
            for r in target_predictions(study)
        ]
        out += f"\n\nPredicted loss at the study's target {s} = {value:.4g}:\n\n"
        out += (
            _table(["law", "evaluated", "loss_nats", "ci95_lo", "ci95_hi"], rows)
            if rows
            else f"no law in {s} was fitted ({study.why_missing(f'power_{var}')})."
        )
    return out


def section_properties(study: ReportInputs, sim: dict, ind: dict[str, dict]) -> str:
    lines = ["**Scale sensitivity** (does loss move with scale, and how fast):", ""]
    lines += _sensitivity_lines(study) or ["- not measured: no law was fitted"]
    lines += ["", "**Self-similarity** (do rescaled learning curves collapse?):", ""]
    lines += [_similarity_line(sim)]
    lines += ["", "**Scale independence** (is the exponent the same across the ladder?):", ""]
    lines += [_independence_line(key, res) for key, res in ind.items()]
    return "\n".join(lines)


def _sensitivity_lines(study: ReportInputs) -> list[str]:
    lines = [
        f"- {r['law']} {r['name']} = {fmt(r['value'])} "
        f"[{fmt(r['lo'])}, {fmt(r['hi'])}] ({verdict(r)})"
        for r in exponents(study)
    ]
    for r in sensitivity(study):
        s = AXES[r["var"]][0]
        lines.append(
            f"- at the largest rung ({s} = {fmt(r['at'])}), -d ln L / d ln {s} = "
            f"{fmt(r['slope'], 3)}; 10x more {r['var']} takes the predicted loss "
            f"from {fmt(r['loss'])} to {fmt(r['loss_10x'])} nats"
        )
    return lines


def _similarity_line(sim: dict) -> str:
    if "deviation" not in sim:
        return f"- not measured: {sim.get('reason', '?')}"
    line = (
        f"- collapse deviation (mean std/mean across {len(sim['curves'])} runs over "
        f"C(t)/C in [{sim['grid'][0]:.2g}, 1]): {fmt(sim['deviation'], 3)} after "
        f"rescaling vs {fmt(sim['deviation_raw'], 3)} before"
    )
    if "deviation_shuffled" in sim:
        base = sim["deviation_shuffled"]
        judged = (
            "the runs' own scales collapse the curves better than other runs' do"
            if sim["deviation"] < base
            else "no better than rescaling by other runs' scales: no evidence of collapse"
        )
        line += (
            f" and {fmt(base, 3)} when each curve is rescaled by another run's compute and "
            f"final loss (mean of {sim['shuffles']} shuffles; the baseline): {judged}"
        )
    return line + f"; E = {fmt(sim['E'])} ({sim['E_source']})"


def _independence_line(key: str, res: dict) -> str:
    if "value" not in res or "reason" in res:
        return f"- {key}: not measured ({res.get('reason', '?')})"
    parts = [f"full ladder {res['name']} = {fmt(res['value'])}"]
    if res.get("ci95"):
        lo, hi = res["ci95"]
        parts[0] += f" [{fmt(lo)}, {fmt(hi)}]"
    if res.get("boot_sd") is not None:
        parts[0] += f", bootstrap sd {fmt(res['boot_sd'], 3)}"
    for kind, text in (
        ("windows", f"windows of {res['width']} compute levels"),
        ("loo", "one level left out"),
    ):
        if f"{kind}_std" in res:
            lo, hi = res[f"{kind}_range"]
            part = (
                f"{len(res[kind])} {text}: std {fmt(res[f'{kind}_std'], 3)}, "
                f"range [{fmt(lo)}, {fmt(hi)}]"
            )
            if f"{kind}_outside" in res:
                part += f", {res[f'{kind}_outside']} outside the full ladder's 95% interval"
            parts.append(part)
    return f"- {key}: " + "; ".join(parts)


# report-side flags for a poor fit; fit.py's own warnings (parameters at bounds, minima outside
# the sampled sizes, bootstrap failures) are listed as they are
POOR_FIT_RMS = 0.03  # rms of ln L - ln L_fit above 3%: the law misses the runs


def section_warnings(study: ReportInputs, sim: dict) -> str:
    lines = []
    design = study.fit_meta.get("design") or {}
    if design.get("identifiable") is False:
        lines.append(f"- design: {design['note']}")
    bad = study.runs[~study.runs["ok"]]
    if len(bad):
        lines.append(f"- diverged or without a loss (excluded from fits): {', '.join(bad['rung'])}")
    for key, entry in study.laws.items():
        if "skipped" in entry:
            lines.append(f"- {key} not fitted: {entry['skipped']}")
            continue
        for w in entry.get("warnings") or []:
            if "diverged" in w or "NaN loss" in w or "infinite loss" in w:
                continue  # said once above
            lines.append(f"- {key}: {w}")
        r = np.asarray(entry.get("residuals_log") or [], dtype=float)
        if len(r) and (rms := float(np.sqrt(np.mean(r**2)))) > POOR_FIT_RMS:
            lines.append(
                f"- {key}: poor fit, rms log residual {100 * rms:.3g}% (> {100 * POOR_FIT_RMS:g}%)"
            )
        ex = entry.get("extrapolation") or {}
        missed = [h for h in ex.get("held_out", []) if h.get("inside") is False]
        if missed:
            lines.append(
                f"- {key}: extrapolation check: {len(missed)} of {len(ex['held_out'])} held-out "
                "value(s) outside the 95% prediction interval ("
                + ", ".join(
                    f"{h['run']}: {fmt(h['observed'])} vs [{fmt(h['lo'])}, {fmt(h['hi'])}]"
                    for h in missed
                )
                + ")"
            )
    if study.curves is None:
        lines.append("- no curves.csv: learning curves and self-similarity not measured")
    lines += [f"- left out of the curve collapse: {why}" for why in sim["skipped"]]
    return "\n".join(lines) if lines else "None."


def render(study: ReportInputs, sim: dict, ind: dict[str, dict]) -> str:
    """report.md: `sim` and `ind` are collapse() and independence(); the plots are linked in
    REPORT_PLOTS order, each captioned with its subcategory."""
    name = (study.config or {}).get("study", "")
    parts = [
        f"# Scaling-law report{': ' + name if name else ''}",
        "Every number below is read from runs.csv and fits.json (or computed from them by "
        "ladder.fit); intervals are 95%: bootstrap percentile intervals (tails expanded for "
        "small samples) for the loss laws, percentiles over loss-noise draws for IsoFLOP "
        "(docs/fitting.md).",
        "## In brief",
        section_summary(study),
        "## Configuration in brief",
        section_config(study),
        "## Rungs",
        section_runs(study),
        "## Fitted laws",
        section_laws(study),
        "## Compute-optimal allocation",
        section_allocation(study),
        "## Whole learning curves",
        section_curve_laws(study),
        "## Extrapolation check",
        section_extrapolation(study),
        "## Task accuracy (two-step law)",
        section_tasks(study, fmt),
        "## Scale properties",
        section_properties(study, sim, ind),
        "## Warnings",
        section_warnings(study, sim),
        "## Plots",
        "\n\n".join(f"![{sub}]({stem}.png)" for stem, (_, sub) in REPORT_PLOTS.items()),
    ]
    return "\n\n".join(parts) + "\n"
