"""Configs as data: configs/overall.yaml, then configs/<model>.yaml, then `--set key=value`,
checked against configs/schema.yaml (config_schema.py).

The model file wins over overall.yaml: it carries the README's tuned values (lr, batch, wd), which
the official code would have let overall/ID.yaml override (a quirk of the official code).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from schemas.errors import InputError, split_assignment

from .config_schema import validate_config

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def parse_overrides(pairs) -> dict:
    """['lr=1e-3', 'topk=[5,10]'] -> {'lr': 0.001, 'topk': [5, 10]} (values parsed as YAML)."""
    out = {}
    for pair in pairs or ():
        key, value = split_assignment(pair, "--set", "KEY=VALUE")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InputError(f"--set {pair!r}: the value is not valid YAML") from None
    return out


def resolve_config(model: str, overrides: dict | None = None) -> dict:
    path = CONFIG_DIR / f"{model}.yaml"
    if not path.exists() or model in ("overall", "schema"):  # shared files, not models
        raise InputError(f"unknown model '{model}': no {path.name} in {CONFIG_DIR}")
    config = _load(CONFIG_DIR / "overall.yaml")
    config.update(_load(path))
    unknown = sorted(set(overrides or {}) - set(config) - {"seed", "epochs"})
    if unknown:
        raise InputError(f"--set: unknown key(s) {', '.join(unknown)} for model '{model}' "
                         f"(known: {', '.join(sorted(config))})")
    config.update(overrides or {})
    config["model"] = model
    return validate_config(config)  # types, ranges, choices and combinations (configs/schema.yaml)
