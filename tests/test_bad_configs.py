"""Every bad study config is one line naming the key, the value and what is allowed, and
is caught by `ladder plan` (config alone), before anything is written or any job runs.
Issue #12's cases, one row each; then the values that must be accepted (numbers given as
text by `snakemake --config`), and the plan-time memory warning."""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml

from ladder import estimates
from ladder import plan as P
from ladder.config import data_files, load_config, load_section
from ladder.plan import plan
from tests.conftest import ROOT, snakemake_cmd

BASE = {
    "study": "unit",
    "tokenizer": {"vocab_size": 300},
    "model": {"seq_len": 32, "head_dim": 8, "aspect_ratio": 16},
    "ladder": {"widths": [16, 32], "tokens": 10000},
    "train": {"batch_tokens": 1024},
}
RUNG = "L1-d16-T10K"  # the smaller of BASE's two rungs


def patched(**sections) -> dict:
    cfg = copy.deepcopy(BASE)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def text(**sections) -> str:
    return yaml.safe_dump(patched(**sections), sort_keys=False)


def override(**values) -> str:
    return text(ladder={"overrides": {RUNG: values}})


# (case, the config file's text, fragments the one-line message must contain)
CASES = [
    # 2. a value of the wrong type
    ("lr-not-a-number", text(train={"lr": "fast"}), ["train.lr", "'fast'", "must be a number"]),
    # 3. ladder.overrides: the same keys and values as train
    (
        "override-unknown-key",
        override(learning_rate=0.1),
        [f"ladder.overrides.{RUNG}", "learning_rate", "allowed keys", "lr"],
    ),
    ("override-lr-text", override(lr="fast"), [f"ladder.overrides.{RUNG}.lr", "'fast'", "number"]),
    ("override-lr-negative", override(lr=-1), [f"ladder.overrides.{RUNG}.lr", "-1", "> 0"]),
    (
        "override-schedule",
        override(schedule="linear"),
        [f"ladder.overrides.{RUNG}.schedule", "'linear'", "cosine, constant, wsd"],
    ),
    (
        "override-warmup-frac",
        override(warmup_frac=5),
        [f"ladder.overrides.{RUNG}.warmup_frac", "5", "<= 1"],
    ),
    (
        "override-batch-zero",
        override(batch_tokens=0),
        [f"ladder.overrides.{RUNG}.batch_tokens", "0", ">= 1"],
    ),
    (
        "override-batch-negative",
        override(batch_tokens=-32),
        [f"ladder.overrides.{RUNG}.batch_tokens", "-32", ">= 1"],
    ),
    (
        "override-device-injection",
        override(device="cpu; touch /tmp/pwned"),
        [f"ladder.overrides.{RUNG}.device", "cpu; touch", "auto, cpu, cuda, cuda:N"],
    ),
    # 5. what used to fail only after training
    (
        "eval-window",
        text(eval={"max_tokens": 32}),
        ["eval.max_tokens", "32", ">= 33", "model.seq_len 32"],
    ),
    ("device-tpu", text(train={"device": "tpu"}), ["train.device", "'tpu'", "auto, cpu, cuda"]),
    # train.nodes: a positive integer, over which the rung's gpus split evenly
    ("nodes-zero", text(train={"nodes": 0}), ["train.nodes", "0", ">= 1"]),
    ("nodes-fraction", text(train={"nodes": 1.5}), ["train.nodes", "1.5", "integer or null"]),
    ("nodes-text", override(nodes="two"), [f"ladder.overrides.{RUNG}.nodes", "'two'", "integer"]),
    (
        "nodes-uneven",
        text(train={"gpus": 3, "nodes": 2}),
        ["train.nodes", "2 nodes", "split evenly", "gpus is 3", "multiple of 2"],
    ),
    (
        "nodes-uneven-override",
        override(gpus=4, nodes=3),
        [f"ladder.overrides.{RUNG}.nodes", "3 nodes", "gpus is 4"],
    ),
    ("nodes-share", text(train={"gpus": 0.5, "nodes": 2}), ["train.nodes", "gpus is 0.5"]),
    ("nodes-no-gpus", text(train={"gpus": 0, "nodes": 2}), ["train.gpus", "0", "> 0"]),
    (
        "nodes-beyond-a-node",
        text(train={"gpus": 16, "nodes": 1}, cluster={"gpus_per_node": 8}),
        ["train.nodes", "16 GPUs a node", "cluster.gpus_per_node 8", "more nodes"],
    ),
    # 5b. the task law and its checkpoints
    (
        "task-step2",
        text(fit={"task_step2": "logistic"}),
        ["fit.task_step2", "'logistic'", "sigmoid, exp"],
    ),
    (
        "task-checkpoint-fraction",
        text(tasks={"checkpoints": [0.5, 1.0]}),
        ["tasks.checkpoints[1]", "1.0", "< 1"],
    ),
    # 6. study names that leave results/
    ("study-dotdot", text(study=".."), ["study", "'..'", "letters, digits", "results/<study>/"]),
    ("study-dot", text(study="."), ["study", "'.'", "starting with a letter or digit"]),
    ("study-slash", text(study="a/b"), ["study", "'a/b'", "letters, digits"]),
    # 8. impossible sizes
    (
        "params-beyond-widest",
        text(ladder={"widths": [], "params": [1e15]}),
        ["ladder.params[0]", "1e+15", "beyond the largest shape", "ladder.shapes"],
    ),
    (
        "params-below-narrowest",
        text(ladder={"widths": [], "params": [10]}),
        ["ladder.params[0]", "10", "below the smallest shape"],
    ),
    (
        "width-too-large",
        text(ladder={"widths": [65536]}),
        ["ladder.widths[0]", "L4096-d65536", "needs about", "PiB", "more than any one device"],
    ),
    (
        "budget-ids-collide",
        text(ladder={"design": "isoflop", "budgets_flops": [1.234e12, 1.2341e12]}),
        ["ladder.budgets_flops[1]", "1.2341e+12", "C1.23e12", "3 significant digits"],
    ),
    # 8. files that are not a study
    ("yaml-syntax", "study: unit\nmodel: [seq_len: 32\n", ["study.yaml", "line 3", "invalid YAML"]),
    (
        "yaml-tabs",
        "study: unit\nmodel:\n\tseq_len: 32\n",
        ["study.yaml", "line 3", "invalid YAML", "spaces, not tabs"],
    ),
    ("empty-file", "", ["study.yaml", "is empty", "study: <name>"]),
    ("comments-only", "# a study, some day\n", ["study.yaml", "is empty"]),
    (
        "two-train-blocks",
        "study: unit\ntrain:\n  lr: 0.1\ntrain:\n  lr: 0.2\n",
        ["study.yaml", "line 4", "key 'train' given twice", "lines 2 and 4"],
    ),
    ("not-a-mapping", "- study\n- unit\n", ["study.yaml", "mapping of keys", "not a list"]),
    ("not-utf8", None, ["study.yaml", "not UTF-8", "byte 17"]),
]


@pytest.mark.parametrize("source, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_is_one_line_and_nothing_is_written(source, fragments, tmp_path, capsys):
    cfg = tmp_path / "study.yaml"
    if source is None:
        cfg.write_bytes("study: unit\n# café\n".encode("latin-1"))
    else:
        cfg.write_text(source)
    out = tmp_path / "results" / "plan.csv"
    rc = P.main(["--configfile", str(cfg), "--out", str(out), "--resolved", str(out) + ".yaml"])
    captured = capsys.readouterr()
    assert rc == 2, captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("ladder plan: config error: ")
    assert "Traceback" not in captured.err and "np.float64" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert [p.name for p in tmp_path.iterdir()] == ["study.yaml"]  # nothing half-written


def test_isoflop_budget_ids_keep_their_digits():
    study = load_config(patched(ladder={"design": "isoflop", "budgets_flops": [1.5e12, 2e12]}))
    budgets = {r.id.split("-")[0] for r in plan(study)}
    assert budgets == {"C1.5e12", "C2e12"}
    assert P.budget_id(1e18) == "C1e18" and P.budget_id(3e19) == "C3e19"  # ids as before


# values that arrive as text: `snakemake --config train='{lr: 0.002}'` reads nested values
# with YAML's BaseLoader (every scalar a string); YAML 1.1 reads 1e13 as a string too
ACCEPTED = [
    ({"train": {"lr": "0.002"}}, lambda s: s.train.lr == 0.002),
    ({"train": {"lr": "2e-3"}}, lambda s: s.train.lr == 0.002),
    ({"train": {"batch_tokens": "2048"}}, lambda s: s.train.batch_tokens == 2048),
    ({"train": {"compile": "false"}}, lambda s: s.train.compile is False),
    ({"train": {"compile": "true"}}, lambda s: s.train.compile is True),
    ({"ladder": {"widths": ["16", "32"], "tokens": "1e4"}}, lambda s: s.ladder.tokens == 10000),
    ({"ladder": {"overrides": {RUNG: {"lr": "0.1"}}}}, lambda s: plan(s)[0].lr == 0.1),
    ({"data": {"max_bytes": "null"}}, lambda s: s.data.max_bytes is None),
    ({"model": {"tie_embeddings": "true"}}, lambda s: s.model.tie_embeddings is True),
    ({"study": "2024"}, lambda s: s.study == "2024"),  # a string field stays a string
    ({"train": {"gpus": "4", "nodes": "2"}}, lambda s: plan(s)[0].nodes == 2),
]


@pytest.mark.parametrize("sections, check", ACCEPTED)
def test_values_given_as_text_are_typed_by_the_schema(sections, check):
    assert check(load_config(patched(**sections)))


def test_readme_override_example_through_snakemake(tmp_path):
    """The README's line, exactly: nested --config values arrive as strings."""
    config = ROOT / "config/config.yaml"  # what the README's line reads from the repo root
    cmd = snakemake_cmd(config, "-n", "--config", "study=lr2", "train={lr: 0.002}",
                        workdir=tmp_path, cores="all")  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert "config error" not in out and "results/lr2/plan.csv" in out
    assert not (tmp_path / "results").exists()  # a dry run writes nothing


def test_memory_beyond_the_device_is_a_warning_with_bytes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(estimates, "device_memory", lambda device: ("cpu", 2**30))
    cfg = tmp_path / "study.yaml"
    cfg.write_text(text(ladder={"widths": [16, 512]}, train={"device": "cpu"}))
    assert P.main(["--configfile", str(cfg), "--out", str(tmp_path / "plan.csv")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ladder plan: warning: 1 rung(s)")
    assert "L32-d512-T10K ~" in err[0] and "GiB" in err[0] and "device cpu, 1 GiB" in err[0]
    assert (tmp_path / "plan.csv").exists()


def test_home_relative_data_paths_are_inputs(tmp_path, monkeypatch):
    """`~/` in data.paths is expanded for the corpus rule's inputs too, so editing such a
    file rebuilds the corpus."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("one document")
    data = load_section("data", {"source": "files", "paths": ["~/corpus/*.txt"]})
    assert data_files(data) == [str(tmp_path / "corpus" / "a.txt")]
    assert "data_files(STUDY.data)" in (ROOT / "workflow/rules/common.smk").read_text()
