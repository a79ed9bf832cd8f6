"""Check a resolved config against configs/schema.yaml (the type and range of every key) and
against the combinations no model can run (n_heads not dividing embedding_size, ...).

Every failure is an InputError naming the key, the value and what is allowed: one line, exit 2.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

from schemas.errors import InputError

SCHEMA_PATH = Path(__file__).resolve().parent / "configs" / "schema.yaml"
# keys the trainer itself adds to a config (never read from a yaml)
DERIVED_KEYS = {"model", "init_from", "init_report"}
_SCHEMA: dict | None = None


def schema() -> dict:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
    return _SCHEMA


def _bad(key, value, expected: str) -> InputError:
    return InputError(f"--set {key}={value}: expected {expected}")


def _coerce_scalar(key: str, value, kind: str):
    """The value as `kind`, or an InputError. YAML reads `yes` / `no` as booleans: an enum that
    spells them as words gets them back."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _bad(key, value, "true or false")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise _bad(key, value, "an integer")
        return value
    if kind == "float":
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise _bad(key, value, "a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(key, value, "a number")
        if not math.isfinite(value):
            raise _bad(key, value, "a finite number")
        return float(value)
    if kind == "str":
        if isinstance(value, bool):
            return "yes" if value else "no"
        if not isinstance(value, str):
            raise _bad(key, value, "a string")
        return value
    if kind == "dict":
        if not isinstance(value, dict):
            raise _bad(key, value, "a mapping")
        return value
    raise AssertionError(f"schema.yaml: unknown type {kind!r} for {key}")


def _check_range(key: str, value, rule: dict):
    if "min" in rule and value < rule["min"]:
        raise _bad(key, value, f"a value >= {rule['min']}")
    if "gt" in rule and value <= rule["gt"]:
        raise _bad(key, value, f"a value > {rule['gt']}")
    if "max" in rule and value > rule["max"]:
        raise _bad(key, value, f"a value <= {rule['max']}")


def check_value(key: str, value, rule: dict):
    """The value converted to the key's type, or an InputError."""
    if value is None:
        if rule.get("nullable"):
            return None
        raise _bad(key, value, f"a {rule['type']} (null is not allowed)")
    kind = rule["type"]
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            raise _bad(key, value, f"a list of {rule.get('items', 'values')}")
        out = [_coerce_scalar(key, v, rule.get("items", "str")) for v in value]
        for v in out:
            if not isinstance(v, dict):
                _check_range(key, v, rule)
        return out
    if kind == "int_or_all":
        if value == "all":
            return value
        kind = "int"
    value = _coerce_scalar(key, value, kind)
    if "choices" in rule and value not in rule["choices"]:
        raise _bad(key, value, "one of " + ", ".join(map(str, rule["choices"])))
    if "pattern" in rule and not re.match(rule["pattern"], value):
        raise _bad(key, value, f"a value matching {rule['pattern']}")
    if kind in ("int", "float"):
        _check_range(key, value, rule)
    return value


def _check_combinations(config: dict):
    heads, size = config.get("n_heads"), config.get("embedding_size")
    if heads is not None and size is not None and size % heads:
        raise InputError(f"--set n_heads={heads} embedding_size={size}: n_heads must divide "
                         f"embedding_size (attention splits the embedding into equal heads)")
    metric, topk = config.get("valid_metric"), config.get("topk")
    if metric and topk is not None and int(metric.split("@")[1]) not in topk:
        raise InputError(f"--set valid_metric={metric}: its cut-off is not in topk {topk}")
    if config.get("trunk_cache", "none") != "none" and config.get("tune_layers") == "all":
        raise InputError("--set tune_layers=all: a trunk cache needs a frozen trunk; "
                         "add --set trunk_cache=none")


def validate_config(config: dict) -> dict:
    """The config with every value checked and converted to its schema type (a new dict)."""
    rules = schema()
    out = {}
    for key, value in config.items():
        if key in DERIVED_KEYS:
            out[key] = value
            continue
        if key not in rules:
            raise InputError(f"config key {key!r} has no entry in {SCHEMA_PATH.name}")
        out[key] = check_value(key, value, rules[key])
    _check_combinations(out)
    return out
