"""A study: its config as typed, frozen objects, loaded and validated once.

`load_config(path or dict) -> Study`: the schema (workflow/schemas/config.schema.yaml)
is the single source of keys, allowed values and defaults; this module fills the
defaults, turns schema errors into one-line messages naming the key, adds the checks a
schema cannot express, and builds one frozen dataclass per section (litgpt style: one
dataclass per concept), which the rest of the code reads by attribute. The dataclasses
carry no defaults of their own, and tests/test_config.py checks that their fields are
the schema's keys, so the two cannot drift. Lists become tuples; mappings the schema
leaves open (ladder.shapes items, ladder.overrides, report.extrapolate_to) stay dicts.
`Study.to_dict()` gives the plain data back (rule params, study.yaml); ladder.plan
expands a study into rungs.
It imports neither torch nor snakemake: the Snakefile calls it at parse time.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import importlib.util
import json
import os
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ladder.errors import ConfigError
from ladder.model import MUP_FAMILIES

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
MIN_BPE_VOCAB = 258  # 256 byte tokens + <|endoftext|> + <|mask|>


# ----------------------------------------------------------------------------- sections


class Section:
    """What every config dataclass shares: plain data back out (lists, dicts)."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


@dataclass(frozen=True)
class HFConfig(Section):
    """data.hf: a dataset through `datasets.load_dataset` (or a local folder)."""

    name: str | None
    config: str | None
    split: str
    revision: str | None


@dataclass(frozen=True)
class SyntheticConfig(Section):
    """data.synthetic: a first-order Markov source with Zipfian transitions."""

    n_symbols: int
    zipf_exponent: float
    train_tokens: int
    val_tokens: int


@dataclass(frozen=True)
class DataConfig(Section):
    """data: where the corpus comes from and how it is split."""

    source: str  # stdlib | files | hf | synthetic
    paths: tuple[str, ...]
    hf: HFConfig
    text_field: str
    val_fraction: float
    max_bytes: int | None
    min_doc_bytes: int
    shard_bytes: int  # text per corpus shard (and so per token shard)
    synthetic: SyntheticConfig


@dataclass(frozen=True)
class TokenizerConfig(Section):
    """tokenizer: a trained byte-level BPE, a named one, or one token per symbol."""

    kind: str  # bpe | pretrained | symbols
    vocab_size: int
    name: str | None
    min_frequency: int
    train_bytes: int  # bpe: train on at most this much of the train split's text


@dataclass(frozen=True)
class ModelConfig(Section):
    """model: the family and what every rung's shape shares."""

    family: str  # llama | gpt2 | bert
    seq_len: int
    head_dim: int
    aspect_ratio: float
    kv_groups: int
    tie_embeddings: bool | None
    parametrization: str  # sp | mup (ladder.mup)
    mup_base_width: int | None  # None: the narrowest rung's width (ladder.plan)


@dataclass(frozen=True)
class SweepConfig(Section):
    """ladder.sweep: per-size tuning runs before the ladder (empty = no sweep)."""

    lr: tuple[float, ...]
    batch_tokens: tuple[int, ...]
    tokens_frac: float


@dataclass(frozen=True)
class LadderConfig(Section):
    """ladder: the design, its sizes and token or compute budgets."""

    design: str  # grid | isoflop | wsd
    params: tuple[float, ...]
    widths: tuple[int, ...]
    shapes: tuple[dict[str, int], ...]  # n_layer, d_model[, n_head, d_ff]
    tokens: int | tuple[int, ...] | None
    tokens_per_param: float | tuple[float, ...] | None
    budgets_flops: tuple[float, ...]
    isoflop_sizes: int
    isoflop_span: float
    optimal_tokens_per_param: float
    sweep: SweepConfig
    overrides: dict[str, dict[str, Any]]  # rung id -> training hyperparameters


@dataclass(frozen=True)
class TrainConfig(Section):
    """train: the hyperparameters every rung starts from."""

    lr: float
    hparam_rule: str  # none | deepseek
    min_lr_frac: float
    warmup_frac: float
    schedule: str  # cosine | constant | wsd
    decay_frac: float
    batch_tokens: int
    micro_batch: int
    weight_decay: float
    beta1: float
    beta2: float
    grad_clip: float
    device: str
    precision: str  # auto | fp32 | bf16 | fp16
    compile: str | bool  # auto | true | false
    threads: int
    gpus: float
    nodes: int | None  # None: one node, or as many as cluster.gpus_per_node needs
    log_every_s: float
    checkpoint_minutes: float
    eval_points: int
    mlm_probability: float


@dataclass(frozen=True)
class EvalConfig(Section):
    """eval: the held-out slice every rung is evaluated on."""

    max_tokens: int
    batch_size: int


@dataclass(frozen=True)
class FitConfig(Section):
    """fit: the scaling-law fits."""

    bootstrap: int
    task_targets: tuple[tuple[float, float], ...]  # (N, D): each task's accuracy predicted
    task_step2: str  # sigmoid (Bhagia et al. 2024) | exp (Gadre et al. 2024)


@dataclass(frozen=True)
class TaskSpec(Section):
    """tasks.list[i]: one multiple-choice task, from exactly one of a local JSONL file, an
    lm-eval task, or a task built from the study's val split (ladder.tasks)."""

    name: str
    path: str | None
    lm_eval: str | None
    builtin: str | None  # next_line
    examples: int | None
    context_lines: int
    chance: float | None

    @property
    def kind(self) -> str:
        """path | lm_eval | builtin: where the task's examples come from."""
        return "path" if self.path else "lm_eval" if self.lm_eval else "builtin"


@dataclass(frozen=True)
class TasksConfig(Section):
    """tasks: what every rung is scored on, and how (ladder.tasks, ladder.scoring)."""

    batch_size: int
    checkpoints: tuple[float, ...]  # fractions of each rung's steps also scored (intermediate)
    list: tuple[TaskSpec, ...]


@dataclass(frozen=True)
class ReportConfig(Section):
    """report: the target the report extrapolates to ({params|tokens|flops: value})."""

    extrapolate_to: dict[str, float] | None


@dataclass(frozen=True)
class ClusterConfig(Section):
    """cluster: what training and evaluation jobs ask a scheduler for."""

    flops_per_s: float | None
    runtime_factor: float
    min_runtime_min: int
    max_runtime_min: int | None
    default_runtime_min: int
    mem_mb: int
    cpus_per_task: int | None
    data_cpus: int  # the encode job's worker pool
    checkpoint_warning_s: int
    gpus_per_node: int | None  # a rung with more GPUs runs on several nodes
    rdzv_port: int  # torchrun's c10d rendezvous on a multi-node rung's first node


@dataclass(frozen=True)
class TrackingConfig(Section):
    """tracking: where every rung's curves and the fitted laws are logged (ladder.tracking)."""

    tools: tuple[str, ...]  # tensorboard, wandb
    wandb_project: str
    wandb_entity: str | None
    wandb_mode: str  # offline | online


@dataclass(frozen=True)
class StoreConfig(Section):
    """store: where trained runs are kept for reuse across studies (ladder.store)."""

    enabled: bool
    dir: str | None  # None: $LADDER_STORE, else results/store


@dataclass(frozen=True)
class Study(Section):
    """A validated study: its name, seed and one object per config section."""

    study: str
    seed: int
    data: DataConfig
    tokenizer: TokenizerConfig
    model: ModelConfig
    ladder: LadderConfig
    train: TrainConfig
    eval: EvalConfig
    fit: FitConfig
    tasks: TasksConfig
    report: ReportConfig
    tracking: TrackingConfig
    store: StoreConfig
    cluster: ClusterConfig


def _plain(value):
    """asdict's output as JSON/YAML data: tuples back to lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _frozen(value):
    """Lists (at any depth, also inside dicts) as tuples; dicts stay dicts."""
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls: type, value: dict[str, Any]):
    """A dataclass from its validated, defaults-filled dict (no checks of its own)."""
    types = _field_types(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        kind, args = types[f.name], typing.get_args(types[f.name])
        if dataclasses.is_dataclass(kind):
            kwargs[f.name] = build(kind, value[f.name])
        elif typing.get_origin(kind) is tuple and args and dataclasses.is_dataclass(args[0]):
            kwargs[f.name] = tuple(build(args[0], item) for item in value[f.name])  # tasks.list
        else:
            kwargs[f.name] = _frozen(value[f.name])
    return cls(**kwargs)


# ----------------------------------------------------------------------------- validation


@functools.cache
def _schema_text() -> str:
    if not SCHEMA_PATH.exists():
        raise ConfigError(f"schema not found at {SCHEMA_PATH}; install with `pip install -e .`")
    return SCHEMA_PATH.read_text()


# train keys a rung's override may not set (they pick how rungs are derived, not a value)
NOT_OVERRIDABLE = ("hparam_rule",)


def load_schema() -> dict:
    """The schema, with ladder.overrides' values checked like the train section: each
    rung's override is a mapping of train keys (less NOT_OVERRIDABLE) whose values obey
    the same types and ranges, with no defaults (an override sets only what it names)."""
    schema = yaml.safe_load(_schema_text())
    train = schema["properties"]["train"]["properties"]
    override = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            key: {k: v for k, v in prop.items() if k != "default"}
            for key, prop in train.items()
            if key not in NOT_OVERRIDABLE
        },
    }
    schema["properties"]["ladder"]["properties"]["overrides"]["additionalProperties"] = override
    return schema


def _with_defaults(validator_cls):
    """A validator that fills `default`s while it walks `properties` (jsonschema FAQ)."""
    validate_props = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = json.loads(json.dumps(sub["default"]))  # fresh copy
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _message(err: jsonschema.ValidationError) -> str:
    key = _key(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(allowed))
        where = f"'{key}'" if err.absolute_path else "the top level"
        return f"unknown key {unknown} in {where}; allowed keys: {', '.join(allowed)}"
    if err.validator == "enum":
        allowed = ", ".join(str(v) for v in err.validator_value)
        return f"{key}: {err.instance!r} is not allowed; allowed values: {allowed}"
    if err.validator == "type":
        kinds = err.validator_value
        kinds = kinds if isinstance(kinds, list) else [kinds]
        allowed = " or ".join(_describe({"type": k}) for k in kinds)
        return f"{key}: {err.instance!r} is not allowed; it must be {allowed}"
    if err.validator == "pattern":
        allowed = err.schema.get("description", f"it must match {err.validator_value}")
        return f"{key}: {err.instance!r} is not allowed; {allowed}"
    if err.validator == "oneOf":
        allowed = " or ".join(_describe(s) for s in err.validator_value)
        return f"{key}: {err.instance!r} is not allowed; it must be {allowed}"
    if err.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        rel = {
            "minimum": ">=",
            "exclusiveMinimum": ">",
            "maximum": "<=",
            "exclusiveMaximum": "<",
        }[err.validator]
        return f"{key}: {err.instance!r} is out of range; it must be {rel} {err.validator_value}"
    return f"{key}: {err.message}"


def _describe(schema: dict, plural: bool = False) -> str:
    """A schema branch in words, for oneOf messages: 'null', 'an integer >= 1', ..."""
    kind = schema.get("type")
    if kind == "array" and "items" in schema:
        return "a list of " + _describe(schema["items"], plural=True)
    nouns = {
        "integer": ("an integer", "integers"),
        "number": ("a number", "numbers"),
        "string": ("a string", "strings"),
        "boolean": ("true or false", "booleans"),
        "object": ("a mapping of keys", "mappings"),
        "array": ("a list", "lists"),
    }
    words = nouns[kind][plural] if kind in nouns else str(kind)
    for rel, name in ((">=", "minimum"), (">", "exclusiveMinimum")):
        if name in schema:
            words += f" {rel} {schema[name]}"
    return words


_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _branches(schema: dict) -> list[dict]:
    return [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]


def _types(schema: dict) -> set[str]:
    out: set[str] = set()
    for branch in _branches(schema):
        kind = branch.get("type", [])
        out |= {kind} if isinstance(kind, str) else set(kind)
        for v in branch.get("enum", []):
            out.add({bool: "boolean", type(None): "null"}.get(type(v), "string"))
    return out


def _scalar(text: str, types: set[str]):
    """`text` as the type of `types` it reads as (boolean, null, number), else itself."""
    word = text.strip().lower()
    if "boolean" in types and word in ("true", "false"):
        return word == "true"
    if "null" in types and word in ("null", "~"):
        return None
    if "string" in types or not (types & {"integer", "number"}) or not _FLOAT.match(word):
        return text
    if "integer" in types and _INT.match(word):
        return int(word)
    number = float(word)
    if "number" in types:
        return number
    return int(number) if number.is_integer() else text


def _typed(value, schema: dict):
    """Values as the types the schema asks for, where they arrive as text: Snakemake's
    `--config train='{lr: 0.002}'` reads nested values as strings, and YAML 1.1 reads
    `1e13` (no dot) as a string; numbers are what users mean there. Anything that does not
    read as the asked type is left alone, for validation to report."""
    if isinstance(value, str):
        return _scalar(value, _types(schema))
    if isinstance(value, dict):
        props: dict[str, Any] = {}
        extra: dict | None = None
        for branch in _branches(schema):
            props |= branch.get("properties", {})
            if isinstance(branch.get("additionalProperties"), dict):
                extra = branch["additionalProperties"]
        out = {}
        for k, v in value.items():
            sub = props.get(k, extra)
            out[k] = _typed(v, sub) if sub is not None else v
        return out
    if isinstance(value, list):
        items = next((b["items"] for b in _branches(schema) if "items" in b), None)
        return [_typed(v, items) for v in value] if items is not None else value
    return value


def _validated(cfg: dict[str, Any], schema: dict) -> dict[str, Any]:
    """`cfg` (a fresh copy) with numbers given as text made numbers and every default
    filled; a schema error raises ConfigError with a one-line message naming the key."""
    cfg = _typed(cfg, schema)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_message(errors[0]))
    return cfg


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last
    silently, so a second `train:` block would replace the first)."""


def _unique_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                problem=f"key '{key}' given twice (lines {seen[key]} and {line}); "
                "YAML would keep only the last, so merge them into one",
                problem_mark=key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A study YAML file as a dict; a missing, unreadable, empty or invalid file (syntax, tab
    indentation, a key given twice, not a mapping) is a one-line ConfigError naming the
    file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
    try:
        cfg = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if "\t" in problem or "'\\t'" in problem:
            problem += " (YAML indents with spaces, not tabs)"
        raise ConfigError(f"config file {path}:{where}: invalid YAML: {problem}") from None
    if cfg is None:
        raise ConfigError(
            f"config file {path} is empty; a study needs at least `study: <name>` "
            "(config/config.yaml is the default study)"
        )
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys (study:, data:, ...), "
            f"not a {type(cfg).__name__}"
        )
    return cfg


def resolve(source: str | os.PathLike | dict[str, Any]) -> dict[str, Any]:
    """A study config (a YAML path or a dict) as plain data: validated, defaults filled."""
    if isinstance(source, dict):
        cfg = json.loads(json.dumps(source))
    else:
        cfg = read_config_file(source)
    return _validated(cfg, load_schema())


def load_config(source: str | os.PathLike | dict[str, Any]) -> Study:
    """A study config (a YAML path or a dict), validated, with every default filled."""
    study = build(Study, resolve(source))
    check_semantics(study)
    return study


# section name -> its dataclass ("data" -> DataConfig), for load_section
SECTIONS: dict[str, type] = {
    name: t for name, t in _field_types(Study).items() if dataclasses.is_dataclass(t)
}


def load_section(name: str, value: dict[str, Any]):
    """One section given on its own (e.g. the `data` JSON a rule passes to `ladder corpus`):
    validated by the schema with its defaults filled, as its dataclass. The checks that
    span sections are left to load_config."""
    if name not in SECTIONS:
        raise ConfigError(f"unknown section '{name}'; sections are: {', '.join(SECTIONS)}")
    schema = load_schema()
    one = {**schema, "properties": {name: schema["properties"][name]}, "required": [name]}
    return build(SECTIONS[name], _validated({name: json.loads(json.dumps(value))}, one)[name])


def matching_files(pattern: str) -> list[str]:
    """The files a data.paths pattern matches (`~` expanded, `**` recursive), sorted."""
    return sorted(
        f for f in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(f)
    )


def data_files(data: DataConfig) -> list[str]:
    """Every local file the corpus is read from (the corpus rule's inputs)."""
    if data.source != "files":
        return []
    return sorted({f for pattern in data.paths for f in matching_files(pattern)})


def check_semantics(study: Study) -> None:
    """Checks a JSON schema cannot express; each names the key and what is allowed."""
    _check_sources(study)
    model, lad = study.model, study.ladder
    if lad.design == "isoflop":
        if not lad.budgets_flops:
            raise ConfigError("ladder.budgets_flops: design 'isoflop' needs compute budgets")
    else:
        if not lad.widths and not lad.shapes and not lad.params:
            raise ConfigError(
                "ladder: give ladder.widths, ladder.shapes or ladder.params (at least one rung)"
            )
        if lad.tokens is None and lad.tokens_per_param is None:
            raise ConfigError("ladder: give ladder.tokens or ladder.tokens_per_param")
        if lad.budgets_flops:
            raise ConfigError("ladder.budgets_flops: only used by design 'isoflop'")
    window = model.seq_len + (model.family != "bert")  # causal windows predict the next token
    if study.eval.max_tokens < window:
        raise ConfigError(
            f"eval.max_tokens: {study.eval.max_tokens} is less than one evaluation window; "
            f"it must be >= {window} (model.seq_len {model.seq_len}"
            + (" + 1 for the next-token target)" if window > model.seq_len else ")")
        )
    _check_tasks(study.tasks)
    tr = study.train
    if tr.batch_tokens % model.seq_len:
        raise ConfigError(
            f"train.batch_tokens: {tr.batch_tokens} must be a multiple of "
            f"model.seq_len ({model.seq_len})"
        )


def _check_sources(study: Study) -> None:
    """The data, tokenizer and model-family part of check_semantics: sources that exist, a
    vocabulary that fits the tokenizer kind, options the family supports."""
    data, tok, model = study.data, study.tokenizer, study.model
    if data.source == "files":
        if not data.paths:
            raise ConfigError("data.paths: source 'files' needs at least one glob pattern")
        for pattern in data.paths:
            if not matching_files(pattern):
                raise ConfigError(f"data.paths: '{pattern}' matches no file")
    if data.source == "hf" and not data.hf.name:
        raise ConfigError(
            "data.hf.name: source 'hf' needs a dataset name or a local path "
            "(e.g. roneneldan/TinyStories)"
        )
    if tok.kind == "bpe" and tok.vocab_size < MIN_BPE_VOCAB:
        raise ConfigError(
            f"tokenizer.vocab_size: {tok.vocab_size} is too small; a byte-level BPE "
            f"needs at least {MIN_BPE_VOCAB} (256 byte tokens + <|endoftext|> + <|mask|>)"
        )
    if tok.kind == "pretrained" and not tok.name:
        raise ConfigError("tokenizer.name: kind 'pretrained' needs a tokenizer name or path")
    if tok.vocab_size > 2**32 - 1 or tok.vocab_size < 2:
        raise ConfigError(f"tokenizer.vocab_size: {tok.vocab_size} must be in [2, 2^32)")
    if model.family == "bert" and model.tie_embeddings is False:
        raise ConfigError("model.tie_embeddings: false is not supported for bert (HF ties it)")
    if model.parametrization == "mup" and model.family not in MUP_FAMILIES:
        raise ConfigError(
            f"model.parametrization: 'mup' is not supported for family '{model.family}'; "
            f"it supports {', '.join(MUP_FAMILIES)} (or use 'sp')"
        )
    if model.family != "llama" and model.kv_groups != 1:
        raise ConfigError("model.kv_groups: grouped-query attention needs family 'llama'")
    if data.source == "synthetic" and tok.kind != "symbols":
        raise ConfigError(
            "tokenizer.kind: source 'synthetic' needs kind 'symbols' (one token per symbol, "
            "so the known entropy is per token)"
        )
    if tok.kind == "symbols":
        if data.source != "synthetic":
            raise ConfigError("tokenizer.kind: 'symbols' needs data.source 'synthetic'")
        need = data.synthetic.n_symbols + 2
        if tok.vocab_size < need:
            raise ConfigError(
                f"tokenizer.vocab_size: {tok.vocab_size} is too small for "
                f"{data.synthetic.n_symbols} symbols; it must be >= {need} "
                "(symbols + <|endoftext|> + <|mask|>)"
            )


def _check_tasks(tasks: TasksConfig) -> None:
    """Each task names exactly one source, which exists; names are unique."""
    seen: set[str] = set()
    for i, task in enumerate(tasks.list):
        key = f"tasks.list[{i}]"
        given = [k for k in ("path", "lm_eval", "builtin") if getattr(task, k)]
        if len(given) != 1:
            raise ConfigError(
                f"{key} ({task.name}): give exactly one of path, lm_eval or builtin"
                + (f", not {' and '.join(given)}" if given else "")
            )
        if task.name in seen:
            raise ConfigError(f"{key}.name: '{task.name}' is given twice; task names are unique")
        seen.add(task.name)
        if task.path and not os.path.isfile(os.path.expanduser(task.path)):
            raise ConfigError(f"{key}.path: '{task.path}' is not a file")
        if task.lm_eval and importlib.util.find_spec("lm_eval") is None:
            raise ConfigError(
                f'{key}.lm_eval: lm-eval is not installed; run `pip install -e ".[tasks]"` '
                "(or give the task as a local JSONL file, docs/tasks.md)"
            )
