"""Task accuracy (ladder.fit.task): per task, accuracy against compute 6·N·D with the chained
fit Acc(L_task(N, D)) along the ladder's tokens per parameter and its 95% band, step 2's
sigmoid over the observed checkpoints, and the predictions at the study's targets."""

from __future__ import annotations

import numpy as np

from ladder.fit.task import accuracy, chained
from ladder.report.figure import legend, missing, new_figure
from ladder.report.inputs import ReportInputs
from ladder.report.predictions import BAND


def task_entries(study: ReportInputs) -> dict[str, dict]:
    """task name -> its fits.json entry ("task:<name>" keys; else the lone "task")."""
    named = {k.split(":", 1)[1]: e for k, e in study.task_laws.items() if k.startswith("task:")}
    if not named and "task" in study.task_laws:
        named = {study.task_laws["task"].get("task", "task"): study.task_laws["task"]}
    return named


def _observed(study: ReportInputs, name: str, entry: dict):
    """(N, D, task loss, acc) of the checkpoints: tasks.csv's rows when the report has it,
    else runs.csv's task_<name>_* columns (final points only)."""
    t = study.tasks
    if t is not None and "task" in t.columns and (t["task"].astype(str) == name).any():
        t = t[t["task"].astype(str) == name]
        cols = ("params", "tokens", "bpb", "acc")
        return tuple(t[c].to_numpy(float) if c in t.columns else np.array([]) for c in cols)
    acc, bpb = f"task_{name}_acc", f"task_{name}_bpb"
    if acc not in study.runs.columns or bpb not in study.runs.columns:
        return (np.array([]),) * 4
    ok = study.runs["ok"].to_numpy()
    return (
        study.values("params")[ok],
        study.values("tokens")[ok],
        study.runs[bpb].to_numpy(float)[ok],
        study.runs[acc].to_numpy(float)[ok],
    )


def plot_task_scaling(study: ReportInputs):
    entries = task_entries(study)
    fig, axes = new_figure(2, max(len(entries), 1))
    if not entries:
        missing(axes[0], "no task law in fits.json (the study has no tasks:)")
        missing(axes[1], "no task law in fits.json")
        return fig
    for row, (name, entry) in enumerate(entries.items()):
        ax_c, ax_s = axes[2 * row], axes[2 * row + 1]
        if "skipped" in entry:
            missing(ax_c, f"{name}: not fitted: {entry['skipped']}")
            missing(ax_s, f"{name}: not fitted")
            continue
        N, D, L, acc = _observed(study, name, entry)
        s1 = entry["step1"]["params"]
        s2 = entry["step2"]["params"]
        chance = entry["chance"]
        if len(N):
            ax_c.scatter(6 * N * D, acc, s=12, color="k", alpha=0.6, label="checkpoints")
            ax_s.scatter(L, acc, s=12, color="k", alpha=0.6, label="checkpoints")
        preds = entry.get("predictions") or []
        # the chained fit along the ladder's median tokens per parameter, out to the targets
        ratio = float(np.median(D / N)) if len(N) else 20.0
        seen = list(6 * N * D) or [1e15]
        C_lo, C_hi = min(seen), max(seen + [6 * p["N"] * p["D"] for p in preds])
        C = np.geomspace(C_lo, C_hi, 80)
        n = np.sqrt(C / (6 * ratio))
        mid = chained(s1, s2, n, ratio * n)[1]
        ax_c.plot(C, mid, color="C0", label=f"chained fit (D = {ratio:.3g} N)")
        samples = entry.get("samples") or []
        if len(samples) >= 2:
            draws = np.stack([chained(s, s, n, ratio * n)[1] for s in samples])
            lo, hi = np.nanpercentile(draws, BAND, axis=0)
            ax_c.fill_between(C, lo, hi, color="C0", alpha=0.2, label="95% band")
        for p in preds:
            ci = p.get("acc_ci95")
            yerr = None if not ci else [[p["acc"] - ci[0]], [ci[1] - p["acc"]]]
            ax_c.errorbar([p["C"]], [p["acc"]], yerr=yerr, fmt="*", color="C3", ms=10)
        ax_c.axhline(chance, color="0.5", ls=":", lw=1, label=f"chance {chance:g}")
        ax_c.set_xscale("log")
        ax_c.set_xlabel("training compute 6ND (FLOPs)")
        ax_c.set_ylabel(f"{name}: accuracy")
        ax_c.set_title(f"{name}: accuracy vs compute (step 1 then step 2)")
        Ls = np.linspace(
            min([*L, *(p["task_loss"] for p in preds)], default=0.5) * 0.9,
            max([*L], default=2.0) * 1.1,
            100,
        )
        form = entry.get("step2_form", "sigmoid")
        ax_s.plot(Ls, accuracy(s2, Ls), color="C1", label=f"step 2 ({form}): Acc(L)")
        ax_s.axhline(chance, color="0.5", ls=":", lw=1)
        ax_s.set_xlabel("task loss (bits per byte of the gold continuation)")
        ax_s.set_ylabel("accuracy")
        ax_s.set_title(f"{name}: accuracy vs task loss")
        for ax in (ax_c, ax_s):
            ax.grid(True, alpha=0.25)
            legend(ax, fontsize=7)
    return fig


def section_tasks(study: ReportInputs, fmt) -> str:
    """One line per task: what the two steps say and the predictions, with 95% intervals."""
    entries = task_entries(study)
    if not entries:
        return "No task was scored (config `tasks:`)."
    lines = []
    for name, e in entries.items():
        if "skipped" in e:
            lines.append(f"- **{name}**: not fitted: {e['skipped']}.")
            continue
        s2, ci = e["step2"]["params"], e["step2"].get("ci95") or {}

        def with_ci(value, interval):
            return fmt(value, 3) + (
                f" [{fmt(interval[0], 3)}, {fmt(interval[1], 3)}]" if interval else ""
            )

        preds = "; ".join(
            f"at N = {fmt(p['N'], 3)}, D = {fmt(p['D'], 3)}: accuracy "
            f"{with_ci(p['acc'], p.get('acc_ci95'))}"
            for p in e.get("predictions") or []
        )
        if e.get("step2_form") == "exp":  # Gadre et al. 2024: Err = eps - k exp(-gamma L)
            shape = (
                f"top-1 error Err = eps - k exp(-gamma L) with eps = "
                f"{with_ci(s2['eps'], ci.get('eps'))}, k = {with_ci(s2['k'], ci.get('k'))}, "
                f"gamma = {with_ci(s2['gamma'], ci.get('gamma'))} per bit/byte"
            )
        else:
            shape = (
                f"accuracy crosses halfway to its ceiling at task loss L0 = "
                f"{with_ci(s2['L0'], ci.get('L0'))} bits/byte, slope k = "
                f"{with_ci(s2['k'], ci.get('k'))}"
            )
        lines.append(
            f"- **{name}** ({e['n_runs']} runs, {e['n_points']} checkpoints, chance "
            f"{fmt(e['chance'], 3)}): {shape}"
            + (f"; {preds}" if preds else "")
            + (f" ({'; '.join(e['warnings'])})" if e.get("warnings") else "")
            + "."
        )
    return "\n".join(lines)
