"""Multiple-choice tasks: the task file format and its errors, lm-eval's scoring conventions
checked by hand on a tiny model's logits, the next_line task, and the cross-check against
lm-eval itself (where it is installed)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ladder import scoring
from ladder import tasks as T
from ladder.errors import DataError
from ladder.model import build_model
from ladder.tokenize import save_tokenizer, train_bpe
from tests.conftest import VOCAB, make_shards, run, texts, tiny_rung

EXAMPLES = [
    {"context": "document 3: lorem", "choices": [" ipsum", " dolor sit"], "gold": 0},
    {"context": "document 4: ", "choices": ["lorem ipsum", "amet", "x"], "gold": 1},
    {"context": "", "choices": ["document", "lorem"], "gold": 0},
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    save_tokenizer(train_bpe(texts(200), VOCAB, 2), out)
    return out


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="module")
def model():
    return build_model(tiny_rung().shape, seed=3).eval()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


# ----------------------------------------------------------------------------- the file


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"context": "a", "choices": ["b", "c"]}', "line 2: no 'gold'"),
        ('{"context": "a", "choices": ["b", "c"], "gold": 2}', "line 2: 'gold' is 2, out of range"),
        ('{"context": "a", "choices": ["b", "c"], "gold": -1}', "out of range; it must be in 0..1"),
        ('{"context": "a", "choices": ["b"], "gold": 0}', "line 2: 'choices' has 1; a task needs"),
        ('{"context": "a", "choices": ["b", "c"], "gold": 0', "line 2: invalid JSON at column"),
        ("not json", "line 2: invalid JSON"),
        ('["a", "b"]', "line 2: an example is a JSON object, not list"),
        ('{"context": "a", "choices": ["b", "c"], "gold": true}', "'gold' must be an integer"),
        ('{"context": "a", "choices": "bc", "gold": 0}', "'choices' must be a list of strings"),
        ('{"context": "a", "choices": ["b", "c"], "gold": 0, "chance": 2}', "'chance' is 2"),
    ],
)
def test_bad_task_file_is_one_clear_error_naming_file_and_line(tmp_path, line, message, capsys):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(EXAMPLES[0]), line])
    with pytest.raises(DataError, match=message) as err:
        T.read_task(path)
    assert str(path) in str(err.value)
    # through the command: one line on stderr, exit 2, and no task file written
    out = tmp_path / "tasks/bad.jsonl"
    task = {"name": "bad", "path": str(path), "lm_eval": None, "builtin": None}
    task |= {"examples": None, "context_lines": 2, "chance": None}
    assert T.main_task(["--task-json", json.dumps(task), "--out", str(out)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("ladder task: data error: ")
    assert str(path) in err_lines[0] and message.split(":")[0] in err_lines[0]
    assert not out.exists() and not list(tmp_path.glob("tasks/.*"))  # nothing half-written


def test_empty_task_file_is_an_error(tmp_path):
    path = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(DataError, match=f"{path}: the task file holds no examples"):
        T.read_task(path)


def test_task_file_round_trips_and_chance(tmp_path):
    path = write_lines(tmp_path / "ok.jsonl", [json.dumps(e) for e in EXAMPLES])
    examples = T.read_task(path)
    assert [e.gold for e in examples] == [0, 1, 0]
    assert T.chance_level(examples) == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    assert T.chance_level(examples, 0.25) == 0.25
    T.write_task(tmp_path / "copy.jsonl", examples)
    assert T.read_task(tmp_path / "copy.jsonl") == examples
    assert len(T.read_task(path, limit=2)) == 2


# ----------------------------------------------------------------------------- scoring


def hand_logprob(model, tokenizer, context: str, continuation: str) -> tuple[float, int]:
    """Σ log p(continuation tokens | context) straight from the model's logits, one
    sequence at a time, with lm-eval's whitespace move and whole-string encoding."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    if context:
        ctx = tokenizer.encode(context)
        cont = tokenizer.encode(context + continuation)[len(ctx) :]
    else:  # lm-eval conditions an empty context on BOS (here EOS)
        ctx, cont = [tokenizer.bos_token_id], tokenizer.encode(continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logits = model(input_ids=ids[:, :-1]).logits[0].double()
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    total = sum(float(logp[len(ctx) - 1 + k, t]) for k, t in enumerate(cont))
    return total, len((continuation).encode("utf-8"))


def test_scores_equal_a_hand_computation_from_the_logits(model, tokenizer):
    examples = [T.parse_example(e, "x") for e in EXAMPLES]
    records = scoring.score_examples(model, tokenizer, examples, 2, torch.device("cpu"), None)
    for e, r in zip(examples, records, strict=True):
        hand = [hand_logprob(model, tokenizer, e.context, c) for c in e.choices]
        assert r["logprobs"] == pytest.approx([lp for lp, _ in hand], abs=1e-4)
        gold_lp, gold_bytes = hand[e.gold]
        assert r["gold_bytes"] == gold_bytes
        assert r["gold_bpb"] == pytest.approx(-gold_lp / math.log(2) / gold_bytes, rel=1e-5)
        lps = [lp for lp, _ in hand]
        pred = max(range(len(lps)), key=lps.__getitem__)
        normed = [lp / len(c) for lp, c in zip(lps, e.choices, strict=True)]
        pred_norm = max(range(len(lps)), key=normed.__getitem__)
        assert (r["pred"], r["pred_norm"]) == (pred, pred_norm)
        assert r["acc"] == float(pred == e.gold) and r["acc_norm"] == float(pred_norm == e.gold)
    # the whitespace moved from "document 4: " is scored, and counted in the bytes
    assert records[1]["gold_bytes"] == len(" amet")


def test_acc_and_acc_norm_on_a_hand_example():
    """acc takes the largest sum; acc_norm the largest sum per character of the choice."""
    e = T.Example("q", ("a", "bbbbbbbb"), gold=1)
    r = scoring.sample_scores(e, [-2.0, -8.0], [1, 2])  # per char: -2.0 vs -1.0
    assert (r["pred"], r["pred_norm"], r["acc"], r["acc_norm"]) == (0, 1, 0.0, 1.0)
    assert r["gold_bpb"] == pytest.approx(8.0 / math.log(2) / 8)
    s = scoring.summary([r, {**r, "acc": 1.0, "gold_bpb": 0.0}], [e, e], None)
    assert s == {"acc": 0.5, "acc_norm": 1.0, "bpb": r["gold_bpb"] / 2, "chance": 0.5,
                 "n_examples": 2}  # fmt: skip


def test_batching_and_truncation_do_not_change_the_scores(model, tokenizer):
    """One forward per batch, right-padded: the same sums as one pair at a time; a pair
    longer than the model's context keeps its last max_length + 1 tokens (lm-eval's)."""
    long = T.Example("lorem ipsum " * 40, ("dolor", "ipsum"), 1)
    examples = [T.parse_example(e, "x") for e in EXAMPLES] + [long]
    cpu = torch.device("cpu")
    one = scoring.score_examples(model, tokenizer, examples, 1, cpu, None)
    many = scoring.score_examples(model, tokenizer, examples, 16, cpu, None)
    for a, b in zip(one, many, strict=True):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)


# ----------------------------------------------------------------------------- next_line


def test_next_line_task_is_built_from_the_val_split_only(tmp_path):
    import pandas as pd

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    val = [
        f"def f{d}():\n" + "".join(f"    value_{d}_{k} = {k}\n" for k in range(6)) for d in range(8)
    ]
    pd.DataFrame({"text": val}).to_parquet(corpus / "val-00000.parquet")
    pd.DataFrame({"text": ["TRAINING TEXT LINE " * 3] * 50}).to_parquet(
        corpus / "train-00000.parquet"
    )
    examples = T.build_next_line(corpus, 20, 2, seed=5)
    assert examples == T.build_next_line(corpus, 20, 2, seed=5)  # deterministic
    assert examples != T.build_next_line(corpus, 20, 2, seed=6)
    val_lines = {line for doc in val for line in doc.split("\n")}
    for e in examples:
        assert len(e.choices) == 4 and len(set(e.choices)) == 4
        assert set(e.choices) <= val_lines and "TRAINING" not in e.context
        assert e.context.endswith("\n") and e.context.count("\n") == 2
        doc = next(d for d in val if e.context in d)
        assert doc.split(e.context, 1)[1].split("\n")[0] == e.choices[e.gold]  # the true next
    assert T.chance_level(examples) == 0.25
    assert {e.gold for e in examples} == {0, 1, 2, 3}  # the gold position is shuffled
    with pytest.raises(DataError, match="next_line needs 500"):
        T.build_next_line(corpus, 500, 2, seed=5)


# ----------------------------------------------------------------------------- lm-eval


LM_EVAL_TASK = """\
task: ladder_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
"""


KEPT_RUNG = replace(tiny_rung(), keep_steps="4 8")  # 16 steps; models kept after 4 and 8


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizer_dir):
    """A tiny trained rung's model/ (16 steps on synthetic shards), and beside it the models
    kept after steps 4 and 8 (checkpoints/)."""
    d = tmp_path_factory.mktemp("rung")
    assert run(KEPT_RUNG, make_shards(d / "tokens"), d / "run") == 0
    return d / "run/model"


def test_acc_and_acc_norm_equal_lm_eval(tmp_path, trained, tokenizer_dir, monkeypatch):
    """Ladder's scores of a tiny trained rung on a local task are lm-eval's own, run through
    simple_evaluate(model="hf") offline on the same model and tokenizer."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    lines = [
        {"context": f"document {i}: lorem", "choices": [" ipsum" * (i % 3 + 1), " amet", "!"],
         "gold": i % 3}
        for i in range(24)
    ]  # fmt: skip
    data = write_lines(tmp_path / "local.jsonl", [json.dumps(e) for e in lines])
    (tmp_path / "yaml").mkdir()
    (tmp_path / "yaml/ladder_local.yaml").write_text(LM_EVAL_TASK.format(path=data))
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={trained},tokenizer={tokenizer_dir},dtype=float32",
        tasks=["ladder_local"],
        task_manager=TaskManager(include_path=str(tmp_path / "yaml")),
        device="cpu",
        batch_size=4,
    )["results"]["ladder_local"]
    model = AutoModelForCausalLM.from_pretrained(trained).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples = T.read_task(data)
    ours = scoring.summary(
        scoring.score_examples(model, tokenizer, examples, 8, torch.device("cpu"), None),
        examples,
        None,
    )
    assert ours["acc"] == pytest.approx(results["acc,none"], abs=1e-9)
    assert ours["acc_norm"] == pytest.approx(results["acc_norm,none"], abs=1e-9)
    assert 0 < ours["acc"] < 1 or ours["acc_norm"] != ours["acc"]  # not a trivial agreement
    # and the same task read through lm-eval's TaskManager gives the same examples
    through = T.from_lm_eval("ladder_local", include_path=str(tmp_path / "yaml"))
    assert through == examples


# ----------------------------------------------------------------------------- kept models


def test_keep_steps_are_fractions_of_each_run_and_wsd_stable_phases_are_the_stable_runs():
    """tasks.checkpoints -> each rung's keep_steps; under WSD a branch keeps only its own
    cooldown's steps and the size's stable run the rest (the same weights for every branch),
    each once; a study without tasks keeps none, nor does a tuning run."""
    from ladder.config import load_config
    from ladder.plan import plan, sweep_plan, wsd_plan
    from ladder.rung import keep_steps
    from tests.conftest import wsd_study

    assert keep_steps(16, [0.25, 0.5]) == "4 8" and keep_steps(2, [0.25, 0.5, 0.99]) == "1"
    task = {"list": [{"name": "nl", "builtin": "next_line"}], "checkpoints": [0.25, 0.5, 0.9]}
    study = load_config(wsd_study() | {"tasks": task})
    rungs = plan(study)  # branches of 8 and 16 steps, cooldowns from steps 6 and 12
    assert {r.id: r.kept for r in rungs} == {"L1-d16-T1.02K": (7,), "L1-d16-T2.05K": (14,)}
    (size,) = wsd_plan(study, rungs).values()
    assert size["stops"] == {"L1-d16-T1.02K": 6, "L1-d16-T2.05K": 12}
    assert size["stable"].kept == (2, 4, 8)  # 0.25, 0.5 of 8 steps and of 16 (4 once)
    assert all(not r.kept for r in plan(load_config(wsd_study())))  # no tasks: none kept
    swept = wsd_study(sweep={"lr": [0.5, 1.0]}) | {"tasks": task}
    study = load_config(swept)
    assert all(not s.kept for runs in sweep_plan(study, plan(study)).values() for s in runs)


def test_kept_models_are_scored_in_one_job_into_tasks_csv_rows(trained, tokenizer_dir, tmp_path):
    """`ladder score --checkpoints`: every kept model of a run, one summary each (final
    False, its step and tokens), the same scores as scoring that model on its own; an empty
    folder gives an empty list; aggregate's tasks.csv takes both kinds of summary."""
    from ladder.aggregate import task_table

    task = write_lines(tmp_path / "t.jsonl", [json.dumps(e) for e in EXAMPLES])
    kept = trained.parent / "checkpoints"
    common = ["--rung-json", KEPT_RUNG.to_json(), "--tokenizer-dir", str(tokenizer_dir),
              "--task", str(task), "--name", "t", "--batch-size", "4"]  # fmt: skip
    out, samples = tmp_path / "kept.json", tmp_path / "kept.jsonl"
    argv = [*common, "--checkpoints", str(kept), "--samples", str(samples), "--out", str(out)]
    assert scoring.main(argv) == 0
    summaries = json.loads(out.read_text())
    assert [(s["step"], s["tokens"], s["final"]) for s in summaries] == [
        (4, 4 * 128, False),
        (8, 8 * 128, False),
    ]
    assert {s["run"] for s in summaries} == {KEPT_RUNG.id} and summaries[0]["n_examples"] == 3
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [line["step"] for line in lines] == [4, 4, 4, 8, 8, 8]
    alone = tmp_path / "alone.json"
    argv = [*common, "--model-dir", str(kept / "step8"), "--train-json",
            str(trained.parent / "train.json"), "--step", "8",
            "--samples", str(tmp_path / "a.jsonl"), "--out", str(alone)]  # fmt: skip
    assert scoring.main(argv) == 0
    assert json.loads(alone.read_text())["bpb"] == pytest.approx(summaries[1]["bpb"], rel=1e-6)
    assert summaries[0]["bpb"] != summaries[1]["bpb"]  # two different models
    (tmp_path / "none").mkdir()
    empty = tmp_path / "empty.json"
    argv = [*common, "--checkpoints", str(tmp_path / "none"), "--samples",
            str(tmp_path / "e.jsonl"), "--out", str(empty)]  # fmt: skip
    assert scoring.main(argv) == 0 and json.loads(empty.read_text()) == []
    table = task_table([out, alone, empty])
    assert list(table["step"]) == [4, 8, 8] and not table["final"].any()


def test_tasks_csv_and_runs_csv_columns(tmp_path):
    """The aggregate's task tables: tasks.csv long form (the fit's contract) and the final
    checkpoints' task_<name>_* columns of runs.csv."""
    from ladder.aggregate import TASK_COLUMNS, task_columns, task_table

    paths = []
    for run_id, step, final in [("A", 4, False), ("A", 8, True), ("B", 8, True)]:
        record = {"task": "nl", "run": run_id, "step": step, "tokens": step * 128, "params": 10,
                  "final": final, "acc": step / 10, "acc_norm": 0.5, "bpb": 1.0 / step,
                  "chance": 0.25, "n_examples": 64, "device": "cpu"}  # fmt: skip
        paths.append(tmp_path / f"{run_id}-{step}.json")
        paths[-1].write_text(json.dumps(record))
    table = task_table(paths)
    assert list(table.columns) == TASK_COLUMNS == ["run", "step", "tokens", "params", "task",
        "acc", "acc_norm", "bpb", "chance", "n_examples", "final"]  # fmt: skip
    assert len(table) == 3
    wide = task_columns(table)
    assert sorted(wide.columns) == ["task_nl_acc", "task_nl_acc_norm", "task_nl_bpb"]
    assert wide.loc["A", "task_nl_acc"] == 0.8 and wide.loc["B", "task_nl_bpb"] == 1 / 8


NEXT_LINE_32 = {"name": "next_line", "builtin": "next_line", "examples": 32}


def tiny_task_study(tmp_path: Path, **changes) -> Path:
    """The tiny study (two of its sizes) with the next_line task; `changes` replace sections."""
    import yaml

    from tests.conftest import TINY

    cfg = yaml.safe_load(TINY.read_text())
    cfg["ladder"]["widths"] = [8, 16]
    cfg["tasks"] = {"list": [NEXT_LINE_32]}
    cfg.update(changes)
    configfile = tmp_path / "tiny_tasks.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    return configfile


@pytest.mark.slow
def test_tiny_dag_with_a_task_writes_tasks_csv_and_runs_columns(tmp_path):
    """The tiny study (two of its sizes) with the next_line task, through the real DAG: the
    final models in runs.csv's task columns, and in tasks.csv with the models kept at the
    default tasks.checkpoints (0.25 and 0.5 of each rung's 16 steps)."""
    import csv

    from tests.conftest import snakemake

    proc = snakemake(tmp_path, configfile=tiny_task_study(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = tmp_path / "results/tiny"
    rows = list(csv.DictReader((res / "tasks.csv").open()))
    assert list(rows[0]) == ["run", "step", "tokens", "params", "task", "acc", "acc_norm",
                             "bpb", "chance", "n_examples", "final"]  # fmt: skip
    runs = {r["rung"]: r for r in csv.DictReader((res / "runs.csv").open())}
    assert {r["run"] for r in rows} == set(runs)
    final = [r for r in rows if r["final"] == "True"]
    assert sorted(r["run"] for r in final) == sorted(runs)
    for row in final:
        run_row = runs[row["run"]]
        assert row["n_examples"] == "32" and row["chance"] == "0.25" and row["step"] == "16"
        assert row["params"] == run_row["params_non_embedding"]
        assert float(run_row["task_next_line_acc"]) == float(row["acc"])
        assert 0 < float(run_row["task_next_line_bpb"]) == float(row["bpb"])
        samples = (res / f"runs/{row['run']}/tasks/next_line.jsonl").read_text().splitlines()
        assert len(samples) == 32 and len(json.loads(samples[0])["logprobs"]) == 4
    kept = sorted((r["run"], int(r["step"])) for r in rows if r["final"] == "False")
    assert kept == sorted((run, step) for run in runs for step in (4, 8))
    for row in rows:
        assert int(row["tokens"]) == int(row["step"]) * 1024 and float(row["bpb"]) > 0
        assert row["params"] == runs[row["run"]]["params_non_embedding"]
        assert (res / f"runs/{row['run']}/checkpoints/step4/model.safetensors").exists()
    # the fit rule passes tasks.csv: the task law is fitted or says why not
    laws = json.loads((res / "fits.json").read_text())["laws"]
    assert "task" in laws and ("step2" in laws["task"] or laws["task"].get("skipped"))


@pytest.mark.slow
def test_tiny_wsd_dag_scores_the_stable_runs_and_branches_kept_models(tmp_path):
    """Design wsd: the models kept before a branch's cooldown come from the size's stable
    segments (runs/<size>-stable/checkpoints/<branch>/step<N>/, under run <size>-stable in
    tasks.csv), those inside it from the branch; all scored, each step once."""
    import csv

    from tests.conftest import snakemake

    configfile = tiny_task_study(
        tmp_path,
        ladder={"design": "wsd", "widths": [8], "tokens": [8192, 16384]},
        train={"lr": 0.01, "batch_tokens": 1024, "micro_batch": 32, "decay_frac": 0.25},
        tasks={"list": [NEXT_LINE_32], "checkpoints": [0.25, 0.5, 0.9]},
    )
    # one size and tasks.csv as the target: the stable run's segments and both branches are
    # all the logic; the fits and the report are the other DAG tests' business
    proc = snakemake(tmp_path, "results/tiny/tasks.csv", configfile=configfile)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = tmp_path / "results/tiny"
    rows = list(csv.DictReader((res / "tasks.csv").open()))
    got = sorted((r["run"], int(r["step"]), r["final"]) for r in rows)
    want = []
    for size in ("L1-d8",):
        # branches of 8 and 16 steps, cooldowns from steps 6 and 12: 0.9 of each is in its
        # cooldown; 0.25 and 0.5 (2, 4; 4, 8) in the stable run's segments
        want += [(f"{size}-T8.19K", 7, "False"), (f"{size}-T8.19K", 8, "True")]
        want += [(f"{size}-T16.4K", 14, "False"), (f"{size}-T16.4K", 16, "True")]
        want += [(f"{size}-stable", s, "False") for s in (2, 4, 8)]
    assert got == sorted(want)
    stable = res / "runs/L1-d8-stable/checkpoints"
    assert sorted(p.name for p in (stable / "L1-d8-T8.19K").glob("step*")) == ["step2", "step4"]
    assert sorted(p.name for p in (stable / "L1-d8-T16.4K").glob("step*")) == ["step8"]
    assert not list(res.glob("runs/*-stable/*.state.pt"))  # the states are still temporary
