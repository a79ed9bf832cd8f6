"""A release's manifest read as a stream (pixelrec_data.mirror.manifests): the same verdicts as
the JSON Schema, memory per entry far below Python objects', the cap on entries, the deadline."""
from __future__ import annotations

import copy
import json
import time
import tracemalloc

import jsonschema
import pytest

from manifest_flood import write_flood_mirror
from pixelrec_data.mirror.manifests import (MAX_HEAD_VALUES, check_relpath, entry_problem,
                                            parse_manifest, read_manifest)
from schemas.errors import InputError
from schemas.manifest import MANIFEST_SCHEMA

SHA = "ab" * 32
HEAD = {"name": "r", "schema_version": "1", "created_by": "t", "build": {}, "counts": {"items": 3}}


def manifest_bytes(files, **head) -> bytes:
    return json.dumps({**HEAD, **head, "files": files}).encode()


GOOD_ENTRIES = [
    {"path": "items.parquet", "bytes": 10, "sha256": SHA},
    {"path": "covers/ab/i1.jpg", "bytes": 0, "sha256": SHA, "rows": None},
    {"path": "splits/train.parquet", "bytes": 10, "sha256": SHA, "rows": 7},
]
BAD_ENTRIES = [
    {"path": "a", "bytes": 10},  # no sha256
    {"path": "a", "sha256": SHA},  # no bytes
    {"path": "a", "bytes": -1, "sha256": SHA},
    {"path": "a", "bytes": "10", "sha256": SHA},
    {"path": "a", "bytes": True, "sha256": SHA},
    {"path": "a", "bytes": 10, "sha256": SHA.upper()},
    {"path": "a", "bytes": 10, "sha256": SHA[:-1]},
    {"path": "a", "bytes": 10, "sha256": None},
    {"path": "a", "bytes": 10, "sha256": SHA, "rows": -1},
    {"path": "a", "bytes": 10, "sha256": SHA, "rows": "7"},
    {"path": "a", "bytes": 10, "sha256": SHA, "extra": 1},
    {"path": "a..b", "bytes": 10, "sha256": SHA},
]


@pytest.mark.parametrize("entry", GOOD_ENTRIES + BAD_ENTRIES)
def test_the_entry_rules_agree_with_the_json_schema(entry):
    rules = MANIFEST_SCHEMA["properties"]["files"]["items"]
    schema_says = jsonschema.Draft202012Validator(rules).is_valid(entry)
    problem = entry_problem(entry)
    assert (problem is None) == schema_says, (entry, problem)


def test_a_valid_manifest_reads_back_whole():
    manifest = parse_manifest(manifest_bytes(GOOD_ENTRIES), "m")
    assert manifest.head == HEAD and manifest.name == "r"
    assert [tuple(e) for e in manifest.files] == [(e["path"], e["bytes"], e["sha256"])
                                                 for e in GOOD_ENTRIES]
    assert manifest.files.total_bytes == 20
    assert manifest.files.index_of("covers/ab/i1.jpg") == 1
    assert manifest.files.index_of("covers/ab/i2.jpg") is None


@pytest.mark.parametrize("data, words", [
    (b"[1, 2]", "not a JSON object"),
    (b'{"name": "r"', "not valid JSON"),
    (b'{"name": "r"} trailing', "not valid JSON"),
    (manifest_bytes([GOOD_ENTRIES[0], GOOD_ENTRIES[0]]), "listed twice"),
    (manifest_bytes([{"path": "manifest.json", "bytes": 1, "sha256": SHA}]), "lists itself"),
    (manifest_bytes(GOOD_ENTRIES)[:-1] + b', "files": []}', "appears twice"),
    (manifest_bytes({"item": GOOD_ENTRIES[0]}), "files: not an array"),
    (manifest_bytes(["items.parquet"]), "files/0: not an object"),
    (manifest_bytes([{**GOOD_ENTRIES[0], "bytes": {"n": 1}}]), "files/0/bytes"),
    (manifest_bytes([GOOD_ENTRIES[0], BAD_ENTRIES[0]]), "files/1: 'sha256' is a required"),
    (manifest_bytes([{**GOOD_ENTRIES[0], "path": "../x"}]), "unsafe file path"),
    (manifest_bytes([{**GOOD_ENTRIES[0], "path": "a\udcff"}]), "not valid JSON"),
    (manifest_bytes([{**GOOD_ENTRIES[0], "bytes": 1 << 63}]), "not valid JSON"),
    (manifest_bytes(GOOD_ENTRIES, counts={"items": "3"}), "not a valid manifest at counts/items"),
    (json.dumps({**HEAD, "files": GOOD_ENTRIES, "created_by": None}).encode(), "created_by"),
    (json.dumps({k: v for k, v in HEAD.items() if k != "name"} | {"files": []}).encode(),
     "'name' is a required property"),
    (manifest_bytes([], build={"n": list(range(MAX_HEAD_VALUES))}), "outside 'files'"),
])
def test_a_bad_manifest_is_one_line(data, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(")) as caught:
        parse_manifest(data, "m")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("m: ")


def test_a_path_no_file_system_can_name_is_unsafe():
    with pytest.raises(InputError, match="unsafe file path"):
        check_relpath("covers/a\udcff.jpg", "index.json")  # what json.loads lets through


def test_the_json_parser_keeps_the_same_verdict_as_before_on_our_own_manifests():
    """A manifest as pipelines write it (indented, sorted keys) reads as json.loads reads it."""
    document = {**copy.deepcopy(HEAD), "build": {"seed": 1, "ratio": 0.5, "source": "raw",
                                                 "sizes": [1, 2]}, "files": GOOD_ENTRIES}
    data = json.dumps(document, indent=2, sort_keys=True).encode()
    manifest = parse_manifest(data, "m")
    assert manifest.head == {k: v for k, v in document.items() if k != "files"}


def test_entries_past_the_cap_are_refused_as_they_come(tmp_path):
    path = write_flood_mirror(tmp_path, 3000)
    with open(path, "rb") as handle, pytest.raises(InputError, match="more than 1,000 files "
                                                    r"\(the index declares 1,000\)"):
        read_manifest(handle, "m", max_files=1000, cap_reason="the index declares 1,000")
    with open(path, "rb") as handle:
        assert len(read_manifest(handle, "m", max_files=3000).files) == 3000


def test_the_check_has_a_deadline(tmp_path):
    path = write_flood_mirror(tmp_path, 10)
    with open(path, "rb") as handle, pytest.raises(InputError, match="deadline"):
        read_manifest(handle, "m", deadline=time.monotonic() - 1)


def test_memory_per_entry_is_small_and_the_document_is_never_held_whole(tmp_path):
    """Peak traced memory grows by the packed table only: under 150 bytes an entry, where each
    entry's text alone is 130 bytes (a reader holding the text would pass 215) and json.loads
    takes about 600."""
    peaks = {}
    for entries in (20_000, 40_000):
        path = write_flood_mirror(tmp_path / str(entries), entries)
        tracemalloc.start()
        with open(path, "rb") as handle:
            manifest = read_manifest(handle, "m")
        peaks[entries] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(manifest.files) == entries
    text_per_entry = path.stat().st_size / 40_000
    per_entry = (peaks[40_000] - peaks[20_000]) / 20_000
    assert text_per_entry > 125 and per_entry < 150, (text_per_entry, per_entry, peaks)
