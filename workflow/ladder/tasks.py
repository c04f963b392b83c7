"""Multiple-choice tasks as files: read and check one, build the study's own, export lm-eval's.

A task file is JSONL, one example a line, in lm-evaluation-harness's multiple-choice shape
(docs/tasks.md):

    {"context": "def add(a, b):\\n", "choices": ["    return a + b", "import os"], "gold": 0}

`context` is the text the model conditions on, `choices` the continuations it scores (the
text that follows the context, as is: a space between them belongs to one of the two), `gold`
the index of the right one; an optional `chance` (0 < chance < 1) on a line sets that
example's guessing accuracy, else it is 1/len(choices). `read_task` checks every line and
raises one DataError naming the file and line of the first bad one.

Every task of a study becomes such a file at results/<study>/tasks/<name>.jsonl first
(`ladder task`): a local file checked and copied, an lm-eval task exported through its
TaskManager (`from_lm_eval`), or the `next_line` task built from the study's val split
(`build_next_line`), so that scoring (ladder.scoring) reads one format, and a bad file fails
before any rung is scored.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ladder.artifacts import write_text
from ladder.config import TaskSpec
from ladder.errors import DataError, failed

NEXT_LINE_EXAMPLES = 128  # the next_line task's default size (scoring cost: docs/tasks.md)
NEXT_LINE_CHOICES = 4  # the true next line and three distractors: chance 0.25
# a next_line candidate line: long enough to carry content, short enough to stay one line
LINE_CHARS = (8, 120)


@dataclass(frozen=True)
class Example:
    """One multiple-choice example: the model scores each choice as the continuation of
    `context`; `gold` indexes the right one; `chance` None means 1/len(choices)."""

    context: str
    choices: tuple[str, ...]
    gold: int
    chance: float | None = None

    def to_json(self) -> str:
        record = asdict(self)
        record["choices"] = list(self.choices)
        if self.chance is None:
            del record["chance"]
        return json.dumps(record, ensure_ascii=False)


def chance_level(examples: list[Example], chance: float | None = None) -> float:
    """The task's guessing accuracy: `chance` if given (the task's config), else the mean
    over examples of each one's own (its `chance`, else 1/len(choices))."""
    if chance is not None:
        return chance
    return sum(e.chance or 1 / len(e.choices) for e in examples) / len(examples)


# ----------------------------------------------------------------------------- reading


def parse_example(record: object, where: str) -> Example:
    """One decoded JSON line as an Example; `where` ("FILE, line N") names it in errors."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: an example is a JSON object, not {type(record).__name__}")
    for key in ("context", "choices", "gold"):
        if key not in record:
            raise DataError(f"{where}: no '{key}' (an example has context, choices and gold)")
    context, choices, gold = record["context"], record["choices"], record["gold"]
    if not isinstance(context, str):
        raise DataError(f"{where}: 'context' must be a string, not {type(context).__name__}")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise DataError(f"{where}: 'choices' must be a list of strings")
    if len(choices) < 2:
        raise DataError(f"{where}: 'choices' has {len(choices)}; a task needs at least two")
    if any(c == "" for c in choices):
        raise DataError(f"{where}: choice {choices.index('')} is empty")
    if not isinstance(gold, int) or isinstance(gold, bool):
        raise DataError(f"{where}: 'gold' must be an integer index, not {gold!r}")
    if not 0 <= gold < len(choices):
        raise DataError(
            f"{where}: 'gold' is {gold}, out of range; it must be in 0..{len(choices) - 1}"
        )
    chance = record.get("chance")
    ok = chance is None or (isinstance(chance, int | float) and 0 < chance < 1)
    if not ok or isinstance(chance, bool):
        raise DataError(f"{where}: 'chance' is {chance!r}; it must be a number in (0, 1)")
    return Example(context, tuple(choices), gold, None if chance is None else float(chance))


def read_task(path: str | Path, limit: int | None = None) -> list[Example]:
    """Every example of a task file (the first `limit`); blank lines are skipped. A line
    that is not JSON or not a valid example, or a file with none, is a DataError naming
    the file and line."""
    path = Path(path).expanduser()
    examples: list[Example] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: the task file does not exist") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (at byte {e.start})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: invalid JSON at column {e.colno}: {e.msg}") from None
        examples.append(parse_example(record, where))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise DataError(f"{path}: the task file holds no examples (one JSON object a line)")
    return examples


def write_task(path: str | Path, examples: list[Example]) -> None:
    """A task file, atomically (nothing half-written)."""
    write_text(path, "".join(e.to_json() + "\n" for e in examples))


# ----------------------------------------------------------------------------- next_line


def val_texts(corpus_dir: str | Path):
    """The val split's documents, in corpus order (corpus/val-NNNNN.parquet)."""
    import pyarrow.parquet as pq

    shards = sorted(Path(corpus_dir).glob("val-*.parquet"))
    if not shards:
        raise DataError(f"{corpus_dir}: no val-*.parquet shards (the corpus stage's output)")
    for shard in shards:
        yield from pq.read_table(shard, columns=["text"]).column("text").to_pylist()


def build_next_line(
    corpus_dir: str | Path, examples: int, context_lines: int, seed: int
) -> list[Example]:
    """The next_line task: `examples` contexts of `context_lines` lines from the val split,
    each with its true next line among NEXT_LINE_CHOICES, the others lines of other val
    documents (in a random order, gold recorded). Deterministic in `seed`; the train split
    is never read, so no rung has seen an answer in training."""
    lo, hi = LINE_CHARS
    candidates: list[tuple[int, str, str]] = []  # (doc, context, next line)
    pool: list[tuple[int, str]] = []  # (doc, line): the distractors' source
    enough = max(2000, 50 * examples)  # stop reading a large val split once there is plenty
    for doc, text in enumerate(val_texts(corpus_dir)):
        lines = [line.rstrip() for line in text.split("\n")]
        for j, line in enumerate(lines):
            if not lo <= len(line.strip()) <= hi:
                continue
            pool.append((doc, line))
            context = lines[j - context_lines : j] if j >= context_lines else []
            if context and any(c.strip() for c in context):
                candidates.append((doc, "\n".join(context) + "\n", line))
        if len(candidates) >= enough and len(pool) >= enough:
            break
    docs = {doc for doc, _ in pool}
    if len(candidates) < examples or len(docs) < 2:
        raise DataError(
            f"{corpus_dir}: the val split has {len(candidates)} usable lines in {len(docs)} "
            f"documents; next_line needs {examples} (and two documents): lower the task's "
            "`examples` or give the val split more text"
        )
    rng = random.Random(seed)
    out = []
    for doc, context, line in rng.sample(candidates, examples):
        distractors: list[str] = []
        while len(distractors) < NEXT_LINE_CHOICES - 1:
            other_doc, other = pool[rng.randrange(len(pool))]
            if other_doc != doc and other != line and other not in distractors:
                distractors.append(other)
        choices = [line, *distractors]
        rng.shuffle(choices)
        out.append(Example(context, tuple(choices), choices.index(line)))
    return out


# ----------------------------------------------------------------------------- lm-eval


def from_lm_eval(
    name: str, limit: int | None = None, include_path: str | None = None
) -> list[Example]:
    """An lm-eval `multiple_choice` task's evaluation docs as Examples, zero-shot: the
    context is its description + doc_to_text + target_delimiter (the delimiter is trailing
    whitespace, which scoring moves onto each choice as lm-eval does), the choices are
    doc_to_choice's strings (whose character lengths acc_norm divides by, as lm-eval's do).
    `include_path`: a folder of extra task YAMLs (lm-eval's TaskManager include_path)."""
    try:
        from lm_eval.tasks import TaskManager, get_task_dict
    except ImportError:
        raise DataError(
            f"lm-eval task '{name}': lm-eval is not installed; pip install -e \".[tasks]\""
        ) from None
    tasks = get_task_dict([name], TaskManager(include_path=include_path))
    if name not in tasks or not hasattr(tasks[name], "doc_to_choice"):
        raise DataError(f"lm-eval task '{name}': not one task (a group?); name a single task")
    task = tasks[name]
    if task.OUTPUT_TYPE != "multiple_choice":
        raise DataError(f"lm-eval task '{name}' is {task.OUTPUT_TYPE}, not multiple_choice")
    description = task.config.description or ""
    delimiter = task.config.target_delimiter
    out = []
    for i, doc in enumerate(task.eval_docs):
        if limit is not None and i >= limit:
            break
        choices = list(task.doc_to_choice(doc))
        target = task.doc_to_target(doc)
        gold = choices.index(target) if isinstance(target, str) else target
        record = {
            "context": description + task.doc_to_text(doc) + delimiter,
            "choices": choices,
            "gold": gold,
        }
        out.append(parse_example(record, f"lm-eval task '{name}', doc {i}"))
    if not out:
        raise DataError(f"lm-eval task '{name}' has no evaluation docs")
    return out


# ----------------------------------------------------------------------------- CLI


def prepare(task: TaskSpec, corpus_dir: str | None, seed: int) -> list[Example]:
    """A study task's examples, from its source (config tasks.list[i])."""
    if task.path:
        return read_task(task.path, task.examples)
    if task.lm_eval:
        return from_lm_eval(task.lm_eval, task.examples)
    if not corpus_dir:
        raise ValueError(f"task {task.name}: builtin '{task.builtin}' needs --corpus-dir")
    return build_next_line(
        corpus_dir, task.examples or NEXT_LINE_EXAMPLES, task.context_lines, seed
    )


def main_task(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ladder task", description="build or check a task's JSONL file (docs/tasks.md)"
    )
    ap.add_argument("--task-json", required=True, help="the task (tasks.list[i]) as JSON")
    ap.add_argument("--corpus-dir", help="the study's corpus/ (builtin tasks read its val split)")
    ap.add_argument("--seed", type=int, default=0, help="the study's seed (next_line's draw)")
    ap.add_argument("--out", required=True, help="results/<study>/tasks/<name>.jsonl")
    args = ap.parse_args(argv)
    try:
        spec = json.loads(args.task_json)
        task = TaskSpec(**spec)
        examples = prepare(task, args.corpus_dir, args.seed)
    except (DataError, ValueError, OSError) as e:
        return failed("ladder task", e)
    write_task(args.out, examples)
    print(
        f"task {task.name}: {len(examples)} examples from {task.kind} "
        f"(chance {chance_level(examples, task.chance):.3f}) -> {args.out}"
    )
    return 0
