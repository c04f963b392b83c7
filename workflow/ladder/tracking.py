"""Experiment tracking: every rung's learning curves in TensorBoard and/or Weights & Biases,
and the study's fitted laws beside them. Off by default (config `tracking.tools`); the
packages are imported only when a tool is on (`pip install -e ".[tracking]"`).

Settings: `--tracking JSON|@file` of `ladder train` and `ladder report`, else the
LADDER_TRACKING environment variable, which the Snakefile sets from the study's `tracking`
section. It is not a rule param on purpose: tracking changes no result, and a changed param
would retrain every rung. By hand:

    ladder train --rung-json @runs/R/rung.json ... --tracking '{"tools": ["tensorboard"]}'

Layout (`dir`, default the run directory's grandparent, i.e. results/<study>/):

    <dir>/tensorboard/<rung>/         one TensorBoard run per rung (`tensorboard --logdir`)
    <dir>/tensorboard/laws/           the fitted laws and report.md, as text
    <dir>/wandb/                      W&B run folders (offline-run-* until `wandb sync`)
    <dir>/runs/<rung>/tracking.json   the rung's W&B run id and the last step it logged

A rung logs train/loss, train/lr, train/tokens_per_s, train/mfu (GPU) and val/loss (at the
eval points) against the step; W&B charts them against `tokens` too (its step metric), and
TensorBoard repeats them under `tokens/` with the token count as the x value. The rung's spec
(plan row) is the run's config (W&B) or its `spec` text (TensorBoard); W&B groups the runs
by study, and the final train.json goes to the run's summary.

Resume: a job that continues the rung's own checkpoint (or a WSD stable run's previous
segment) continues the same W&B run, logging only steps after the last one it logged, and
rewrites the rung's TensorBoard run from the checkpoint's log; so both hold exactly the rows
of train_log.csv. A fresh start is a new W&B run and a new TensorBoard run. Offline, each job
writes its own offline-run-*-<id> folder; `wandb sync` uploads a run's folders in order.

A tool that fails (package missing, server unreachable) prints one warning and is switched
off: tracking never stops a rung.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.artifacts import TRACKING_JSON, write_json

TOOLS = ("tensorboard", "wandb")
ENV = "LADDER_TRACKING"
TENSORBOARD_DIR = "tensorboard"
LAWS_RUN = "laws"  # the TensorBoard run (and W&B job type) of the study's fitted laws


@dataclass(frozen=True)
class Tracking:
    """Which tools, where, and the W&B project. `dir` and `study` default to the study
    folder (a run directory's grandparent) and its name."""

    tools: tuple[str, ...] = ()
    dir: str | None = None
    study: str | None = None
    wandb_project: str = "ladder"
    wandb_entity: str | None = None
    wandb_mode: str = "offline"

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Tracking:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"tracking: unknown key(s) {unknown}; allowed: {', '.join(names)}")
        tools = tuple(value.get("tools") or ())
        bad = sorted(set(tools) - set(TOOLS))
        if bad:
            raise ValueError(f"tracking.tools: {bad} not allowed; allowed: {', '.join(TOOLS)}")
        return cls(**{**value, "tools": tools})

    @classmethod
    def from_arg(cls, text: str | None) -> Tracking:
        """From `--tracking` (JSON or @file), else $LADDER_TRACKING, else off."""
        text = text if text is not None else os.environ.get(ENV, "")
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        return cls.from_dict(json.loads(text) if text.strip() else {})

    @classmethod
    def for_study(cls, study, results: str) -> Tracking:
        """A study's `tracking` section (ladder.config.TrackingConfig), its outputs in `results`."""
        return cls(dir=results, study=study.study, **study.tracking.to_dict())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def under(self, study_dir: str | os.PathLike) -> Tracking:
        """`dir` and `study` filled in from the study folder, where not given."""
        folder = Path(self.dir or study_dir)
        return dataclasses.replace(self, dir=str(folder), study=self.study or folder.resolve().name)

    def mode(self) -> str:
        """The W&B mode: WANDB_MODE in the environment wins over the study's setting."""
        return os.environ.get("WANDB_MODE") or self.wandb_mode


def missing_packages(tools) -> list[str]:
    """The packages of `tools` that are not installed (checked when the study is parsed)."""
    import importlib.util

    return [t for t in tools if importlib.util.find_spec(t) is None]


def _warn(what: str, err: BaseException) -> None:
    print(f"warning: tracking: {what} switched off: {type(err).__name__}: {err}", file=sys.stderr)


# ----------------------------------------------------------------------------- a rung


class TensorBoardRun:
    """One rung's TensorBoard run, rewritten from the rows the job sends (a resumed job sends
    its checkpoint's log first), so its event files always hold train_log.csv's rows."""

    def __init__(self, logdir: Path, spec: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        for old in logdir.glob("events.out.tfevents.*"):
            old.unlink()
        self.writer = SummaryWriter(str(logdir))
        self.writer.add_text("spec", _code(spec), 0)

    def log(self, step: int, tokens: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
            self.writer.add_scalar(f"tokens/{key}", value, tokens)

    def flush(self) -> None:
        self.writer.flush()

    def summary(self, values: dict[str, Any]) -> None:
        self.writer.add_text("train.json", _code(values), 0)

    def close(self, exit_code: int) -> None:
        self.writer.close()


class WandbRun:
    """One rung's W&B run. Its id and the last step it logged are kept in the run directory
    (tracking.json), so a resumed job continues the run and never logs a step twice."""

    def __init__(self, tr: Tracking, rung_id: str, kind: str, spec: dict, run_dir: Path, resumed):
        import wandb

        self.state_path = run_dir / TRACKING_JSON
        state = _read_json(self.state_path) if resumed else {}
        self.id = state.get("wandb_id") or uuid.uuid4().hex[:12]
        self.last = int(state.get("wandb_step", 0))
        self.run = wandb.init(
            project=tr.wandb_project,
            entity=tr.wandb_entity,
            group=tr.study,
            job_type=kind,
            name=rung_id,
            id=self.id,
            resume="allow",
            tags=[tr.study],
            config={"study": tr.study, **spec},
            dir=tr.dir,
            mode=tr.mode(),
            settings=wandb.Settings(console="off", silent=True),
        )
        self.run.define_metric("tokens")
        for prefix in ("train/*", "val/*"):
            self.run.define_metric(prefix, step_metric="tokens")
        self.flush()
        where = getattr(self.run, "dir", "") or ""
        print(f"{rung_id}: W&B run {self.id} ({tr.mode()}, {Path(where).parent})", flush=True)

    def log(self, step: int, tokens: int, metrics: dict[str, float]) -> None:
        if step > self.last:  # W&B steps only increase; a resumed job re-sends older rows
            self.run.log({"tokens": tokens, **metrics}, step=step)
            self.last = step

    def flush(self) -> None:
        write_json(self.state_path, {"wandb_id": self.id, "wandb_step": self.last})

    def summary(self, values: dict[str, Any]) -> None:
        self.run.summary.update(values)

    def close(self, exit_code: int) -> None:
        self.flush()
        self.run.finish(exit_code=exit_code)


class Tracker:
    """What a training job calls: `open` the study's tools, `log` each row, `flush` after a
    batch of rows, `summary` with train.json, `close` with the exit code (or leave a `with`
    block: `exit_code`, or 1 on an exception). With no tool open it does nothing. `sent`
    counts the rows logged (the loop's bookmark into its log)."""

    def __init__(self, runs: dict[str, Any] | None = None) -> None:
        self.runs = dict(runs or {})
        self.sent = 0
        self.exit_code = 0

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(1 if exc_type else self.exit_code)

    def open(self, tr: Tracking, rung, run_dir: str | os.PathLike, resumed: bool) -> Tracker:
        """Start the tools of `tr` for rung `rung` (ladder.plan.Rung) training in `run_dir`.
        `resumed`: the job continues this run's own state (its checkpoint, or a WSD stable
        run's previous segment), so it continues the W&B run too."""
        if not tr.tools:
            return self
        run_dir = Path(run_dir)
        tr = tr.under(run_dir.resolve().parent.parent)
        spec = rung.row()
        if "tensorboard" in tr.tools:
            try:
                logdir = Path(tr.dir) / TENSORBOARD_DIR / rung.id
                self.runs["tensorboard"] = TensorBoardRun(logdir, spec)
            except Exception as e:
                _warn("tensorboard", e)
        if "wandb" in tr.tools:
            try:
                self.runs["wandb"] = WandbRun(tr, rung.id, rung.design, spec, run_dir, resumed)
            except Exception as e:
                _warn("wandb", e)
        return self

    def _each(self, method: str, *args) -> None:
        for name, run in list(self.runs.items()):
            try:
                getattr(run, method)(*args)
            except Exception as e:  # a tracker must never stop a rung
                _warn(name, e)
                self.runs.pop(name)

    def log(self, step: int, tokens: int, metrics: dict[str, float]) -> None:
        self.sent += 1
        self._each("log", step, tokens, metrics)

    def flush(self) -> None:
        self._each("flush")

    def summary(self, values: dict[str, Any]) -> None:
        self._each("summary", values)

    def close(self, exit_code: int = 0) -> None:
        self._each("close", exit_code)
        self.runs.clear()


def continues(past: dict[str, Any], rung_id: str) -> bool:
    """Whether a restored training state (ladder.train.restore) is this run's own: its
    checkpoint, or a WSD stable run's previous segment, rather than a fresh start or the
    stable state a cooldown branch starts from."""
    return bool(past.get("step")) and json.loads(past.get("rung", "{}")).get("id") == rung_id


# ----------------------------------------------------------------------------- the study


def headline(fits: dict[str, Any]) -> dict[str, float]:
    """The fitted laws' numbers as flat keys: `<law>/<param>` with `_lo`/`_hi` (95%
    interval), `<law>/a` and `<law>/b` (compute-optimal exponents), `<law>/extrapolation_error`
    (relative error on the held-out largest rung)."""
    out: dict[str, float] = {}
    for key, entry in (fits.get("laws") or {}).items():
        if "params" not in entry:
            continue
        ci = entry.get("ci95") or {}
        for name, value in entry["params"].items():
            out[f"{key}/{name}"] = value
            lo, hi = ci.get(name) or (None, None)
            if lo is not None:
                out[f"{key}/{name}_lo"], out[f"{key}/{name}_hi"] = lo, hi
        alloc = entry.get("optimal_allocation") or {}
        for name in ("a", "b"):
            if alloc.get(name) is not None:
                out[f"{key}/{name}"] = alloc[name]
        held = (entry.get("extrapolation") or {}).get("held_out") or []
        errors = [h["rel_error"] for h in held if h.get("rel_error") is not None]
        if errors:
            out[f"{key}/extrapolation_error"] = max(errors, key=abs)
    return {k: float(v) for k, v in out.items() if v is not None}


def headline_markdown(numbers: dict[str, float]) -> str:
    rows = [f"| {k} | {v:.6g} |" for k, v in numbers.items()]
    return "\n".join(["| fitted | value |", "|---|---|", *rows]) if rows else "No law was fitted."


def log_study(
    tr: Tracking,
    study_dir: str | os.PathLike,
    fits: dict[str, Any],
    report_md: str,
    config: dict[str, Any] | None = None,
) -> None:
    """The study's result beside its curves: the fitted laws' headline numbers as a W&B
    summary (a run named after the study, job type `laws`, in the study's group) and as
    TensorBoard text (run `laws`), with report.md in full. Rewritten by each report."""
    if not tr.tools:
        return
    tr = tr.under(study_dir)
    numbers = headline(fits)
    if "tensorboard" in tr.tools:
        try:
            run = TensorBoardRun(Path(tr.dir) / TENSORBOARD_DIR / LAWS_RUN, config or {})
            run.writer.add_text("laws", headline_markdown(numbers), 0)
            run.writer.add_text("report", report_md, 0)
            run.close(0)
        except Exception as e:
            _warn("tensorboard", e)
    if "wandb" in tr.tools:
        try:
            import wandb

            run = wandb.init(
                project=tr.wandb_project,
                entity=tr.wandb_entity,
                group=tr.study,
                job_type=LAWS_RUN,
                name=f"{tr.study} laws",
                id=f"{tr.study}-laws",  # one per study: a new report updates it
                resume="allow",
                tags=[tr.study],
                config=config or {},
                dir=tr.dir,
                mode=tr.mode(),
                settings=wandb.Settings(console="off", silent=True),
            )
            run.summary.update(numbers)
            run.summary["report_md"] = report_md
            run.finish()
        except Exception as e:
            _warn("wandb", e)


# ----------------------------------------------------------------------------- helpers


def _code(obj: Any) -> str:
    """A JSON block for TensorBoard's text tab (markdown)."""
    return "```json\n" + json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n```"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
