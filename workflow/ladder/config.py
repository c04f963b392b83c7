"""A study: load and validate its config (ladder.plan expands it into rungs).

The schema (workflow/schemas/config.schema.yaml) is the single source of keys and
defaults; this module fills the defaults, turns schema errors into one-line
messages naming the key, and adds the checks a schema cannot express.
It imports neither torch nor snakemake: the Snakefile calls it at parse time.
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ladder.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
MIN_BPE_VOCAB = 258  # 256 byte tokens + <|endoftext|> + <|mask|>


def load_schema() -> dict:
    if not SCHEMA_PATH.exists():
        raise ConfigError(f"schema not found at {SCHEMA_PATH}; install with `pip install -e .`")
    return yaml.safe_load(SCHEMA_PATH.read_text())


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
    if err.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        rel = {
            "minimum": ">=",
            "exclusiveMinimum": ">",
            "maximum": "<=",
            "exclusiveMaximum": "<",
        }[err.validator]
        return f"{key}: {err.instance!r} is out of range; it must be {rel} {err.validator_value}"
    return f"{key}: {err.message}"


_SCI = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
NUMERIC_SECTIONS = ("model", "ladder", "train", "eval", "fit", "report", "cluster")


def _numbers(value):
    """YAML 1.1 reads `1e13` (no dot) as a string; numbers are what users mean here."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str) and _SCI.match(value):
        return float(value)
    return value


def load_config(source: str | os.PathLike | dict[str, Any]) -> dict[str, Any]:
    """A study config (a YAML path or a dict), validated, with every default filled."""
    if isinstance(source, dict):
        cfg = json.loads(json.dumps(source))
    else:
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        cfg = yaml.safe_load(path.read_text()) or {}
        if not isinstance(cfg, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys")
    for section in NUMERIC_SECTIONS:
        if isinstance(cfg.get(section), dict):
            cfg[section] = _numbers(cfg[section])
    validator = _with_defaults(jsonschema.Draft202012Validator)(load_schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_message(errors[0]))
    check_semantics(cfg)
    return cfg


def check_semantics(cfg: dict[str, Any]) -> None:
    """Checks a JSON schema cannot express; each names the key and what is allowed."""
    data, tok, model, lad = cfg["data"], cfg["tokenizer"], cfg["model"], cfg["ladder"]
    if data["source"] == "files":
        if not data["paths"]:
            raise ConfigError("data.paths: source 'files' needs at least one glob pattern")
        for pattern in data["paths"]:
            if not glob.glob(os.path.expanduser(pattern), recursive=True):
                raise ConfigError(f"data.paths: '{pattern}' matches no file")
    if data["source"] == "hf" and not data["hf"]["name"]:
        raise ConfigError(
            "data.hf.name: source 'hf' needs a dataset name or a local path "
            "(e.g. roneneldan/TinyStories)"
        )
    if tok["kind"] == "bpe" and tok["vocab_size"] < MIN_BPE_VOCAB:
        raise ConfigError(
            f"tokenizer.vocab_size: {tok['vocab_size']} is too small; a byte-level BPE "
            f"needs at least {MIN_BPE_VOCAB} (256 byte tokens + <|endoftext|> + <|mask|>)"
        )
    if tok["kind"] == "pretrained" and not tok["name"]:
        raise ConfigError("tokenizer.name: kind 'pretrained' needs a tokenizer name or path")
    if tok["vocab_size"] > 2**32 - 1 or tok["vocab_size"] < 2:
        raise ConfigError(f"tokenizer.vocab_size: {tok['vocab_size']} must be in [2, 2^32)")
    if model["family"] == "bert" and model["tie_embeddings"] is False:
        raise ConfigError("model.tie_embeddings: false is not supported for bert (HF ties it)")
    if model["family"] != "llama" and model["kv_groups"] != 1:
        raise ConfigError("model.kv_groups: grouped-query attention needs family 'llama'")
    if data["source"] == "synthetic" and tok["kind"] != "symbols":
        raise ConfigError(
            "tokenizer.kind: source 'synthetic' needs kind 'symbols' (one token per symbol, "
            "so the known entropy is per token)"
        )
    if tok["kind"] == "symbols":
        if data["source"] != "synthetic":
            raise ConfigError("tokenizer.kind: 'symbols' needs data.source 'synthetic'")
        need = data["synthetic"]["n_symbols"] + 2
        if tok["vocab_size"] < need:
            raise ConfigError(
                f"tokenizer.vocab_size: {tok['vocab_size']} is too small for "
                f"{data['synthetic']['n_symbols']} symbols; it must be >= {need} "
                "(symbols + <|endoftext|> + <|mask|>)"
            )
    if lad["design"] == "isoflop":
        if not lad["budgets_flops"]:
            raise ConfigError("ladder.budgets_flops: design 'isoflop' needs compute budgets")
    else:
        if not lad["widths"] and not lad["shapes"] and not lad["params"]:
            raise ConfigError(
                "ladder: give ladder.widths, ladder.shapes or ladder.params (at least one rung)"
            )
        if lad["tokens"] is None and lad["tokens_per_param"] is None:
            raise ConfigError("ladder: give ladder.tokens or ladder.tokens_per_param")
        if lad["budgets_flops"]:
            raise ConfigError("ladder.budgets_flops: only used by design 'isoflop'")
    tr = cfg["train"]
    if tr["batch_tokens"] % model["seq_len"]:
        raise ConfigError(
            f"train.batch_tokens: {tr['batch_tokens']} must be a multiple of "
            f"model.seq_len ({model['seq_len']})"
        )
