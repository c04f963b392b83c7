"""The run store: every trained rung kept under a key of what made it, so that no study
trains the same run twice.

    ladder store run --rung-json @R --tokens-dir T --tokenizer-dir K --eval-tokens N
                     --out-dir D [--init-state S] -- <the training command>
    ladder store key  (the same options, no command): print the run's key and its inputs
    ladder store list [--store DIR]: every entry, one line each

A run's key is a SHA-256 of everything that determines its weights and its learning curve
(`key_inputs`): the rung's spec less the fields that only label or pace it (NOT_IN_KEY),
the tokens the training job passes on (eval tokens, a WSD branch's initial state), the
content hashes of the tokenizer and of the token shards, and the version of the training
code (the source of TRAINING_CODE, comments and formatting aside, and the libraries'
versions). Two studies that plan the same run on the same data get the same key, whatever
they are called; a changed seed, lr, data file, tokenizer or training code gives another.

The store (docs/design.md, "The run store"):

    <store>/entries/<key>/        manifest.json, model/, train_log.csv, train.json, and
                                  checkpoints/ when the run kept any (read-only)
    <store>/tmp/                  entries being written (renamed into entries/ when complete)
    <store>/locks/<key>.lock      held while a job trains the run

An entry appears by one rename of a complete folder, so it is there whole or not at all: a
job killed while training (or while copying) leaves none. `ladder store run` takes the
key's lock before training, so two studies started at once that need the same run train it
once: the second waits, then copies the first one's entry. The lock is a file created with
O_CREAT|O_EXCL (atomic on local disks and NFSv3+, unlike flock(2) on some cluster
filesystems) that its holder touches every HEARTBEAT_S; a lock whose holder died (its pid
gone on this host, or no heartbeat for STALE_S) is broken. The lock saves work, it does not
guard correctness: should two jobs ever train the same run, the first rename wins and the
second's copy is dropped.

Where the store is (`resolve`): store.dir in the study config, else $LADDER_STORE, else
results/store; store.enabled false (or LADDER_STORE=off) turns it off. common.smk exports
the resolved path as LADDER_STORE, so the location is no rule param (moving the store
retrains nothing). Imports no torch: a job that reuses a run starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from ladder.artifacts import (
    KEPT_DIR,
    MODEL_DIR,
    STORE_JSON,
    TOKENIZER_SAMPLE_JSON,
    TOKENS_META_JSON,
    TRAIN_JSON,
    TRAIN_LOG_CSV,
    write_json,
)
from ladder.estimates import on_gpu
from ladder.rung import Rung

ENV = "LADDER_STORE"
OFF = "off"
DEFAULT_DIR = "results/store"
MANIFEST_JSON = "manifest.json"
# a run's outputs, in the order they are put in place (train.json last: "trained")
OUTPUTS = (MODEL_DIR, TRAIN_LOG_CSV, TRAIN_JSON)
# and, first, the models a rung keeps at its keep_steps (tasks.checkpoints), where it has
# them: keep_steps is in the key, so an entry holds them exactly when its run kept any
OPTIONAL = (KEPT_DIR,)
# Rung fields that change no weight: its name, its design's labels, how often it logs
# and checkpoints (resume is exact), and over how many nodes its gpus are spread (as
# cluster.gpus_per_node, which no rung holds). Everything else is in the key,
# conservatively (threads and gpus too: they can change the order of floating-point sums).
NOT_IN_KEY = ("id", "design", "budget_flops", "log_every_s", "checkpoint_minutes", "nodes")
# the modules whose code decides a run's weights and curve (ladder.train's imports that
# compute); their AST is hashed, so a comment or docstring-free reformat retrains nothing
TRAINING_CODE = (
    "train.py",
    "model.py",
    "mup.py",
    "loss.py",
    "shards.py",
    "runtime.py",
    "rung.py",
    "schedule.py",
)
LIBRARIES = ("torch", "transformers", "numpy")
HEARTBEAT_S = 30.0
STALE_S = 300.0  # a lock untouched this long lost its holder (another host, a lost node)
POLL_S = 0.5


class StoreError(ValueError):
    """A store that cannot be used (not writable, a damaged entry); names the path."""


# ----------------------------------------------------------------------------- where


def resolve(configured: str | None = None, enabled: bool = True) -> Path | None:
    """The store folder (absolute), or None when it is off: store.dir, else $LADDER_STORE,
    else results/store (relative to the working directory)."""
    if not enabled:
        return None
    chosen = configured or os.environ.get(ENV) or DEFAULT_DIR
    if chosen == OFF:
        return None
    return Path(chosen).expanduser().absolute()


# ----------------------------------------------------------------------------- the key


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@functools.cache
def code_version() -> dict[str, Any]:
    """The training code's version: each module's AST hash (comments and formatting do not
    count), the libraries' versions and Python's (ast.dump's form follows Python's)."""
    here = Path(__file__).parent
    files = {
        name: hashlib.sha256(ast.dump(ast.parse((here / name).read_text())).encode()).hexdigest()
        for name in TRAINING_CODE
    }
    libs = {}
    for lib in LIBRARIES:
        try:
            libs[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            libs[lib] = None
    python = ".".join(map(str, sys.version_info[:2]))
    return {"files": files, "libraries": libs, "python": python}


def tokenizer_hash(tokenizer_dir: str | os.PathLike) -> str:
    """A hash of the tokenizer's files (names and contents), less the note of what it was
    trained on (ladder_tokenizer.json: paths and counts, not the tokenizer)."""
    root = Path(tokenizer_dir)
    if not root.is_dir():
        raise StoreError(f"{root}: the tokenizer folder does not exist")
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name != TOKENIZER_SAMPLE_JSON:
            h.update(f"{path.relative_to(root)}:{_sha256_file(path)}\n".encode())
    return h.hexdigest()


def tokens_hash(tokens_dir: str | os.PathLike) -> str:
    """A hash of the token shards' contents: the sha256 meta.json records for each shard
    (`ladder encode` hashes them as it writes), else the file's own hash (older shards, and
    the one-file-per-split layout), with meta.json's dtype and ids."""
    root = Path(tokens_dir)
    meta_path = root / TOKENS_META_JSON
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"{meta_path}: cannot read the tokens' meta.json ({e})") from e
    h = hashlib.sha256()
    ids = {k: meta.get(k) for k in ("dtype", "vocab_size", "eos_id", "mask_id")}
    h.update(json.dumps(ids, sort_keys=True).encode())
    for split in ("train", "val"):
        shards = meta.get(split, {}).get("shards") or [{"file": f"{split}.bin"}]
        for shard in shards:
            digest = shard.get("sha256") or _sha256_file(root / shard["file"])
            h.update(f"{split}/{shard['file']}:{digest}\n".encode())
    return h.hexdigest()


def spec_of(rung: Rung) -> dict[str, Any]:
    """The rung's fields that decide its weights (all but NOT_IN_KEY)."""
    return {f.name: getattr(rung, f.name) for f in fields(rung) if f.name not in NOT_IN_KEY}


def key_inputs(
    rung: Rung,
    tokens_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    eval_tokens: int | None,
    init_state: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Everything the key hashes, as plain data (the manifest keeps it, so a key can be
    explained: `ladder store key`)."""
    init = _sha256_file(Path(init_state)) if init_state else None
    return _inputs(rung, eval_tokens, init, tokenizer_hash(tokenizer_dir), tokens_hash(tokens_dir))


def _inputs(rung: Rung, eval_tokens, init_sha, tokenizer_sha, tokens_sha) -> dict[str, Any]:
    return {
        "spec": spec_of(rung),
        "eval_tokens": eval_tokens,
        "init_state_sha256": init_sha,
        "tokenizer_sha256": tokenizer_sha,
        "tokens_sha256": tokens_sha,
        "code": code_version(),
    }


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def run_key(inputs: dict[str, Any]) -> str:
    """The key: 32 hex digits (128 bits) of the inputs' SHA-256."""
    return digest(inputs)[:32]


def recipe_key(rung: Rung, eval_tokens: int | None) -> str:
    """The key less the data (spec, eval tokens, code): what `ladder plan` can match before
    a study has built its tokens; the job itself reuses a run only on the full key."""
    return digest({"spec": spec_of(rung), "eval_tokens": eval_tokens, "code": code_version()})[:32]


# ----------------------------------------------------------------------------- the store


def _outputs(root: Path) -> list[str]:
    """The run outputs `root` holds, in the order they are put in place."""
    return [name for name in OPTIONAL if (root / name).exists()] + list(OUTPUTS)


def _copy_outputs(src: Path, dst: Path) -> None:
    """Copy a run's outputs from `src` into the (existing) folder `dst`. Plain copies with
    fresh modification times: a hard link would share its mtime with every other study's
    copy, and Snakemake reads an output's mtime to decide what is out of date."""
    for name in _outputs(src):
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, copy_function=shutil.copyfile)
        else:
            shutil.copyfile(src / name, dst / name)


def _read_only(root: Path) -> None:
    """Files of an entry become read-only: a study's copy can be edited, the store's not."""
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class Store:
    """One store folder: entries by key, their manifests, the locks of runs in training."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        return self.root / "entries" / key

    def has(self, key: str) -> bool:
        return (self.entry(key) / MANIFEST_JSON).is_file()

    def manifest(self, key: str) -> dict[str, Any]:
        return json.loads((self.entry(key) / MANIFEST_JSON).read_text())

    def manifests(self) -> list[dict[str, Any]]:
        """Every entry's manifest, oldest first."""
        found = []
        for path in (self.root / "entries").glob(f"*/{MANIFEST_JSON}"):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return sorted(found, key=lambda m: m.get("finished_utc", ""))

    def put(self, key: str, inputs: dict[str, Any], run_dir: Path, rung: Rung) -> bool:
        """Copy a finished run into the store as entry `key`; False if another job put the
        same key first (its entry stays: the two are the same run)."""
        tmp = self.root / "tmp" / f"{key}.{socket.gethostname()}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _copy_outputs(run_dir, tmp)
            write_json(tmp / MANIFEST_JSON, manifest(key, inputs, run_dir, rung))
            _read_only(tmp)
            self.entry(key).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, self.entry(key))  # one rename: the entry is whole or absent
            except OSError:
                if self.has(key):
                    return False
                raise
            return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def fetch(self, key: str, run_dir: Path) -> dict[str, Any]:
        """Copy entry `key`'s outputs into `run_dir`, each renamed into place from a complete
        copy (train.json last); return its manifest."""
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / f".store-fetch.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _copy_outputs(self.entry(key), tmp)
            for path in tmp.rglob("*"):  # the study's copy is its own: writable again
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
            for name in _outputs(tmp):
                target = run_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(tmp / name, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.manifest(key)

    @contextlib.contextmanager
    def lock(self, key: str, say=print) -> Iterator[None]:
        """Hold the key's lock (waiting for another holder), heartbeat it, release it."""
        path = self.root / "locks" / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        waited = False
        while not _try_create(path, token):
            holder = _holder(path)  # None: just created, or its creator died before writing
            if _stale(path, holder or ""):
                _break(path)
                continue
            if not waited:
                say(f"ladder store: waiting for {holder or 'another job'}, training the same run")
                waited = True
            time.sleep(POLL_S)
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(path, stop), daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            if _holder(path) == token:
                path.unlink(missing_ok=True)


def _try_create(path: Path, token: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return True


def _holder(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _stale(path: Path, holder: str) -> bool:
    """Whether a lock's holder is gone: its pid is dead on this host, or its heartbeat
    stopped STALE_S ago (the only sign a holder on another host can give)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return True
    try:
        return time.time() - path.stat().st_mtime > STALE_S
    except OSError:
        return False


def _break(path: Path) -> None:
    """Remove a stale lock by renaming it away first (only one breaker's rename succeeds)."""
    gone = path.with_name(f".{path.name}.stale.{uuid.uuid4().hex}")
    with contextlib.suppress(OSError):
        os.rename(path, gone)
        gone.unlink()


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):
            os.utime(path)


def manifest(key: str, inputs: dict[str, Any], run_dir: Path, rung: Rung) -> dict[str, Any]:
    """An entry's record: its key, what the key hashes, where it was trained, when."""
    train = json.loads((run_dir / TRAIN_JSON).read_text())
    return {
        "key": key,
        "recipe": digest({k: inputs[k] for k in ("spec", "eval_tokens", "code")})[:32],
        "inputs": inputs,
        "rung": rung.id,
        "study": run_dir.absolute().parent.parent.name,  # results/<study>/runs/<rung>
        "trained_in": str(run_dir.absolute()),
        "host": socket.gethostname(),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": _outputs(run_dir),
        "wall_s": train.get("wall_s"),
        "gpu_hours": gpu_hours_of(train, rung),
        "diverged": bool(train.get("diverged")),
    }


def gpu_hours_of(train: dict[str, Any], rung: Rung) -> float:
    """GPU-hours as runs.csv counts them: wall time × GPUs, none for a CPU run."""
    return (train.get("wall_s") or 0) * rung.gpus / 3600 if on_gpu(train) else 0.0


# ----------------------------------------------------------------------------- the plan


def planned_reuse(
    runs: list[Rung], results: str | os.PathLike, eval_tokens: int, root: Path
) -> list[dict[str, Any]]:
    """The study's runs that the store holds: {rung, manifest, exact}. With the study's
    tokens and tokenizer built, a run is listed when its full key is stored (exact: its job
    will copy it); before, when a stored run has its spec and training code (exact False:
    reused if the data hash the same, which each job checks). A run's final spec
    (runs/<id>/rung.json, a tuned lr) is used where written. WSD branches (keyed by their
    stable state, known only in training) are never listed."""
    results, store = Path(results), Store(root)
    tokens, tokenizer = results / "tokens", results / "tokenizer"
    data = None
    if (tokens / TOKENS_META_JSON).exists() and tokenizer.is_dir():
        data = (tokenizer_hash(tokenizer), tokens_hash(tokens))
    recipes = {m.get("recipe"): m for m in store.manifests()}
    found = []
    for planned in runs:
        if planned.design == "wsd":
            continue
        try:
            rung = Rung.from_arg(f"@{results / 'runs' / planned.id / 'rung.json'}")
        except (OSError, ValueError, TypeError):
            rung = planned
        if data is not None:
            key = run_key(_inputs(rung, eval_tokens, None, *data))
            if store.has(key):
                found.append({"rung": planned, "manifest": store.manifest(key), "exact": True})
        elif (m := recipes.get(recipe_key(rung, eval_tokens))) is not None:
            found.append({"rung": planned, "manifest": m, "exact": False})
    return found


def reuse_summary(found: list[dict[str, Any]], n_runs: int, root: Path, est) -> str:
    """`ladder plan`'s lines on the runs the store holds; `est(rung)`: its estimated GPU-h."""
    if not found:
        return f"run store {root}: none of the {n_runs} runs is stored; all will train"
    saved = sum(f["manifest"].get("gpu_hours") or 0 for f in found)
    wall_h = sum(f["manifest"].get("wall_s") or 0 for f in found) / 3600
    est_h = sum(est(f["rung"]) for f in found)
    exact = all(f["exact"] for f in found)
    how = "reused, not trained" if exact else (
        "same spec and training code; reused if this study's tokens hash the same, which "
        "each job checks before training"
    )  # fmt: skip
    lines = [
        f"run store {root}: {len(found)} of {n_runs} runs stored ({how}): {saved:.4g} "
        f"GPU-hours saved as measured ({wall_h:.3g} h of training; est. {est_h:.4g} GPU-h)"
    ]
    for f in found:
        m = f["manifest"]
        lines.append(
            f"  reused {f['rung'].id:<20} trained by study {m['study']} ({m['finished_utc']}, "
            f"{m.get('gpu_hours') or 0:.3g} GPU-h), key {m['key'][:12]}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- one job


def source_record(source: str, key: str | None, found: dict[str, Any] | None = None) -> dict:
    """store.json: `trained` here, or `reused` (with the study and run that trained it)."""
    record: dict[str, Any] = {"source": source, "key": key}
    if found is not None:
        keep = ("study", "rung", "trained_in", "finished_utc", "wall_s", "gpu_hours")
        record |= {f"from_{k}" if k != "gpu_hours" else "gpu_hours_saved": found.get(k)
                   for k in keep}  # fmt: skip
    return record


def train_or_reuse(args: argparse.Namespace, command: list[str]) -> int:
    """The train job: copy the run from the store if its key is there, else train it (under
    the key's lock) and put it in; either way write store.json. Returns the exit code."""
    run_dir = Path(args.out_dir)
    rung = Rung.from_arg(args.rung_json)
    root = resolve()
    (run_dir / STORE_JSON).unlink(missing_ok=True)
    if root is None:
        return _train_unstored(command, run_dir, None)
    inputs = key_inputs(rung, args.tokens_dir, args.tokenizer_dir, args.eval_tokens,
                        args.init_state)  # fmt: skip
    key, store = run_key(inputs), Store(root)
    print(f"ladder store: {rung.id}: key {key} in {root}", flush=True)
    if not store.has(key) and not _writable(root):
        print(f"ladder store: warning: {root} is not writable; training without the store")
        return _train_unstored(command, run_dir, key)
    if not store.has(key):
        with store.lock(key, say=lambda s: print(s, flush=True)):
            if not store.has(key):  # trained meanwhile by the job we waited for?
                rc = _train(command)
                if rc != 0:
                    return rc  # no entry: a failed or killed run is not a result
                _put(store, key, inputs, run_dir, rung)
                write_json(run_dir / STORE_JSON, source_record("trained", key))
                return 0
    found = store.fetch(key, run_dir)
    write_json(run_dir / STORE_JSON, source_record("reused", key, found))
    print(
        f"ladder store: reused {rung.id} from the store (trained by study {found['study']}, "
        f"{found['finished_utc']}; {found['wall_s']} s, {found['gpu_hours']:.4g} GPU-hours "
        "saved): nothing trained",
        flush=True,
    )
    return 0


def _train_unstored(command: list[str], run_dir: Path, key: str | None) -> int:
    """Train without the store (it is off, or not writable here); store.json: trained."""
    rc = _train(command)
    if rc == 0:
        write_json(run_dir / STORE_JSON, source_record("trained", key))
    return rc


def _writable(root: Path) -> bool:
    """Whether this job can lock and put runs in the store (a shared one may be read-only
    to it: then it trains as if there were no store, rather than fail)."""
    try:
        (root / "locks").mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(root / "locks", os.W_OK)


def _put(store: Store, key: str, inputs: dict, run_dir: Path, rung: Rung) -> None:
    try:
        added = store.put(key, inputs, run_dir, rung)
    except OSError as e:  # the run is trained and in the study; only the reuse is lost
        print(f"ladder store: warning: could not store {rung.id} in {store.root}: {e}")
        return
    note = "stored" if added else "already stored by another job (kept that one)"
    print(f"ladder store: {rung.id}: {note} as {store.entry(key)}", flush=True)


def _train(command: list[str]) -> int:
    """Run the training command, passing on the signals a scheduler stops a job with (the
    trainer checkpoints on them); its exit code."""
    if not command:
        raise StoreError("no training command given after --")
    child = subprocess.Popen(command)
    forward = (signal.SIGTERM, signal.SIGUSR1)
    previous = {s: signal.signal(s, lambda signum, _: child.send_signal(signum)) for s in forward}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# ----------------------------------------------------------------------------- command


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ladder store", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    for name, text in (
        ("run", "reuse the run if its key is stored, else run the command and store it"),
        ("key", "print a run's key and what it hashes"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--rung-json", required=True, help="the rung's spec (JSON, or @file)")
        p.add_argument("--tokens-dir", required=True, help="holds meta.json and the shards")
        p.add_argument("--tokenizer-dir", required=True)
        p.add_argument("--eval-tokens", type=int, help="as passed to ladder train")
        p.add_argument("--init-state", help="a WSD branch's stable state, as for ladder train")
        p.add_argument("--out-dir", required=name == "run", help="the run's folder")
        if name == "run":
            p.add_argument("command", nargs=argparse.REMAINDER, help="-- then ladder train ...")
    ls = sub.add_parser("list", help="every stored run, one line each")
    ls.add_argument("--store", help=f"the store folder (default: ${ENV}, else {DEFAULT_DIR})")
    return ap


def list_entries(root: Path) -> str:
    lines = [f"store {root}"]
    for m in Store(root).manifests():
        lines.append(
            f"{m['key']}  {m['rung']:<18} study {m['study']:<14} {m['finished_utc']}  "
            f"{m['wall_s']} s  {m['gpu_hours']:.4g} GPU-h"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ladder.errors import failed

    args = _parser().parse_args(argv)
    try:
        if args.action == "list":
            root = resolve(args.store)
            print(list_entries(root) if root else "ladder store: the store is off")
            return 0
        if args.action == "key":
            rung = Rung.from_arg(args.rung_json)
            inputs = key_inputs(rung, args.tokens_dir, args.tokenizer_dir, args.eval_tokens,
                                args.init_state)  # fmt: skip
            print(json.dumps({"key": run_key(inputs), "inputs": inputs}, indent=2))
            return 0
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return train_or_reuse(args, command)
    except (StoreError, OSError) as e:
        return failed("ladder store", e)
