"""benchmarks/gpu_acceptance.py runs end to end on CPU (--quick), as it would on a bare GPU
image: without snakemake, pytest or jsonschema, each hidden from it here (the train and
evaluate stages read a rung, never a study config, so nothing stands in for them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

# A bare GPU image: torch, transformers (with its pyyaml), numpy, and none of these.
HIDE = """
import importlib.abc, sys

HIDDEN = {"snakemake", "pytest", "_pytest", "jsonschema"}


class Hide(importlib.abc.MetaPathFinder):
    # not installed: any import of them fails, as on the bare image
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
        return None


sys.meta_path.insert(0, Hide())
"""


def test_acceptance_script_runs_on_cpu_without_the_workflow_stack(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(HIDE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "acceptance.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_acceptance.py"), "--device", "cpu",
           "--quick", "--out", str(out), "--work-dir", str(tmp_path / "work"),
           # generous: a busy test machine must not turn into a timed-out section
           "--budget-s", "throughput=300,sharing=300,resume=300,evaluate=300"]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["ok"]
    sec = report["sections"]
    assert list(sec) == ["throughput", "sharing", "resume", "evaluate"]
    assert all(s["status"] == "ok" for s in sec.values())
    assert sec["throughput"]["shapes"][0]["ladder_tokens_per_s"] > 0
    assert len(sec["sharing"]["tokens_per_s_shared"]) == 2 and sec["sharing"]["ratio"] > 0
    r = sec["resume"]
    assert 0 < r["resumed_from_step"] < r["steps"]
    assert r["max_step_loss_diff"] == 0 and r["loss_nats"][0] == r["loss_nats"][1]  # exact
    assert sec["evaluate"]["reloaded"]["params"] > 0
    # targets are for GPUs: on CPU they are reported, not judged
    mfu = sec["throughput"]["checks"][0]
    assert mfu["met"] is None and sec["sharing"]["checks"][0]["met"] is None
    assert "overall: PASS (CPU smoke run: the GPU figures are still unmeasured)" in res.stdout
    assert "2 rungs sharing the device / 1 alone" in res.stdout
