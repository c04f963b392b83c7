"""Score one checkpoint on one multiple-choice task, as lm-evaluation-harness does.

For each example and choice: the log-likelihood of the choice as the continuation of the
context (lm-eval's `loglikelihood`, HFLM, causal): trailing whitespace of the context moves
to the front of the continuation; context + continuation is encoded whole and the
continuation's tokens are its tail after the context's own encoding (`encode_pair`); the
input is the last max_length + 1 tokens less the last (left-truncated), right-padded in a
batch, one forward pass per batch. Then, per example (lm-eval's multiple_choice metrics):

    acc       1 if argmax_i logp_i is gold
    acc_norm  1 if argmax_i logp_i / len(choice_i in characters) is gold
    bpb       -logp_gold / ln 2 / UTF-8 bytes of the gold continuation as scored (with the
              whitespace moved from the context): the task loss of OLMo's task ladder
              (Bhagia et al. 2024)

and a task's acc, acc_norm and bpb are their means over examples. Outputs (atomically):
the per-sample scores (one JSON line per example: logprob and token count of every choice,
gold, pred, pred_norm, gold_bpb) and a summary JSON (docs/tasks.md). With --checkpoints,
every intermediate model a run kept (ladder.train, config tasks.checkpoints), in one job:
a list of summaries, and the samples of each with its step.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from ladder.artifacts import KEPT_JSON, write_json, write_text
from ladder.errors import DataError, failed
from ladder.rung import Rung
from ladder.runtime import (
    autocast_for,
    job_threads,
    resolve_device,
    resolve_precision,
    set_threads,
)
from ladder.tasks import Example, chance_level, read_task

# the config attributes lm-eval reads a model's context length from, in its order
MAX_LENGTH_ATTRS = ("n_positions", "max_position_embeddings", "n_ctx")


def split_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's split: the context's trailing whitespace starts the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def prefix_token_id(tokenizer) -> int:
    """What an empty context is replaced by (lm-eval: BOS, else EOS)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) as lm-eval's HFLM encodes a causal request."""
    if context == "":
        cont = tokenizer.encode(continuation, add_special_tokens=False)
        prefix = prefix_token_id(tokenizer)
        return ([prefix], cont) if cont and prefix != cont[0] else (cont[:1], cont[1:])
    context, continuation = split_whitespace(context, continuation)
    whole = tokenizer.encode(context + continuation)
    ctx = tokenizer.encode(context)
    return ctx, whole[len(ctx) :]


def max_length(model) -> int:
    """The model's context length as lm-eval reads it from the config."""
    for attr in MAX_LENGTH_ATTRS:
        if getattr(model.config, attr, None):
            return int(getattr(model.config, attr))
    return 2048  # lm-eval's default


@torch.no_grad()
def loglikelihoods(
    model,
    pairs: list[tuple[list[int], list[int]]],
    batch_size: int,
    device: torch.device,
    autocast=None,
) -> list[float]:
    """Σ log p(continuation tokens | context) of each (context, continuation) pair, in
    their order. Batches hold similar lengths (longest first, as lm-eval sorts them), so
    padding is small; right padding leaves a causal model's earlier logits unchanged."""
    limit = max_length(model)
    order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
    out = [0.0] * len(pairs)
    for b in range(0, len(order), batch_size):
        batch = order[b : b + batch_size]
        inputs, conts = [], []
        for i in batch:
            ctx, cont = pairs[i]
            # lm-eval refuses a continuation longer than the context window; scoring its
            # last `limit` tokens keeps a study going (its bpb then counts all its bytes)
            cont = cont[-limit:]
            inputs.append((ctx + cont)[-(limit + 1) :][:-1])
            conts.append(cont)
        width = max(len(x) for x in inputs)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        for row, x in enumerate(inputs):
            ids[row, : len(x)] = torch.tensor(x)
        with autocast or torch.autocast(device.type, enabled=False):
            logits = model(input_ids=ids.to(device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for row, (x, cont) in enumerate(zip(inputs, conts, strict=True)):
            if not cont:
                continue
            span = logp[row, len(x) - len(cont) : len(x)]
            target = torch.tensor(cont, device=span.device)
            out[batch[row]] = float(span.gather(1, target[:, None]).sum())
    return out


def argmax(values: list[float]) -> int:
    """The first index of the largest value (numpy's tie rule, as lm-eval's)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def sample_scores(example: Example, logprobs: list[float], n_tokens: list[int]) -> dict:
    """One example's per-sample record (acc, acc_norm, the gold continuation's bits/byte)."""
    pred = argmax(logprobs)
    pred_norm = argmax([lp / len(c) for lp, c in zip(logprobs, example.choices, strict=True)])
    _, gold_text = split_whitespace(example.context, example.choices[example.gold])
    gold_bytes = len(gold_text.encode("utf-8"))
    return {
        "gold": example.gold,
        "pred": pred,
        "pred_norm": pred_norm,
        "acc": float(pred == example.gold),
        "acc_norm": float(pred_norm == example.gold),
        "logprobs": logprobs,
        "n_tokens": n_tokens,
        "gold_bytes": gold_bytes,
        "gold_bpb": -logprobs[example.gold] / math.log(2) / gold_bytes,
    }


def score_examples(
    model, tokenizer, examples: list[Example], batch_size: int, device: torch.device, autocast
) -> list[dict]:
    """Every example's per-sample record: one request per (example, choice), batched."""
    pairs = [encode_pair(tokenizer, e.context, c) for e in examples for c in e.choices]
    flat = loglikelihoods(model, pairs, batch_size, device, autocast)
    records, at = [], 0
    for i, e in enumerate(examples):
        k = len(e.choices)
        n_tokens = [len(cont) for _, cont in pairs[at : at + k]]
        records.append({"index": i, **sample_scores(e, flat[at : at + k], n_tokens)})
        at += k
    return records


def summary(records: list[dict], examples: list[Example], chance: float | None) -> dict:
    """The task's means over examples: acc, acc_norm, bpb; its chance level and size."""
    n = len(records)
    return {
        "acc": sum(r["acc"] for r in records) / n,
        "acc_norm": sum(r["acc_norm"] for r in records) / n,
        "bpb": sum(r["gold_bpb"] for r in records) / n,
        "chance": chance_level(examples, chance),
        "n_examples": n,
    }


def run_fields(train: dict[str, Any], step: int | None, batch_tokens: int) -> dict[str, Any]:
    """Which checkpoint of which run: the rung's final one (its train.json), or the
    intermediate one after `step` steps (step × batch_tokens tokens)."""
    final = step is None or step >= train["steps"]
    return {
        "run": train["rung"],
        "step": train["steps"] if final else step,
        "tokens": train["tokens"] if final else step * batch_tokens,
        "params": train.get("params_non_embedding"),  # runs.csv's, the fits' default N
        "final": final,
    }


def kept_fields(record: dict[str, Any]) -> dict[str, Any]:
    """run_fields of a model kept at an intermediate step (its checkpoint.json, ladder.train):
    the run that kept it (a WSD stable run, for the steps before the cooldowns), its step."""
    return {
        "run": record["rung"],
        "step": record["step"],
        "tokens": record["tokens"],
        "params": record.get("params_non_embedding"),
        "final": False,
    }


def kept_models(folders: list[str]) -> list[Path]:
    """Every kept model (step<N>/ with checkpoint.json) in `folders`, by step."""
    found = [p.parent for f in folders for p in Path(f).glob(f"step*/{KEPT_JSON}")]
    return sorted(found, key=lambda p: json.loads((p / KEPT_JSON).read_text())["step"])


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ladder score", description=__doc__.splitlines()[0])
    ap.add_argument("--rung-json", required=True, help="the rung as JSON, or @file.json")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-dir", help="save_pretrained directory to score")
    which.add_argument(
        "--checkpoints",
        nargs="+",
        metavar="DIR",
        help="folders of kept intermediate models (step<N>/, ladder train's checkpoints/): "
        "score each; --out is then a JSON list of summaries, --samples carries each step",
    )
    ap.add_argument("--tokenizer-dir", required=True, help="the study's tokenizer/")
    ap.add_argument("--task", required=True, help="the task's JSONL file (ladder task)")
    ap.add_argument("--name", required=True, help="the task's name")
    ap.add_argument("--chance", type=float, help="the task's chance level (config)")
    ap.add_argument("--train-json", help="the rung's train.json (required with --model-dir)")
    ap.add_argument("--step", type=int, help="an intermediate checkpoint's step (default: final)")
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass")
    ap.add_argument("--threads", type=int, help="CPU threads (default: $OMP_NUM_THREADS)")
    ap.add_argument("--samples", required=True, help="per-sample scores (JSONL) to write")
    ap.add_argument("--out", required=True, help="the summary JSON to write")
    return ap


class Scorer:
    """One job's device, tokenizer and task, to score one model after another."""

    def __init__(self, rung: Rung, args: argparse.Namespace) -> None:
        import transformers as tf

        tf.utils.logging.disable_progress_bar()
        if rung.family == "bert":
            raise ValueError("task scoring needs a causal model; family bert is masked")
        set_threads(job_threads(rung.threads, args.threads))
        self.device = resolve_device(rung.device)
        self.precision = resolve_precision(rung.precision, self.device)
        self.examples = read_task(args.task)
        self.tokenizer = tf.AutoTokenizer.from_pretrained(args.tokenizer_dir)
        self.args, self.rung = args, rung

    def score(self, model_dir: str | Path, head: dict[str, Any]) -> tuple[list[dict], dict]:
        """(per-sample records, the summary) of the model in `model_dir`."""
        import transformers as tf

        t0 = time.time()
        device, args = self.device, self.args
        model = tf.AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
        t1 = time.time()
        autocast = autocast_for(self.precision, device)
        records = score_examples(
            model, self.tokenizer, self.examples, args.batch_size, device, autocast
        )
        score_s = time.time() - t1
        out = {
            **head,
            **summary(records, self.examples, args.chance),
            "diverged": False,
            "device": str(device),
            "precision": self.precision,
            "score_s": score_s,
            "examples_per_s": len(records) / score_s if score_s > 0 else None,
            "wall_s": time.time() - t0,
        }
        print(
            f"{self.rung.id} step {out['step']}: {args.name} acc {out['acc']:.3f} acc_norm "
            f"{out['acc_norm']:.3f} bpb {out['bpb']:.3f} (chance {out['chance']:.3f}) over "
            f"{len(records)} examples, {out['examples_per_s']:.1f} examples/s",
            flush=True,
        )
        return records, out


def score_kept(rung: Rung, args: argparse.Namespace) -> int:
    """--checkpoints: every kept model of the folders, one summary each (a list in --out;
    each sample line carries its step). No kept model (a run that diverged before its first
    kept step, or too short to keep any): an empty list."""
    models = kept_models(args.checkpoints)
    scorer = Scorer(rung, args) if models else None
    samples, summaries = [], []
    for path in models:
        head = {"task": args.name, **kept_fields(json.loads((path / KEPT_JSON).read_text()))}
        records, out = scorer.score(path, head)
        samples += [{"step": head["step"], **r} for r in records]
        summaries.append(out)
    write_text(args.samples, "".join(json.dumps(r) + "\n" for r in samples))
    write_json(args.out, summaries)
    print(f"{rung.id}: {args.name} scored at {len(summaries)} intermediate checkpoint(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.model_dir and not args.train_json:
        ap.error("--model-dir needs --train-json")
    try:
        rung = Rung.from_arg(args.rung_json)
        if args.checkpoints:
            return score_kept(rung, args)
        train = json.loads(Path(args.train_json).read_text())
        head = {"task": args.name, **run_fields(train, args.step, rung.batch_tokens)}
        if train.get("diverged"):  # its model/ holds earlier weights, not the rung's
            write_text(args.samples, "")
            nulls = {k: None for k in ("acc", "acc_norm", "bpb", "chance", "n_examples")}
            write_json(args.out, {**head, **nulls, "diverged": True})
            print(f"{rung.id}: diverged in training; {args.name} not scored")
            return 0
        records, out = Scorer(rung, args).score(args.model_dir, head)
    except (DataError, ValueError, OSError) as e:
        return failed("ladder score", e)
    write_text(args.samples, "".join(json.dumps(r) + "\n" for r in records))
    write_json(args.out, out)
    return 0
