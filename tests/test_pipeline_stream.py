"""build-release writes a release's interactions, splits, sequences and stats from one stream: the
bytes the files' own paths give (build-splits, sequences from the split files, stats from the
tables), whatever the batches; nothing read back."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import build as build_mod
from pipelines import sequences as seq_mod
from pipelines.build import build_release
from pipelines.digests import FooterPatchFailed, HashingFile, footer_metadata_patch
from pipelines.manifest import verify_release
from pipelines.splits import build_splits
from pipelines.stats import write_stats
from schemas.tables import SPLIT_NAMES
from test_pipeline_build import KEY, T0, video, write_raw

RELEASES = ("pixelrec", "all", "some")
DERIVED = [*(f"splits/{s}.parquet" for s in SPLIT_NAMES), *(f"sequences/{s}.parquet" for s in SPLIT_NAMES),
           "stats.json", "stats/item_popularity.png", "stats/session_length.png"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Users with 1 to 25 interactions over 40 videos, equal times included, both sources."""
    rng = np.random.default_rng(7)
    rows = []
    for user in range(120):
        for _ in range(int(rng.integers(1, 26))):
            rows.append((f"BV{int(rng.integers(0, 40))}", 10**12 + user, T0 + int(rng.integers(0, 30)),
                         ("comment", "danmaku")[int(rng.integers(0, 2))]))
    return write_raw(tmp_path_factory.mktemp("stream") / "raw", [video(f"BV{i}") for i in range(40)], rows,
                     shards=2)


def _build(raw, out, monkeypatch, batch_rows):
    monkeypatch.setattr(build_mod, "BATCH_ROWS", batch_rows)
    monkeypatch.setattr(seq_mod, "ROWS_PER_GROUP", 50)  # several row groups per sequences file
    build_release(raw, out, KEY, seed=1, subset_specs=["all=all", "some=15"], min_interactions=2)


def _rebuilt(release, folder):
    """The derived files of `release` made again from its items and interactions alone."""
    folder.mkdir(parents=True)
    for name in ("items.parquet", "interactions.parquet"):
        shutil.copy(release / name, folder / name)
    build_splits(folder)
    seq_mod.build_sequences(folder)
    write_stats(folder)
    return folder


@pytest.mark.parametrize("batch_rows", [1, 7, 1 << 18])
def test_streamed_files_equal_those_made_from_the_tables(raw, tmp_path, monkeypatch, batch_rows):
    reads = []
    monkeypatch.setattr(seq_mod, "user_ranges", lambda *a: reads.append(a) or iter(()))
    _build(raw, tmp_path / "data", monkeypatch, batch_rows)
    assert not reads  # the sequences came from the stream, not from the split files
    monkeypatch.undo()
    monkeypatch.setattr(seq_mod, "ROWS_PER_GROUP", 50)
    for name in RELEASES:
        release = tmp_path / "data" / name
        again = _rebuilt(release, tmp_path / "again" / name)
        for rel in DERIVED:
            got, want = (release / rel).read_bytes(), (again / rel).read_bytes()
            assert got == want, f"{name}/{rel}: {len(got)} bytes streamed, {len(want)} rebuilt"
        verify_release(release)


def test_a_footer_that_cannot_take_the_digest_falls_back_to_the_split_files(raw, tmp_path, monkeypatch):
    def refusing(written, final):
        def transform(tail):
            raise FooterPatchFailed("refused")
        return transform

    _build(raw, tmp_path / "want", monkeypatch, 1 << 18)
    monkeypatch.setattr(seq_mod, "footer_metadata_patch", refusing)
    _build(raw, tmp_path / "got", monkeypatch, 1 << 18)
    for name in RELEASES:
        for split in SPLIT_NAMES:
            rel = f"{name}/sequences/{split}.parquet"
            assert (tmp_path / "got" / rel).read_bytes() == (tmp_path / "want" / rel).read_bytes(), rel
        verify_release(tmp_path / "got" / name)
    assert not list((tmp_path / "got").rglob(".*.tmp-*"))


def _parquet(value: str) -> tuple[bytes, pa.Schema]:
    schema = pa.schema([("a", pa.int64())]).with_metadata({b"k": value.encode(), b"other": b"x"})
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema) as writer:
        writer.write_table(pa.table({"a": [1, 2, 3]}, schema=schema))
    return sink.getvalue(), schema


def test_footer_patch_gives_the_bytes_of_a_direct_write():
    placeholder, written = _parquet("~" * 64)
    direct, final = _parquet("0123456789abcdef" * 4)
    assert footer_metadata_patch(written, final)(placeholder) == direct
    with pytest.raises(FooterPatchFailed):  # a footer without the placeholder
        footer_metadata_patch(written, final)(direct)
    with pytest.raises(FooterPatchFailed):  # not a whole footer
        footer_metadata_patch(written, final)(placeholder[-40:])


def test_held_bytes_are_hashed_as_transformed(tmp_path):
    import hashlib

    out = HashingFile(tmp_path / "f")
    out.write(b"head")
    out.hold(lambda tail: tail.upper())
    out.write(b"tail")
    out.close()
    assert (tmp_path / "f").read_bytes() == b"headTAIL"
    assert out.sha256 == hashlib.sha256(b"headTAIL").hexdigest()
    grown = HashingFile(tmp_path / "g")
    grown.hold(lambda tail: tail + b"!")
    grown.write(b"x")
    with pytest.raises(ValueError, match="length"):
        grown.close()
    grown.abort()


def _releases_session(rows: list[tuple[int, int, int, int]]):
    """A DuckDB session holding `releases` (inum, unum, ts, src, pos) with `rows` as given, in
    that order, and `item_numbers` for 3 items."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE item_numbers AS SELECT range::INTEGER AS inum FROM range(3)")
    con.execute("CREATE TABLE releases (inum INTEGER, unum INTEGER, ts BIGINT, src TINYINT, pos INTEGER)")
    con.executemany("INSERT INTO releases VALUES (?, ?, ?, ?, 0)", rows)
    return con


@pytest.mark.parametrize("batch_rows", [1, 2, 1 << 10])
@pytest.mark.parametrize("rows", [
    [(0, 0, 5, 0), (1, 1, 5, 0), (2, 0, 6, 0)],  # a user met again after another one
    [(0, 0, 5, 0), (1, 0, 4, 0), (2, 1, 5, 0)],  # a user's times going back
    [(1, 0, 5, 0), (0, 0, 5, 0), (2, 1, 5, 0)],  # equal times, items going back
])
def test_rows_out_of_order_stop_the_release_and_leave_no_file(tmp_path, monkeypatch, rows, batch_rows):
    monkeypatch.setattr(build_mod, "BATCH_ROWS", batch_rows)
    folder = tmp_path / "release"
    folder.mkdir()
    with _releases_session(rows) as con, pytest.raises(RuntimeError, match="out of order"):
        build_mod._stream_release(con, folder, "true")
    assert not [p for p in folder.rglob("*") if p.is_file()]


def test_a_failing_file_stops_the_release_and_leaves_no_file(tmp_path, monkeypatch):
    def failing(*args):
        raise OSError("disk full")

    rows = [(u % 3, u, 5, 0) for u in range(50)]
    monkeypatch.setattr(build_mod, "BATCH_ROWS", 4)
    monkeypatch.setattr(seq_mod.SequenceWriter, "write", failing)
    folder = tmp_path / "release"
    folder.mkdir()
    with _releases_session(rows) as con, pytest.raises(OSError, match="disk full"):
        build_mod._stream_release(con, folder, "true")
    assert not [p for p in folder.rglob("*") if p.is_file()]



def test_lanes_sharing_one_thread_keep_each_files_order_and_take_turns():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from pipelines.release_stream import _Lane

    done, gate = [], threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        lanes = {name: _Lane(pool) for name in ("a", "b")}
        lanes["a"].submit(gate.wait)  # holds the only thread while both lanes queue their batches
        for k in range(3):
            for name, lane in lanes.items():
                lane.submit(done.append, (name, k))
        gate.set()
        for lane in lanes.values():
            lane.finish()
    assert done == [("b", 0), ("a", 0), ("b", 1), ("a", 1), ("b", 2), ("a", 2)]


def test_a_failed_batch_is_raised_by_its_lane_and_the_others_go_on():
    from concurrent.futures import ThreadPoolExecutor

    from pipelines.release_stream import _Lane

    done = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        bad, good = _Lane(pool), _Lane(pool)
        bad.submit(lambda: 1 / 0)
        good.submit(done.append, 1)
        good.submit(done.append, 2)
        good.finish()
        with pytest.raises(ZeroDivisionError):
            bad.finish()
    assert done == [1, 2]
