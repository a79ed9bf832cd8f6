"""stats figures, manifest contents and verify on hand-written release folders."""
from __future__ import annotations

import json

import jsonschema
import pyarrow as pa
import pytest

from pipelines.build import resplit_release, restat_release
from pipelines.manifest import verify_release, write_manifest
from pipelines.stats import compute_stats, format_table
from schemas.errors import InputError
from schemas.io import write_table
from schemas.tables import ITEMS

T0 = 1_600_000_000


def make_release(folder):
    # u0: 3 items, u1: 1 item, u2: 2 items; items i0 (3 users), i1 (2), i2 (1), i3 (none)
    rows = [("i0", "u0"), ("i1", "u0"), ("i2", "u0"), ("i0", "u1"), ("i0", "u2"), ("i1", "u2")]
    write_table(pa.table({"item_id": [r[0] for r in rows], "user_id": [r[1] for r in rows],
                          "timestamp": pa.array([T0 + n for n in range(len(rows))], pa.int64()),
                          "source": ["comment"] * len(rows)}),
                folder / "interactions.parquet", "interactions")
    items = pa.Table.from_pylist([{"item_id": f"i{n}", "title": f"t{n}"} for n in range(4)], schema=ITEMS)
    write_table(items, folder / "items.parquet", "items")
    return folder


def test_stats_known_answers(tmp_path):
    stats = compute_stats(make_release(tmp_path / "r"))
    assert (stats["users"], stats["items"], stats["items_in_catalog"], stats["interactions"]) == (3, 3, 4, 6)
    assert stats["avg_interactions_per_user"] == 2.0 and stats["avg_interactions_per_item"] == 2.0
    assert stats["sparsity"] == pytest.approx(1 - 6 / 9, abs=1e-6)
    assert (stats["min_session_length"], stats["max_session_length"], stats["median_session_length"]) == (1, 3, 2.0)
    assert stats["session_length_histogram"] == {"1": 1, "2": 1, "3": 1}
    assert stats["item_popularity_histogram"] == {"1": 1, "2": 1, "3": 1}
    table = format_table(stats, "r")
    assert "#interactions" in table and "33.3333%" in table


def test_split_stats_manifest_then_verify(tmp_path):
    folder = make_release(tmp_path / "r")
    assert resplit_release(folder) == {"train": 1, "validation": 2, "test": 3}
    restat_release(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    paths = [f["path"] for f in manifest["files"]]
    # build-splits also derives the sequences (listed) and the card (local, not listed)
    assert paths == ["interactions.parquet", "items.parquet", "sequences/test.parquet",
                     "sequences/train.parquet", "sequences/validation.parquet", "splits/test.parquet",
                     "splits/train.parquet", "splits/validation.parquet", "stats.json",
                     "stats/item_popularity.png", "stats/session_length.png"]
    assert manifest["counts"]["test"] == 3 and manifest["counts"]["interactions"] == 6
    assert {f["path"]: f["rows"] for f in manifest["files"]}["items.parquet"] == 4
    assert (folder / "README.md").is_file()
    assert verify_release(folder)["files"] == 11


def test_verify_reports_the_first_mismatch(tmp_path):
    folder = make_release(tmp_path / "r")
    write_manifest(folder, "r", {"seed": 1}, {"users": 3})
    verify_release(folder)
    (folder / "items.parquet").write_bytes((folder / "items.parquet").read_bytes() + b"x")
    with pytest.raises(InputError, match="items.parquet: .* bytes"):
        verify_release(folder)
    make_release(folder)
    blob = bytearray((folder / "interactions.parquet").read_bytes())
    blob[10] ^= 0xFF
    (folder / "interactions.parquet").write_bytes(bytes(blob))
    with pytest.raises(InputError, match="interactions.parquet: sha256"):
        verify_release(folder)
    (folder / "interactions.parquet").unlink()
    with pytest.raises(InputError, match="missing"):
        verify_release(folder)


def test_manifest_never_holds_the_key(tmp_path):
    folder = make_release(tmp_path / "r")
    with pytest.raises(jsonschema.ValidationError):
        write_manifest(folder, "r", {"key": "secret"}, {})
    assert not (folder / "manifest.json").exists()
