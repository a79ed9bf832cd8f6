"""Leave-one-out splits on hand-written release folders: ties, short histories, batch boundaries."""
from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipelines.splits as splits
from schemas.errors import InputError
from schemas.io import write_table

T0 = 1_600_000_000


def write_release(folder, rows):
    """rows: (item_id, user_id, timestamp)"""
    table = pa.table({"item_id": [r[0] for r in rows], "user_id": [r[1] for r in rows],
                      "timestamp": pa.array([r[2] for r in rows], pa.int64()),
                      "source": ["comment"] * len(rows)})
    write_table(table, folder / "interactions.parquet", "interactions")
    return folder


def read_split(folder, name):
    return [(r["item_id"], r["user_id"], r["timestamp"]) for r in
            pq.read_table(folder / "splits" / f"{name}.parquet").to_pylist()]


def test_leave_one_out_orders_ties_by_item_number(tmp_path):
    rows = [("i5", "u1", T0 + 9), ("i30", "u1", T0 + 9), ("i12", "u1", T0 + 1), ("i4", "u1", T0 + 2),
            ("i7", "u1", T0 + 9),
            ("i2", "u10", T0), ("i1", "u10", T0),        # two rows: validation + test
            ("i9", "u2", T0 + 4)]                         # one row: test only
    folder = write_release(tmp_path, rows)
    counts = splits.build_splits(folder)
    assert counts == {"train": 3, "validation": 2, "test": 3}
    assert read_split(folder, "test") == [("i30", "u1", T0 + 9), ("i9", "u2", T0 + 4), ("i2", "u10", T0)]
    assert read_split(folder, "validation") == [("i7", "u1", T0 + 9), ("i1", "u10", T0)]
    assert read_split(folder, "train") == [("i12", "u1", T0 + 1), ("i4", "u1", T0 + 2), ("i5", "u1", T0 + 9)]


def reference(rows):
    by_user = {}
    for item, user, ts in rows:
        by_user.setdefault(int(user[1:]), []).append((ts, int(item[1:]), item, user))
    out = {"train": [], "validation": [], "test": []}
    for user in sorted(by_user):
        history = sorted(by_user[user])
        for pos, (ts, _, item, uid) in enumerate(history):
            role = "test" if pos == len(history) - 1 else "validation" if pos == len(history) - 2 else "train"
            out[role].append((item, uid, ts))
    return out


@pytest.mark.parametrize("presorted", [True, False])
@pytest.mark.parametrize("batch_rows", [1, 2, 3, 7, 1000])
def test_streaming_matches_reference_across_batch_boundaries(tmp_path, monkeypatch, batch_rows, presorted):
    monkeypatch.setattr(splits, "BATCH_ROWS", batch_rows)
    rng = random.Random(batch_rows)
    rows, seen = [], set()
    for user in range(25):
        for _ in range(rng.choice([1, 1, 2, 3, 5, 8])):
            item = rng.randrange(40)
            if (item, user) not in seen:
                seen.add((item, user))
                rows.append((f"i{item}", f"u{user}", T0 + rng.randrange(4)))
    rng.shuffle(rows)
    if presorted:  # the order build-release writes: streamed without a sort
        rows.sort(key=lambda r: (int(r[1][1:]), r[2], int(r[0][1:])))
        monkeypatch.setattr(splits, "_sorted_splits", lambda *a: pytest.fail("sorted again"))
    assert_splits_match_reference(tmp_path, rows)


def assert_splits_match_reference(folder, rows):
    splits.build_splits(write_release(folder, rows))
    expected = reference(rows)
    for name in ("train", "validation", "test"):
        assert read_split(folder, name) == expected[name], name


def test_bad_ids_are_refused_without_splits(tmp_path):
    folder = write_release(tmp_path, [("i1", "u1", T0), ("../x", "u1", T0 + 1)])
    with pytest.raises(InputError, match="i<digits>"):
        splits.build_splits(folder)
    assert not (tmp_path / "splits").exists()


def test_presorted_ids_with_leading_zeros_still_stream(tmp_path, monkeypatch):
    """Canonical ids take the fast reader; a file with 'u07' / 'i005' in split order streams too,
    through the general digit check, with the same rows as the reference."""
    rows = [("i3", "u2", T0), ("i005", "u2", T0 + 1), ("i1", "u2", T0 + 2),
            ("i2", "u07", T0), ("i04", "u07", T0), ("i9", "u11", T0 + 3)]
    monkeypatch.setattr(splits, "_sorted_splits", lambda *a: pytest.fail("sorted again"))
    assert_splits_match_reference(tmp_path, rows)
