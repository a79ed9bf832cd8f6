"""pipelines.sequences: the streaming path gives the DuckDB path's bytes; odd split files fall back."""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import sequences as seq_mod
from pipelines.digests import known_sha256
from pipelines.engine import session
from pipelines.splits import build_splits
from schemas.io import write_table
from schemas.tables import SPLIT_NAMES


def _release(root, users=400, seed=0):
    """interactions.parquet with users of 1..30 interactions (ties in time included), then splits."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in rng.permutation(users):
        for _ in range(int(rng.integers(1, 31))):
            rows.append((f"i{int(rng.integers(0, 200))}", f"u{u}", int(rng.integers(0, 50)), "comment"))
    uniq = {(r[0], r[1]): r for r in rows}  # one row per (user, item)
    cols = list(zip(*uniq.values()))
    table = pa.table({"item_id": cols[0], "user_id": cols[1], "timestamp": pa.array(cols[2], pa.int64()),
                      "source": cols[3]})
    release = root / "rel"
    write_table(table, release / "interactions.parquet", "interactions")
    build_splits(release)
    return release


def _bytes(release):
    return {s: (release / "sequences" / f"{s}.parquet").read_bytes() for s in SPLIT_NAMES}


def _duckdb_bytes(release, tmp_path):
    out = {s: tmp_path / "duck" / f"{s}.parquet" for s in SPLIT_NAMES}
    with session(tmp_path) as con:
        seq_mod._duckdb_sequences(con, release, out, seq_mod.sources_digest(release))
    return {s: p.read_bytes() for s, p in out.items()}


@pytest.mark.parametrize("batch_rows,group_rows", [(1 << 18, 1 << 16), (37, 50), (1, 7)])
def test_streaming_equals_duckdb(tmp_path, monkeypatch, batch_rows, group_rows):
    monkeypatch.setattr(seq_mod, "BATCH_ROWS", batch_rows)
    monkeypatch.setattr(seq_mod, "ROWS_PER_GROUP", group_rows)
    release = _release(tmp_path)
    calls = []
    monkeypatch.setattr(seq_mod, "_duckdb_sequences", lambda *a: calls.append(a))
    paths = seq_mod.build_sequences(release)
    assert not calls  # split files written by build_splits stream
    monkeypatch.undo()
    monkeypatch.setattr(seq_mod, "ROWS_PER_GROUP", group_rows)
    got, want = _bytes(release), _duckdb_bytes(release, tmp_path)
    for split in SPLIT_NAMES:
        assert got[split] == want[split], f"{split}: {len(got[split])} vs {len(want[split])} bytes"
    # hashed while written: the manifest need not read them back
    for path in paths:
        assert known_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    test = pq.read_table(release / "sequences" / "test.parquet")
    assert test.num_rows == pq.ParquetFile(release / "splits" / "test.parquet").metadata.num_rows


def test_histories_follow_the_protocol(tmp_path):
    release = _release(tmp_path, users=50, seed=3)
    seq_mod.build_sequences(release)
    inter = pq.read_table(release / "interactions.parquet").to_pylist()
    by_user = {}
    for r in inter:
        by_user.setdefault(r["user_id"], []).append((r["timestamp"], int(r["item_id"][1:]), r["item_id"]))
    expected = {"train": {}, "validation": {}, "test": {}}
    for user, events in by_user.items():
        events.sort()
        for split, cut in (("test", 1), ("validation", 2), ("train", 3)):
            target = len(events) - cut
            if target >= 0:
                hist = events[:target]
                expected[split][user] = ([e[2] for e in hist], [e[0] for e in hist],
                                         events[target][2], events[target][0])
    for split in SPLIT_NAMES:
        rows = pq.read_table(release / "sequences" / f"{split}.parquet").to_pylist()
        got = {r["user_id"]: (r["history_item_ids"], r["history_timestamps"], r["target_item_id"],
                              r["target_timestamp"]) for r in rows}
        assert got == expected[split]
        assert [r["user_id"] for r in rows] == sorted(got, key=lambda u: int(u[1:]))


@pytest.mark.parametrize("odd", ["unsorted", "leading_zero"])
def test_odd_split_files_take_the_duckdb_path(tmp_path, odd):
    release = _release(tmp_path, users=60, seed=1)
    train = release / "splits" / "train.parquet"
    table = pq.read_table(train)
    if odd == "unsorted":
        table = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    else:
        ids = table.column("user_id").to_pylist()
        table = table.set_column(1, "user_id", pa.array([("u0" + u[1:]) if u == ids[0] else u for u in ids]))
    write_table(table, train, "split")
    seq_mod.build_sequences(release)
    assert _bytes(release) == _duckdb_bytes(release, tmp_path)


def test_up_to_date_sequences_are_kept(tmp_path):
    release = _release(tmp_path, users=30)
    paths = seq_mod.build_sequences(release)
    mtimes = [p.stat().st_mtime_ns for p in paths]
    seq_mod.build_sequences(release)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes


def test_arrow_sizes_counted_while_written_match_a_read(tmp_path):
    """The dataset card takes split sizes counted at write time: they must equal a full read."""
    from datasets import Features

    from pipelines.digests import known_arrow_bytes
    from pipelines.card import _arrow_bytes

    release = _release(tmp_path, users=300, seed=5)
    seq_mod.build_sequences(release)
    for rel in [f"splits/{s}.parquet" for s in SPLIT_NAMES] + [f"sequences/{s}.parquet" for s in SPLIT_NAMES]:
        path = release / rel
        file = pq.ParquetFile(path)
        schema = Features.from_arrow_schema(file.schema_arrow).arrow_schema
        counted = known_arrow_bytes(path)
        assert counted is not None, rel
        read = _arrow_bytes(file, schema)  # no path: a full read
        assert sum(counted) == read, f"{rel}: counted {sum(counted)}, read {read}"
        assert _arrow_bytes(file, schema, path) == read
