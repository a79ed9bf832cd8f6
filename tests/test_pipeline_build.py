"""build-release on small hand-built raw/ folders with known answers."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.build import build_release
from schemas.io import write_table
from schemas.tables import COUNT_COLUMNS, RAW_VIDEOS

KEY = b"k" * 32
T0 = 1_600_000_000


def video(pvid: str, crawled_at: int = T0, title: str | None = None, **extra) -> dict:
    row = {"platform_video_id": pvid, "title": title or f"title {pvid}",
           "description": f"about {pvid}", "tag": "tag", "channel": "channel",
           "cover_url": f"http://127.0.0.1/{pvid}.jpg", **{c: 1 for c in COUNT_COLUMNS},
           "release_time": T0 - 1000, "duration_s": 60, "crawled_at": crawled_at}
    row["aid"] = sum(map(ord, pvid))  # deterministic (hash() is salted per process)
    row.update(extra)
    return row


def write_raw(root: Path, videos: list[dict], interactions: list[tuple], shards: int = 1) -> Path:
    """raw/ with `shards` parts each; interactions are (platform_video_id, user_key, timestamp, source)."""
    for part in range(shards):
        vids = videos[part::shards]
        write_table(pa.Table.from_pylist(vids, schema=RAW_VIDEOS), root / "videos" / f"part-{part:05d}.parquet", "raw_videos")
        rows = interactions[part::shards]
        table = pa.table({"platform_video_id": pa.array([r[0] for r in rows], pa.string()),
                          "user_key": pa.array([r[1] for r in rows], pa.uint64()),
                          "timestamp": pa.array([r[2] for r in rows], pa.int64()),
                          "source": pa.array([r[3] if len(r) > 3 else "comment" for r in rows], pa.string())})
        write_table(table, root / "interactions" / f"part-{part:05d}.parquet", "raw_interactions")
    return root


def community(users: int, videos: int, per_user: int, base_key: int = 10**15) -> list[tuple]:
    """Each user u comments on `per_user` distinct videos at distinct times."""
    return [(f"BV{(u * 7 + j) % videos}", base_key + u, T0 + u * 100 + j, "comment")
            for u in range(users) for j in range(per_user)]


def read(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def tree_digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    base = tmp_path_factory.mktemp("build")
    videos = [video(f"BV{i}") for i in range(12)]
    raw = write_raw(base / "raw", videos, community(40, 12, 6) + [("BV0", 5, T0, "comment")], shards=2)
    report = build_release(raw, base / "data", KEY, seed=3,
                           subset_specs=["s8=all", "s20=20", "s10=10"])
    return base, report


def test_build_writes_every_release_with_its_files(small_build):
    base, report = small_build
    for name in ("pixelrec", "s8", "s20", "s10"):
        folder = base / "data" / name
        for rel in ("items.parquet", "interactions.parquet", "splits/train.parquet",
                    "splits/validation.parquet", "splits/test.parquet", "stats.json",
                    "stats/item_popularity.png", "stats/session_length.png", "manifest.json"):
            assert (folder / rel).is_file(), f"{name}/{rel}"
    assert report["users"] == 41 and report["eligible_users"] == 40
    assert report["releases"]["pixelrec"]["interactions"] == 241
    assert report["releases"]["s8"]["users"] == 40
    assert report["releases"]["s20"]["users"] == 20 and report["releases"]["s10"]["users"] == 10
    assert not [p for p in (base / "data").iterdir() if p.name.startswith(".")]


def test_nested_subsets_keep_ids_and_only_touched_items(small_build):
    base, _ = small_build
    data = base / "data"
    users = {name: {r["user_id"] for r in read(data / name / "interactions.parquet")}
             for name in ("pixelrec", "s8", "s20", "s10")}
    assert users["s10"] < users["s20"] < users["s8"] < users["pixelrec"]
    full = {(r["item_id"], r["user_id"], r["timestamp"]) for r in read(data / "pixelrec" / "interactions.parquet")}
    for name in ("s8", "s20", "s10"):
        rows = read(data / name / "interactions.parquet")
        assert {(r["item_id"], r["user_id"], r["timestamp"]) for r in rows} == {
            t for t in full if t[1] in users[name]}
        items = read(data / name / "items.parquet")
        assert [r["item_id"] for r in items] == sorted({r["item_id"] for r in rows}, key=lambda i: int(i[1:]))
        full_items = {r["item_id"]: r for r in read(data / "pixelrec" / "items.parquet")}
        assert all(full_items[r["item_id"]] == r for r in items)


def test_user_with_fewer_than_five_interactions_only_in_full_release(small_build):
    base, _ = small_build
    lone = {r["user_id"] for r in read(base / "data" / "pixelrec" / "interactions.parquet")} - {
        r["user_id"] for r in read(base / "data" / "s8" / "interactions.parquet")}
    assert len(lone) == 1


def test_dense_ids_follow_the_keyed_ranking_not_crawl_order(tmp_path):
    from schemas.keys import keyed_rank_value
    videos = [video(f"BV{i}") for i in range(6)] + [video("BVempty")]
    users = [10**17 + 3, 10**17 + 1, 10**17 + 2]
    rows = [(f"BV{i}", u, T0 + i, "comment") for u in users for i in range(6)]
    write_raw(tmp_path / "raw", videos, rows)
    report = build_release(tmp_path / "raw", tmp_path / "data", KEY, subset_specs=["all8=all"])
    assert report["items_dropped_no_interactions"] == 1
    video_order = sorted((f"BV{i}" for i in range(6)), key=lambda v: keyed_rank_value(KEY, "video", v))
    user_order = sorted(users, key=lambda u: keyed_rank_value(KEY, "user", str(u)))
    got = read(tmp_path / "data" / "pixelrec" / "interactions.parquet")
    for row in got:
        pvid = f"BV{row['timestamp'] - T0}"
        assert row["item_id"] == f"i{video_order.index(pvid)}"
    titles = {r["item_id"]: r["title"] for r in read(tmp_path / "data" / "pixelrec" / "items.parquet")}
    assert titles == {f"i{n}": f"title {v}" for n, v in enumerate(video_order)}
    assert {r["user_id"] for r in got} == {f"u{n}" for n in range(len(user_order))}


def test_dedup_keeps_latest_video_and_earliest_interaction(tmp_path):
    videos = [video("BV1", crawled_at=T0, title="old"), video("BV1", crawled_at=T0 + 50, title="new"),
              video("BV2", crawled_at=T0, title="b"), video("BV2", crawled_at=T0, title="a")]
    rows = [("BV1", 7, T0 + 10, "comment"), ("BV1", 7, T0 + 5, "danmaku"), ("BV1", 7, T0 + 5, "comment"),
            ("BV1", 7, T0 + 30, "danmaku"), ("BV2", 7, T0 + 9, "danmaku"), ("BV2", 7, T0 + 8, "danmaku"),
            ("BVunknown", 7, T0, "comment")]
    write_raw(tmp_path / "raw", videos, rows, shards=2)
    report = build_release(tmp_path / "raw", tmp_path / "data", KEY, subset_specs=["x=all"],
                           min_interactions=1)
    assert report["unique_videos"] == 2 and report["duplicates_removed"] == 4
    assert report["interactions_of_unknown_videos"] == 1
    items = {r["title"] for r in read(tmp_path / "data" / "pixelrec" / "items.parquet")}
    assert items == {"new", "a"}  # latest crawl; on a tie the deterministic order (title) decides
    got = sorted((r["timestamp"], r["source"]) for r in read(tmp_path / "data" / "pixelrec" / "interactions.parquet"))
    assert got == [(T0 + 5, "comment"), (T0 + 8, "danmaku")]


def test_cap_keeps_earliest_users_ties_by_user_key(tmp_path):
    from schemas.keys import keyed_rank_value
    keys = [900, 100, 500, 300, 700]
    times = {900: T0 + 1, 100: T0 + 3, 500: T0 + 3, 300: T0 + 3, 700: T0 + 9}
    rows = [("BV1", k, times[k], "comment") for k in keys] + [("BV2", k, T0, "comment") for k in keys]
    write_raw(tmp_path / "raw", [video("BV1"), video("BV2")], rows)
    report = build_release(tmp_path / "raw", tmp_path / "data", KEY, subset_specs=["x=all"], cap=3,
                           min_interactions=1)
    assert report["items_over_cap"] == 2 and report["cap_removed"] == 4
    survivors = [900, 100, 500, 300]  # 700 is capped out of both videos: it is no user at all
    user_order = sorted(survivors, key=lambda k: keyed_rank_value(KEY, "user", str(k)))
    uid = {k: f"u{user_order.index(k)}" for k in survivors}
    item_of = {r["title"]: r["item_id"] for r in read(tmp_path / "data" / "pixelrec" / "items.parquet")}
    got = read(tmp_path / "data" / "pixelrec" / "interactions.parquet")
    assert {r["user_id"] for r in got if r["item_id"] == item_of["title BV1"]} == {uid[900], uid[100], uid[300]}
    assert {r["user_id"] for r in got if r["item_id"] == item_of["title BV2"]} == {uid[100], uid[300], uid[500]}


def test_builds_are_byte_identical_whatever_the_sharding(tmp_path, monkeypatch):
    from pipelines import build

    videos = [video(f"BV{i}", crawled_at=T0 + i % 3) for i in range(15)] + [video("BV3", title="dup")]
    rows = community(30, 15, 7) + community(30, 15, 3)
    write_raw(tmp_path / "raw1", videos, rows, shards=1)
    write_raw(tmp_path / "raw3", videos[::-1], rows[::-1], shards=3)
    digests = []
    for raw, out in (("raw1", "a"), ("raw1", "b"), ("raw3", "c")):
        with monkeypatch.context() as patch:
            if out == "b":  # the PNGs drawn in a process of their own, as in a large build
                patch.setattr(build, "BACKGROUND_PLOTS_MIN", 0)
            build_release(tmp_path / raw, tmp_path / out, KEY, seed=9, subset_specs=["all=all", "ten=10"])
        digests.append(tree_digest(tmp_path / out))
    assert digests[0] == digests[1] == digests[2]
    build_release(tmp_path / "raw1", tmp_path / "d", KEY, seed=10, subset_specs=["all=all", "ten=10"])
    assert tree_digest(tmp_path / "d")["ten/interactions.parquet"] != digests[0]["ten/interactions.parquet"]


def test_no_raw_user_key_in_any_release_file(tmp_path):
    rows = [(f"BV{j}", 2**63 + 12345 * u, T0 + u * 10 + j, "danmaku") for u in range(8) for j in range(6)]
    write_raw(tmp_path / "raw", [video(f"BV{j}") for j in range(6)], rows)
    build_release(tmp_path / "raw", tmp_path / "data", KEY, subset_specs=["all=all", "four=4"])
    secrets = {str(r[1]) for r in rows}
    encoded = {r[1].to_bytes(8, e) for r in rows for e in ("big", "little")}
    for path in (tmp_path / "data").rglob("*"):
        if not path.is_file():
            continue
        blob = path.read_bytes()
        assert not any(s.encode() in blob for s in secrets) and not any(e in blob for e in encoded), path
        if path.suffix == ".parquet":
            values = {str(v) for col in pq.read_table(path).to_pydict().values() for v in col}
            assert not values & secrets, path


def test_subset_larger_than_eligible_stops_with_advice(tmp_path):
    from schemas.errors import InputError
    write_raw(tmp_path / "raw", [video(f"BV{i}") for i in range(8)], community(6, 8, 5))
    with pytest.raises(InputError, match=r"only 6 users .*--subset big=3"):
        build_release(tmp_path / "raw", tmp_path / "data", KEY, subset_specs=["all=all", "big=10", "s=2"])
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


@pytest.mark.parametrize("key", [b"k" * 32, b"long key " * 9])  # under and over a SHA-256 block
@pytest.mark.parametrize("sha256", ["fast", "hashlib"])  # CPython's own, and OpenSSL's where absent
def test_batch_rank_values_are_the_contracts_hmac(key, sha256, monkeypatch):
    import hashlib

    from pipelines import anonymize
    from pipelines.anonymize import _rank_values
    from schemas.keys import keyed_rank_value

    if sha256 == "hashlib":
        monkeypatch.setattr(anonymize, "_fast_sha256", hashlib.sha256)

    values = [str(v) for v in (0, 7, 10**15 + 3, 2**64 - 1)]
    got = [int(v) for v in _rank_values(key, "user", values)]
    assert got == [keyed_rank_value(key, "user", v) for v in values]


def test_rank_values_split_over_processes_are_the_same(monkeypatch):
    import numpy as np

    from pipelines import anonymize
    from schemas.keys import keyed_rank_value

    values = np.arange(10**15, 10**15 + 10, dtype=np.uint64)
    alone = anonymize._rank_values(KEY, "user", values)
    monkeypatch.setattr(anonymize, "PARALLEL_MIN", 3)
    monkeypatch.setattr(anonymize, "default_threads", lambda: 3)  # three parts, two spawned
    assert anonymize._rank_values(KEY, "user", values).tolist() == alone.tolist()
    assert alone.tolist() == [keyed_rank_value(KEY, "user", str(v)) for v in values.tolist()]


def test_rank_values_are_made_in_process_where_no_process_can_be_spawned(tmp_path):
    """A program read from standard input cannot spawn a process (the child has no main module to
    load): the parts meant for other processes are hashed in this one."""
    import subprocess
    import sys

    program = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
import numpy as np
from pipelines import anonymize
values = np.arange(10**15, 10**15 + 10, dtype=np.uint64)
alone = anonymize._rank_values(b"k" * 32, "user", values)
anonymize.PARALLEL_MIN, anonymize.default_threads = 3, lambda: 3
print(anonymize._rank_values(b"k" * 32, "user", values).tolist() == alone.tolist())
"""
    done = subprocess.run([sys.executable, "-"], input=program, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"


def test_plots_drawn_in_the_background_are_those_drawn_in_place(small_build, tmp_path):
    import json

    from pipelines.stats import BackgroundPlots, save_stats

    base, _ = small_build
    stats = json.loads((base / "data" / "pixelrec" / "stats.json").read_text())
    save_stats(stats, tmp_path / "in_place")
    with BackgroundPlots() as plots:
        save_stats(stats, tmp_path / "background", plots)
        plots.wait()
        in_place, background = tree_digest(tmp_path / "in_place"), tree_digest(tmp_path / "background")
    assert sorted(in_place) == ["stats.json", "stats/item_popularity.png", "stats/session_length.png"]
    assert background == in_place
    assert tree_digest(base / "data" / "pixelrec" / "stats") == {
        k.removeprefix("stats/"): v for k, v in in_place.items() if k.startswith("stats/")}


def test_plots_not_sent_to_the_background_are_drawn_at_once(small_build, tmp_path):
    import json

    from pipelines.stats import BackgroundPlots, save_stats

    base, _ = small_build
    stats = json.loads((base / "data" / "pixelrec" / "stats.json").read_text())
    with BackgroundPlots(background=False) as plots:
        save_stats(stats, tmp_path, plots)
        assert tree_digest(tmp_path / "stats") == tree_digest(base / "data" / "pixelrec" / "stats")


def test_a_plot_that_fails_in_the_background_fails_the_wait(tmp_path):
    from pipelines.stats import BackgroundPlots

    with BackgroundPlots() as plots:
        plots.draw({"session_length_histogram": {}}, tmp_path / "stats")  # no popularity histogram
        with pytest.raises(KeyError, match="item_popularity_histogram"):
            plots.wait()


def test_users_with_equal_rank_values_are_ordered_by_key():
    import numpy as np

    from pipelines.anonymize import _by_rank_then_key

    ranks = np.array([9, 3, 9, 1, 3, 9], dtype=np.uint64)
    keys = np.array([50, 20, 40, 70, 10, 60], dtype=np.uint64)
    assert _by_rank_then_key(ranks, keys).tolist() == [3, 4, 1, 2, 0, 5]
    unique = np.array([5, 2, 8], dtype=np.uint64)
    assert _by_rank_then_key(unique, np.array([1, 2, 3], dtype=np.uint64)).tolist() == [1, 0, 2]
