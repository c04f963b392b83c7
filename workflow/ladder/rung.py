"""One training run of the ladder, as every stage reads it: `Rung` (a shape, a token
budget, its hyperparameters), its id parts and the rules that follow from its fields alone.

It imports neither the config loader nor torch: train, evaluate, shards, tune and status read
a rung from JSON without loading jsonschema or YAML (ladder.plan makes rungs from a study).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ladder.model import ModelShape, flops_per_token, param_groups


@dataclass(frozen=True)
class Rung(ModelShape):
    """One training run of the ladder: a shape (ModelShape's fields, declared there once),
    a token budget, its hyperparameters. A flat record, so that rung.json and a plan.csv
    row hold one value per key."""

    id: str
    tokens: int  # tokens actually trained: steps × batch_tokens
    steps: int
    seed: int
    lr: float
    min_lr_frac: float
    warmup_frac: float
    schedule: str
    decay_frac: float
    batch_tokens: int
    micro_batch: int  # sequences per forward pass; divides batch_tokens / seq_len
    weight_decay: float
    beta1: float
    beta2: float
    grad_clip: float
    device: str
    precision: str
    compile: str
    threads: int
    gpus: float
    log_every_s: float
    checkpoint_minutes: float
    eval_points: int
    mlm_probability: float
    design: str = "grid"
    budget_flops: float = 0.0  # the isoflop budget this rung belongs to (0 for other designs)
    parametrization: str = "sp"  # sp | mup (ladder.mup)
    mup_base_width: int | None = None  # μP's base width (the d_model its lr was tuned at)
    nodes: int | None = None  # train.nodes: its gpus over this many nodes (ladder.devices)
    # steps (completed, space-separated) whose model the trainer keeps for task scoring
    # (config tasks.checkpoints; runs/<rung>/checkpoints/step<N>/); "" keeps none
    keep_steps: str = ""

    @property
    def kept(self) -> tuple[int, ...]:
        """keep_steps as ints, ascending."""
        return tuple(int(s) for s in self.keep_steps.split())

    @property
    def base_width(self) -> int | None:
        """μP's base width, or None under the standard parametrization: what
        model.build_model and model.save_model take."""
        return self.mup_base_width if self.parametrization == "mup" else None

    @property
    def shape(self) -> ModelShape:
        """The shape alone (a plain ModelShape, e.g. for model.build_config)."""
        return ModelShape(**{f.name: getattr(self, f.name) for f in fields(ModelShape)})

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Rung:
        return cls(**json.loads(text))

    @classmethod
    def from_arg(cls, text: str) -> Rung:
        """A Rung from a command-line argument: JSON text, or `@path` of a JSON file."""
        if text.startswith("@"):
            with open(text[1:]) as f:
                text = f.read()
        return cls.from_json(text)

    def row(self) -> dict[str, Any]:
        """The plan.csv row: the rung, its parameter groups and FLOPs."""
        groups = param_groups(self.shape)
        fpt = flops_per_token(self.shape)
        row = {"id": self.id, **asdict(self)}  # id first: plan.csv reads like the plan
        return {**row, **groups, "flops_per_token": fpt, "flops": fpt * self.tokens}


def format_count(n: float) -> str:
    """2000000 -> '2M', 1500000 -> '1.5M', 65536 -> '65.5K': short, stable, readable."""
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(int(n))


def decay_start(steps: int, warmup_steps: int, decay_frac: float) -> int:
    """First cooldown step (0-based) of a WSD run of `steps` steps: the last
    round(decay_frac·steps) steps decay, never into the warmup."""
    return steps - min(steps - warmup_steps, round(decay_frac * steps))


def size_of(rung: Rung) -> str:
    """The size part of a rung id ("L4-d128"): sweeps tune per size, not per budget."""
    return f"L{rung.n_layer}-d{rung.d_model}"


def keep_steps(steps: int, fractions: tuple[float, ...] | list[float]) -> str:
    """Rung.keep_steps for `fractions` of `steps`: each rounded to a whole step, those
    that round to 0 or to the last step (the final model, kept anyway) dropped."""
    kept = sorted({round(f * steps) for f in fractions} - {0, steps})
    return " ".join(str(s) for s in kept if 0 < s < steps)


def retarget(rung: Rung, **changes: Any) -> Rung:
    """A copy with new hyperparameters; steps and micro-batch follow a new batch size, the
    token budget stays (rounded up to whole batches), and so do the kept steps (at the
    same fractions of the run)."""
    new = replace(rung, **changes)
    steps = max(1, math.ceil(rung.tokens / new.batch_tokens))
    seqs = new.batch_tokens // new.seq_len
    micro = largest_divisor_at_most(seqs, max(rung.micro_batch, 1))
    kept = keep_steps(steps, [s / rung.steps for s in new.kept])
    return replace(
        new, steps=steps, tokens=steps * new.batch_tokens, micro_batch=micro, keep_steps=kept
    )


def largest_divisor_at_most(n: int, cap: int) -> int:
    return max(k for k in range(1, min(n, cap) + 1) if n % k == 0)
