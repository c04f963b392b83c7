"""Config validation (each error names the key and what is allowed) and the plan."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from ladder import config as C
from ladder.config import load_config
from ladder.errors import ConfigError
from ladder.model import flops_per_token, param_groups
from ladder.plan import main as plan_main
from ladder.plan import plan, plan_csv
from ladder.rung import format_count
from tests.conftest import ROOT, merged


def test_defaults_are_filled(base_config):
    cfg = load_config(base_config)
    assert cfg.data.source == "stdlib"
    assert cfg.train.schedule == "cosine"
    assert cfg.model.family == "llama"
    assert cfg.eval.max_tokens > 0


def _dataclass_schema_pairs(cls, schema, where="<top level>"):
    yield cls, schema, where
    hints = typing.get_type_hints(cls)
    for name, prop in schema["properties"].items():
        if dataclasses.is_dataclass(hints.get(name)):
            yield from _dataclass_schema_pairs(hints[name], prop, name)


def test_dataclass_fields_are_the_schema_keys():
    """The schema is the one source of keys and defaults: every object it describes with
    fixed properties is a dataclass with exactly those fields, in schema order, and no
    defaults of its own; open mappings (overrides, extrapolate_to, shapes) stay dicts."""
    pairs = list(_dataclass_schema_pairs(C.Study, C.load_schema()))
    assert {cls for cls, _, _ in pairs} >= set(C.SECTIONS.values())
    assert len(pairs) == 1 + len(C.SECTIONS) + 3  # + data.hf, data.synthetic, ladder.sweep
    for cls, schema, where in pairs:
        fields = dataclasses.fields(cls)
        assert [f.name for f in fields] == list(schema["properties"]), where
        assert all(f.default is dataclasses.MISSING for f in fields), where
        hints = typing.get_type_hints(cls)
        for name, prop in schema["properties"].items():
            fixed = prop.get("type") == "object" and "properties" in prop
            assert dataclasses.is_dataclass(hints[name]) == fixed, f"{where}.{name}"


def test_study_is_frozen_and_gives_back_plain_data(base_config):
    study = load_config(merged(base_config, report={"extrapolate_to": {"params": 1e9}}))
    assert isinstance(study.ladder, C.LadderConfig) and study.ladder.widths == (16, 32)
    assert study.report.extrapolate_to == {"params": 1e9}
    with pytest.raises(dataclasses.FrozenInstanceError):
        study.seed = 1  # type: ignore[misc]
    plain = study.to_dict()
    assert plain == C.resolve(merged(base_config, report={"extrapolate_to": {"params": 1e9}}))
    assert plain["ladder"]["widths"] == [16, 32] and plain["data"]["hf"]["split"] == "train"
    assert load_config(plain) == study
    assert json.loads(json.dumps(study.data.to_dict())) == plain["data"]


@pytest.mark.parametrize(
    "path",
    ["config/config.yaml", "tests/configs/tiny.yaml", "config/experiments/fineweb_isoflop.yaml"],
)
def test_to_dict_is_the_resolved_config(path):
    """Rule params are JSON of to_dict(): equal to the validated dict, so unchanged."""
    assert json.dumps(load_config(path).to_dict(), sort_keys=True) == json.dumps(
        C.resolve(path), sort_keys=True
    )


def test_a_section_alone_is_validated_and_filled():
    data = C.load_section("data", {"source": "synthetic", "synthetic": {"n_symbols": 8}})
    assert isinstance(data, C.DataConfig) and data.synthetic.n_symbols == 8
    assert data.val_fraction == 0.05 and data.hf.split == "train"
    with pytest.raises(ConfigError, match=r"unknown key \['sorce'\] in 'data'"):
        C.load_section("data", {"sorce": "hf"})
    with pytest.raises(ConfigError, match="data.val_fraction: 0.9 is out of range"):
        C.load_section("data", {"val_fraction": 0.9})


def test_default_study_config_is_valid():
    cfg = load_config("config/config.yaml")
    rungs = plan(cfg)
    non_emb = [param_groups(r.shape)["params_non_embedding"] for r in rungs]
    assert len(set(non_emb)) >= 5
    assert max(non_emb) / min(non_emb) >= 10**1.5  # >= 1.5 decades, as the issue asks
    # two or more token budgets per size, so that N's and D's effects can be told apart
    budgets = {
        n: {r.tokens for r, m in zip(rungs, non_emb, strict=True) if m == n} for n in non_emb
    }
    assert all(len(b) >= 2 for b in budgets.values())


@pytest.mark.parametrize(
    "sections, expected",
    [
        ({"trian": {"lr": 1}}, ["unknown key", "trian", "allowed keys", "train"]),
        ({"train": {"lerning_rate": 1}}, ["unknown key", "lerning_rate", "'train'", "lr"]),
        ({"ladder": {"widths": [16, -32]}}, ["ladder.widths[1]", "-32", ">= 1"]),
        ({"model": {"family": "gtp2"}}, ["model.family", "gtp2", "llama, gpt2, bert"]),
        ({"tokenizer": {"vocab_size": 100}}, ["tokenizer.vocab_size", "100", "at least 258"]),
        (
            {"data": {"source": "files", "paths": ["/nonexistent/*.txt"]}},
            ["data.paths", "/nonexistent/*.txt", "matches no file"],
        ),
        ({"data": {"source": "files"}}, ["data.paths", "at least one"]),
        ({"data": {"source": "parquet"}}, ["data.source", "stdlib, files, hf"]),
        ({"ladder": {"widths": [20]}}, ["ladder.widths[0]", "head_dim"]),
        ({"train": {"batch_tokens": 1000}}, ["train.batch_tokens", "multiple of model.seq_len"]),
        ({"ladder": {"overrides": {"L9-d9-T1": {"lr": 1}}}}, ["ladder.overrides", "L9-d9-T1"]),
    ],
)
def test_config_errors_name_the_key(base_config, sections, expected):
    with pytest.raises(ConfigError) as err:
        plan(load_config(merged(base_config, **sections)))
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_plan_shapes_ids_and_counts(base_config):
    rungs = plan(load_config(base_config))
    assert [r.id for r in rungs] == ["L1-d16-T10K", "L2-d32-T10K"]
    r = rungs[1]
    # depth rule: n_layer = round(32 / aspect_ratio 16) = 2; head_dim 8 gives 4 heads
    assert (r.n_layer, r.d_model, r.n_head, r.n_kv_head) == (2, 32, 4, 4)
    assert r.tokens == r.steps * r.batch_tokens >= 10000
    # llama by hand: per layer q,k,v,o 4·d², SwiGLU 3·d·ff, two RMSNorms; final norm
    d, ff, V, L = 32, 96, 300, r.n_layer
    block = 4 * d * d + 3 * d * ff + 2 * d
    groups = param_groups(r.shape)
    assert groups["params_non_embedding"] == L * block + d
    assert groups["params_embedding"] == groups["params_head"] == V * d
    assert flops_per_token(r.shape) == 6 * (L * block + d + V * d) + 12 * L * 32 * d


def test_plan_is_stable_and_overrides_touch_one_rung(base_config):
    a = plan(load_config(base_config))
    b = plan(load_config(merged(base_config, ladder={"overrides": {"L2-d32-T10K": {"lr": 0.1}}})))
    assert [r.id for r in a] == [r.id for r in b]
    assert a[0] == b[0] and a[1] != b[1] and b[1].lr == 0.1


def test_tokens_per_param_and_explicit_shapes(base_config):
    cfg = merged(
        base_config,
        ladder={"widths": [], "shapes": [{"n_layer": 3, "d_model": 24}], "tokens_per_param": 20},
    )
    (r,) = plan(load_config(cfg))
    assert r.n_layer == 3 and r.n_head == 3
    assert abs(r.tokens - 20 * param_groups(r.shape)["params_total"]) < r.batch_tokens


def test_format_count():
    assert [format_count(n) for n in (999, 1000, 1500000, 2e6, 65536)] == [
        "999",
        "1K",
        "1.5M",
        "2M",
        "65.5K",
    ]


def test_ladder_plan_cli_writes_plan_csv(tmp_path):
    out = tmp_path / "plan.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ladder.cli",
            "plan",
            "--configfile",
            "config/config.yaml",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 15 and "total" in proc.stdout
    assert plan_csv(plan(load_config("config/config.yaml"))) == out.read_text()
    total = sum(float(r["flops"]) for r in rows)
    assert f"{total:.3g}" in proc.stdout


def test_cli_reports_config_error_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  family: gtp2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ladder.cli", "plan", "--configfile", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "model.family" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "cluster, extra, rate, basis",
    [
        ({}, [], 4e14, "assumed"),
        ({"flops_per_s": 2e14}, [], 2e14, "cluster.flops_per_s"),
        ({"flops_per_s": 2e14}, ["--flops-per-s", "5e14"], 5e14, "--flops-per-s"),
    ],
)
def test_ladder_plan_always_estimates_gpu_hours(cluster, extra, rate, basis, tmp_path, capsys):
    """The cost preview a user asks for first: GPU-hours from the study's throughput, else
    from a default that is printed as an assumption; plan.csv records which."""
    cfg = yaml.safe_load(Path("config/config.yaml").read_text())
    cfg["cluster"] = {**cfg.get("cluster", {}), **cluster}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "plan.csv"
    args = ["--configfile", str(tmp_path / "s.yaml"), "--out", str(out), *extra]
    assert plan_main(args) == 0
    printed = capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    for row in rows:
        assert float(row["est_gpu_hours"]) == pytest.approx(float(row["flops"]) / rate / 3600)
        assert float(row["est_flops_per_s"]) == rate and row["est_basis"] == basis
    total_h = sum(float(r["est_gpu_hours"]) for r in rows)
    total_line = next(x for x in printed.splitlines() if x.startswith("total "))
    assert "est. GPU-h" in printed and f"{total_h:.4g}" in total_line
    if basis == "assumed":
        assert "GPU-hours assuming 4e+14 FLOP/s per GPU" in printed
    else:
        assert f"GPU-hours at {rate:.3g} FLOP/s per GPU ({basis})" in printed


def schema_keys(node: dict, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict]]:
    """Every (key path, its schema) of the config schema, nested objects included."""
    out = []
    for key, sub in (node.get("properties") or {}).items():
        out.append(((*path, key), sub))
        out += schema_keys(sub, (*path, key))
    return out


def test_config_readme_documents_every_schema_key():
    """config/README.md has a row for each key of the schema, in its section's table
    (`| \\`hf.name\\` |` under `data`); a key whose value is an object of documented keys needs
    no row of its own, and one documented in one row (`extrapolate_to`) names its keys there."""
    schema = yaml.safe_load(C.SCHEMA_PATH.read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    sections = {"": readme.split("\n## ")[1]}  # "Top level"
    for part in readme.split("\n## ")[1:]:
        if part.startswith("`"):
            sections[part[1 : part.index("`", 1)]] = part
    rows = {}  # section -> [(key, the rest of its row)]; a row may name two (`beta1`, `beta2`)
    for name, text in sections.items():
        cells = re.findall(r"^\| (`[^|]+`) \|(.*)$", text, re.M)
        rows[name] = [(key, rest) for cell, rest in cells for key in re.findall(r"`([^`]+)`", cell)]
    missing = []
    for path, sub in schema_keys(schema):
        section, rel = ("", path[0]) if len(path) == 1 else (path[0], ".".join(path[1:]))
        if len(path) == 1 and "properties" in sub:
            ok = path[0] in sections  # a section of its own
        else:
            table = dict(rows.get(section, []))
            parent = table.get(".".join(path[1:-1]), "")
            ok = rel in table or "properties" in sub or f"{path[-1]}:" in parent
        if not ok:
            missing.append(".".join(path))
    assert not missing, f"config/README.md does not document: {missing}"
