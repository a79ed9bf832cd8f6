"""Trainer configs are typed and range-checked: configs/schema.yaml covers every key, and each bad
`--set` ends as one line on stderr with exit status 2 (the real `pixelrec` process)."""
import subprocess
import sys

import pytest
import yaml

from pixelrec_data.baselines.config import CONFIG_DIR, resolve_config
from pixelrec_data.baselines.config_schema import schema
from schemas.errors import InputError

SUITES = CONFIG_DIR.parent / "suites"
MODELS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem not in ("overall", "schema"))


def test_every_key_of_every_config_has_a_type_and_a_range():
    rules = schema()
    for path in CONFIG_DIR.glob("*.yaml"):
        if path.stem == "schema":
            continue
        for key in yaml.safe_load(path.read_text()) or {}:
            assert key in rules, f"{path.name}: {key} has no schema entry"
    for key, rule in rules.items():
        assert rule["type"] in ("int", "float", "bool", "str", "list", "int_or_all"), key
        if rule["type"] in ("int", "float", "int_or_all"):
            assert {"min", "gt"} & set(rule), f"{key}: a number without a lower bound"
        if rule["type"] == "str" and key not in ("encoder", "features", "encoder_weights",
                                                  "trunk_cache_path", "release"):
            assert "choices" in rule or "pattern" in rule, f"{key}: a free string"


@pytest.mark.parametrize("model", MODELS)
def test_shipped_configs_validate(model):
    assert resolve_config(model)["model"] == model


def test_suite_entries_validate():
    for path in SUITES.glob("*.yaml"):
        for entry in yaml.safe_load(path.read_text())["entries"]:
            resolve_config(entry["model"], entry.get("set"))


def test_yes_no_words_survive_yaml_booleans():
    assert resolve_config("sasrec", {"deterministic": True})["deterministic"] == "yes"


BAD = [
    (["loss=foo"], "loss=foo: expected one of bpr, ce"),
    (["embedding_size=8.5"], "embedding_size=8.5: expected an integer"),
    (["learning_rate=-1"], "learning_rate=-1.0: expected a value > 0"),
    (["embedding_size=abc"], "embedding_size=abc: expected an integer"),
    (["train_batch_size=0"], "train_batch_size=0: expected a value >= 1"),
    (["n_heads=3", "embedding_size=8"], "n_heads must divide embedding_size"),
    (["compile=fast"], "compile=fast: expected one of none"),
]


@pytest.mark.parametrize("settings,message", BAD)
def test_bad_set_is_one_line_and_exit_2(settings, message, tmp_path):
    args = [a for s in settings for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "train", "--release", str(tmp_path),
                           "--model", "sasrec", "--out", str(tmp_path / "runs"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()


def test_library_raises_input_error():
    with pytest.raises(InputError, match="n_heads"):
        resolve_config("pixelnet_sasrec", {"n_heads": 5})


def test_exponent_without_dot_is_a_number():
    assert resolve_config("mf", {"learning_rate": "1e-3"})["learning_rate"] == 1e-3
