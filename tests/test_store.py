"""The run store (ladder.store): studies share trained rungs, never train one twice.

The DAG tests run a two-rung study (the smallest that shows a ladder: two widths, 4096
tokens each) to runs.csv, as more studies reuse its rungs; the unit tests run
`ladder store run` around a real `ladder train` on tests' own small shards.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ladder import store
from tests.conftest import ENV, TINY, make_shards, snakemake, tiny_rung, wait_until

# ----------------------------------------------------------------------------- unit


def tokenizer_dir(d: Path, text: str = '{"model": "bpe"}') -> Path:
    """A stand-in tokenizer folder: the key hashes its files' bytes, nothing more."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "tokenizer.json").write_text(text)
    return d


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    return make_shards(root / "tokens"), tokenizer_dir(root / "tokenizer")


def store_cmd(rung, data, out: Path) -> list[str]:
    """`ladder store run ... -- ladder train ...`, as the train rule runs it."""
    tokens, tokenizer = data
    spec = ["--rung-json", rung.to_json(), "--tokens-dir", str(tokens)]
    train = [sys.executable, "-m", "ladder.cli", "train", *spec, "--out-dir", str(out)]
    return [sys.executable, "-m", "ladder.cli", "store", "run", *spec,
            "--tokenizer-dir", str(tokenizer), "--out-dir", str(out), "--", *train]  # fmt: skip


def store_run(rung, data, out: Path, shared: Path) -> dict:
    """Run it to the end in its own process; store.json of the run."""
    env = {**ENV, store.ENV: str(shared)}
    cmd = store_cmd(rung, data, out)
    proc = subprocess.run(cmd, env=env, cwd=out.parent, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "store.json").read_text())


def entries(shared: Path) -> list[str]:
    return sorted(p.name for p in (shared / "entries").glob("*")) if shared.exists() else []


def test_key_changes_with_everything_that_changes_the_weights(data, tmp_path):
    tokens, tokenizer = data
    rung = tiny_rung()

    def key(r=rung, toks=tokens, tok=tokenizer) -> str:
        return store.run_key(store.key_inputs(r, toks, tok, None))

    base = key()
    assert key(tiny_rung()) == base  # the same run, planned again
    # its name, design label and logging pace change no weight
    assert key(tiny_rung(log_every_s=5.0, checkpoint_minutes=3.0)) == base
    # nor does the node count its GPUs are spread over (as cluster.gpus_per_node)
    assert key(tiny_rung(gpus=2, nodes=2)) == key(tiny_rung(gpus=2))
    assert key(replace(tiny_rung(), seed=8)) != base
    assert key(tiny_rung(lr=0.002)) != base
    assert key(tok=tokenizer_dir(tmp_path / "tok2", '{"model": "bpe", "v": 2}')) != base
    other = make_shards(tmp_path / "tokens2")
    (other / "train.bin").write_bytes((other / "train.bin").read_bytes()[::-1])
    assert key(toks=other) != base
    # the training code: a changed statement changes the key, a comment does not
    src = Path(store.__file__).parent / "loss.py"
    version = store.code_version()
    store.code_version.cache_clear()
    text = src.read_text()
    try:
        src.write_text(text + "\n# a comment\n")
        assert store.code_version() == version
        store.code_version.cache_clear()
        src.write_text(text + "\nCHANGED = 1\n")
        assert store.code_version() != version
    finally:
        src.write_text(text)
        store.code_version.cache_clear()


def test_where_the_store_is(monkeypatch, tmp_path):
    monkeypatch.delenv(store.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert store.resolve() == tmp_path / "results/store"  # beside the studies
    monkeypatch.setenv(store.ENV, str(tmp_path / "lab"))
    assert store.resolve() == tmp_path / "lab"
    assert store.resolve("/shared/x") == Path("/shared/x")  # store.dir wins
    assert store.resolve("/shared/x", enabled=False) is None
    monkeypatch.setenv(store.ENV, store.OFF)
    assert store.resolve() is None


def test_reuse_and_retrain_on_a_changed_lr(data, tmp_path):
    shared = tmp_path / "store"
    first = store_run(tiny_rung(), data, tmp_path / "a", shared)
    assert first["source"] == "trained" and entries(shared) == [first["key"]]
    manifest = json.loads((shared / "entries" / first["key"] / "manifest.json").read_text())
    assert manifest["inputs"]["spec"]["lr"] == tiny_rung().lr and manifest["wall_s"] > 0
    again = store_run(tiny_rung(), data, tmp_path / "b", shared)
    assert again["source"] == "reused" and again["key"] == first["key"]
    for name in ("model/model.safetensors", "train_log.csv", "train.json"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    # the study's copy is its own (writable); the store's is read-only
    assert (tmp_path / "b" / "train.json").stat().st_mode & 0o200
    assert not (shared / "entries" / first["key"] / "train.json").stat().st_mode & 0o222
    # a changed lr (or seed, data, tokenizer, code: the key test above) trains anew
    changed = store_run(tiny_rung(lr=0.002), data, tmp_path / "c", shared)
    assert changed["source"] == "trained" and changed["key"] != first["key"]
    assert len(entries(shared)) == 2


def test_kept_models_travel_with_a_stored_run_and_change_its_key(data, tmp_path):
    """A run that keeps models (tasks.checkpoints) is stored and reused with checkpoints/;
    keep_steps is in the key, so a study asking for other steps trains its own run."""
    shared, rung = tmp_path / "store", replace(tiny_rung(), keep_steps="4 8")
    first = store_run(rung, data, tmp_path / "a", shared)
    manifest = json.loads((shared / "entries" / first["key"] / "manifest.json").read_text())
    assert manifest["files"][0] == "checkpoints"
    again = store_run(rung, data, tmp_path / "b", shared)
    assert again["source"] == "reused"
    for step in (4, 8):
        name = f"checkpoints/step{step}/model.safetensors"
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step4", "step8"]
    other = store_run(replace(rung, keep_steps="4"), data, tmp_path / "c", shared)
    assert other["source"] == "trained" and other["key"] != first["key"]


def test_store_off_trains_and_stores_nothing(data, tmp_path):
    rec = store_run(tiny_rung(), data, tmp_path / "run", Path(store.OFF))
    assert rec == {"source": "trained", "key": None}
    assert (tmp_path / "run" / "train.json").exists()
    assert not (tmp_path / "results").exists() and not (tmp_path / "off").exists()


def test_kill_during_training_leaves_no_entry(data, tmp_path):
    shared, out = tmp_path / "store", tmp_path / "run"
    rung = tiny_rung(tokens=4096, checkpoint_minutes=0.002)  # a checkpoint every 0.12 s
    env = {**ENV, store.ENV: str(shared)}
    proc = subprocess.Popen(store_cmd(rung, data, out), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_until("the first checkpoint", (out / "ckpt/state.pt").exists, 240, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the job and its trainer, mid-training
    proc.wait()
    assert entries(shared) == [] and not list((shared / "tmp").glob("*"))
    assert not (out / "store.json").exists()
    assert list((shared / "locks").glob("*.lock"))  # its holder is dead: the lock is stale
    rec = store_run(rung, data, out, shared)  # breaks the stale lock, resumes, stores
    assert rec["source"] == "trained" and entries(shared) == [rec["key"]]


def test_two_jobs_at_once_train_the_run_once(data, tmp_path):
    shared = tmp_path / "store"
    env = {**ENV, store.ENV: str(shared)}
    outs = [tmp_path / "x", tmp_path / "y"]
    procs = [
        subprocess.Popen(
            store_cmd(tiny_rung(), data, o), env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for o in outs
    ]  # fmt: skip
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    sources = sorted(json.loads((o / "store.json").read_text())["source"] for o in outs)
    assert sources == ["reused", "trained"], logs
    assert len(entries(shared)) == 1


# ----------------------------------------------------------------------------- the DAG


def study_config(tmp_path: Path, name: str, widths: list[int]) -> Path:
    """The tiny study, smaller still: `widths` at 4096 tokens, named `name`."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["study"] = name
    cfg["data"]["max_bytes"] = 100_000
    cfg["ladder"] = {"widths": widths, "tokens": 4096}
    cfg["eval"]["max_tokens"] = 2048
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_study(workdir: Path, configfile: Path) -> list[dict]:
    """The study to runs.csv (no fits or report: the store is about training); its rows."""
    name = yaml.safe_load(configfile.read_text())["study"]
    proc = snakemake(workdir, f"results/{name}/runs.csv", configfile=configfile)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return list(csv.DictReader((workdir / f"results/{name}/runs.csv").open()))


def trained(rows: list[dict]) -> list[str]:
    return [r["rung"] for r in rows if r["source"] == "trained"]


@pytest.mark.slow
def test_studies_share_rungs_in_one_checkout_and_across_checkouts(tmp_path, monkeypatch, capsys):
    from ladder import plan, status

    one, two, shared = tmp_path / "one", tmp_path / "two", tmp_path / "shared"
    monkeypatch.setenv(store.ENV, str(shared))  # every job of every study inherits it
    a = run_study(one, study_config(tmp_path, "a", [8, 16]))
    assert len(trained(a)) == 2 and len(entries(shared)) == 2
    # another name, the same data and ladder: trains none, the weights are the same files
    b = run_study(one, study_config(tmp_path, "b", [8, 16]))
    assert trained(b) == [] and {r["source_study"] for r in b} == {"a"}
    for row in b:
        model = f"runs/{row['rung']}/model/model.safetensors"
        assert (one / "results/b" / model).read_bytes() == (one / "results/a" / model).read_bytes()
        assert row["loss_nats"] == next(r for r in a if r["rung"] == row["rung"])["loss_nats"]
    log = (one / f"results/b/logs/train/{b[0]['rung']}.log").read_text()
    assert "nothing trained" in log and " step " not in log
    monkeypatch.chdir(one)
    assert plan.main(["--configfile", str(tmp_path / "b.yaml")]) == 0
    assert "2 of 2 runs stored (reused, not trained)" in capsys.readouterr().out
    runs = status.study_status(tmp_path / "b.yaml", one)["runs"]
    assert {r["state"] for r in runs} == {"reused"}
    # a second checkout (its own results/) on the shared store, one more width: only the
    # new width trains
    c = run_study(two, study_config(tmp_path, "c", [8, 16, 24]))
    assert [r["d_model"] for r in c if r["source"] == "trained"] == ["24"]
    assert len(entries(shared)) == 3
