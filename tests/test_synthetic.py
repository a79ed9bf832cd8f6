"""The synthetic world and raw/ generator: fields, invariants, shape of the data, determinism,
chunking, privacy, and the generate-raw command."""
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pixelrec_data.synthetic import COVER_URL, World, generate_world, write_raw
from pixelrec_data.synthetic.catalog import CHANNELS, TAG_CHANNEL, TAGS, VISUAL_FEATURES
from schemas.errors import InputError
from schemas.io import read_table
from schemas.keys import mid_hash, user_key_for_mid, user_key_for_midhash
from schemas.tables import RAW_VIDEOS

ROOT = Path(__file__).resolve().parent.parent
KEY = bytes(range(32))
BV = re.compile(r"^BV1[1-9A-HJ-NP-Za-km-z]{9}$")


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(7, 3000, 2000)


@pytest.fixture(scope="module")
def big_world() -> World:
    return generate_world(11, 20000, 5000)


def _frame(world):
    ev = world.events.to_pandas()
    index = {v: i for i, v in enumerate(world.videos["platform_video_id"].to_pylist())}
    ev["video"] = ev["platform_video_id"].map(index)
    return ev


def test_world_videos_fields(world):
    v = world.videos
    assert v.schema.names == RAW_VIDEOS.names
    assert v.schema == RAW_VIDEOS
    n = v.num_rows
    assert n == 2000
    ids = v["platform_video_id"].to_pylist()
    assert all(BV.match(i) for i in ids) and len(set(ids)) == n
    assert len(set(v["aid"].to_pylist())) == n
    assert world.cid.dtype == np.int64 and np.unique(world.cid).size == n
    assert all(re.fullmatch(r"[0-9a-f]{40}", c) for c in v["cover_url"].to_pylist())
    assert set(v["crawled_at"].to_pylist()) == {0}
    channels, tags = v["channel"].to_pylist(), v["tag"].to_pylist()
    assert set(channels) <= set(CHANNELS) and set(tags) <= set(TAGS)
    assert all(TAG_CHANNEL[t] == c for t, c in zip(tags, channels))
    duration = v["duration_s"].to_numpy()
    assert 0.05 < (duration >= 600).mean() < 0.2 and duration.min() > 0
    assert world.visual.shape == (n, len(VISUAL_FEATURES)) and world.visual.dtype == np.float32
    assert world.visual.min() >= 0 and world.visual.max() <= 1
    for flags in (world.comments_closed, world.removed):
        assert flags.dtype == bool and flags.shape == (n,) and 0 < flags.sum() < 0.05 * n
    assert len(CHANNELS) == 23 and len(TAGS) == 118 and len(set(TAG_CHANNEL.values())) == 23


def test_world_events_fields_and_counts(world):
    ev = world.events
    assert ev.schema.names == ["platform_video_id", "mid", "mid_hash", "timestamp", "source"]
    assert ev.schema.field("mid").type == pa.int64() and ev.schema.field("timestamp").type == pa.int64()
    df = _frame(world)
    assert df["video"].notna().all()
    assert set(df["source"]) == {"comment", "danmaku"}
    assert 0.1 < (df["source"] == "danmaku").mean() < 0.4
    pairs = df[["mid", "mid_hash"]].drop_duplicates()
    assert all(mid_hash(m) == h for m, h in zip(pairs["mid"], pairs["mid_hash"]))
    assert (np.diff(df["timestamp"].to_numpy()) >= 0).all()  # sorted by time first
    mids = np.sort(world.mids)
    assert np.unique(mids).size == 3000 and (np.diff(mids) != 1).mean() > 0.99  # not sequential
    videos = world.videos.to_pandas()
    comments = df[df.source == "comment"].groupby("video").size().reindex(range(len(videos)), fill_value=0)
    danmaku = df[df.source == "danmaku"].groupby("video").size().reindex(range(len(videos)), fill_value=0)
    assert (videos["comment_number"] >= comments.to_numpy()).all()
    assert (videos["barrage_number"] >= danmaku.to_numpy()).all()
    assert (videos["view_number"] >= videos["comment_number"]).all()
    first = df.groupby("video")["timestamp"].min()
    assert (videos.loc[first.index, "release_time"].to_numpy() <= first.to_numpy()).all()


def test_world_is_deterministic_and_seeded():
    a, b, c = generate_world(3, 500, 300), generate_world(3, 500, 300), generate_world(4, 500, 300)
    assert a.videos.equals(b.videos) and a.events.equals(b.events) and np.array_equal(a.visual, b.visual)
    assert not a.events.equals(c.events)


def test_shape_of_the_data(big_world):
    df = _frame(big_world).drop_duplicates(["mid", "video"])
    per_user = df.groupby("mid").size().reindex(big_world.mids, fill_value=0)
    assert 5.5 < per_user.mean() < 7.5            # paper: 6.6 over all users
    assert 0.5 < (per_user < 5).mean() < 0.85     # many users under 5
    eligible = per_user[per_user >= 5]
    assert 0.4 < ((eligible >= 10) & (eligible <= 20)).mean() < 0.65  # Figure 6b: half in 10-20
    assert per_user.max() > 80                    # a long tail of heavy users
    per_video = df.groupby("video").size()
    assert per_video.max() > 5 * per_video.mean() and per_video.min() <= 2  # head and cold tail
    top = np.sort(per_video.to_numpy())[::-1]
    assert top[: len(top) // 10].sum() > 0.2 * top.sum()
    everything = _frame(big_world)
    assert everything.duplicated(["mid", "video"]).mean() > 0.03  # repeat comments
    assert df.duplicated(["mid", "timestamp"]).mean() > 0.01     # same-second ties
    assert big_world.videos["tag"].to_pandas().nunique() == 118
    assert big_world.videos["channel"].to_pandas().nunique() == 23


def test_covers_and_sequences_carry_signal(big_world):
    # a nearest-centroid rule on cover features recovers the latent topic
    topic, visual = big_world.topic, big_world.visual.astype(np.float64)
    feats = np.c_[np.cos(2 * np.pi * visual[:, 0]), np.sin(2 * np.pi * visual[:, 0]), visual[:, 1:7]]
    centroids = np.stack([feats[topic == k].mean(0) for k in range(topic.max() + 1)])
    guess = np.argmin(((feats[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (guess == topic).mean() > 0.8
    # consecutive choices of a user stay in a topic far more often than chance
    df = _frame(big_world).sort_values(["mid", "timestamp"], kind="stable")
    t = topic[df["video"].to_numpy()]
    same_user = df["mid"].to_numpy()[1:] == df["mid"].to_numpy()[:-1]
    stay = (t[1:] == t[:-1])[same_user].mean()
    chance = (np.bincount(t) / t.size) @ (np.bincount(t) / t.size)
    assert stay > 3 * chance


def _sorted(table: pa.Table):
    return table.sort_by([(c, "ascending") for c in table.column_names])


def _crawl_of(world: World, key: bytes) -> pa.Table:
    """What raw/interactions must hold: the world's events a crawl sees, keyed."""
    df = _frame(world)
    micro = world.videos["duration_s"].to_numpy() < 600
    keep = (micro & ~world.removed)[df["video"]] & ~(
        world.comments_closed[df["video"]] & (df["source"] == "comment").to_numpy())
    df = df[keep]
    keys = [user_key_for_mid(key, m) if s == "comment" else user_key_for_midhash(key, h)
            for m, h, s in zip(df["mid"], df["mid_hash"], df["source"])]
    return pa.table({"platform_video_id": pa.array(df["platform_video_id"].tolist(), pa.string()),
                     "user_key": pa.array(keys, pa.uint64()),
                     "timestamp": pa.array(df["timestamp"].to_numpy(), pa.int64()),
                     "source": pa.array(df["source"].tolist(), pa.string())})


def _read_dir(folder: Path, name: str) -> pa.Table:
    parts = sorted(folder.glob("part-*.parquet"))
    assert parts
    return pa.concat_tables([read_table(p, name) for p in parts])


def test_write_raw_is_a_crawl_of_the_world_in_any_chunking(tmp_path):
    world = generate_world(5, 3000, 600, interactions=25000)
    one = write_raw(tmp_path / "one", seed=5, users=3000, videos=600, interactions=25000, key=KEY)
    many = write_raw(tmp_path / "many", seed=5, users=3000, videos=600, interactions=25000, key=KEY,
                     chunk_users=700)
    assert many["interaction_shards"] == 5 and one["interaction_shards"] == 1
    a = _read_dir(tmp_path / "one" / "interactions", "raw_interactions")
    b = _read_dir(tmp_path / "many" / "interactions", "raw_interactions")
    assert _sorted(a).equals(_sorted(b))
    assert _sorted(a).equals(_sorted(_crawl_of(world, KEY)))
    assert one["interactions_written"] == a.num_rows
    videos = _read_dir(tmp_path / "one" / "videos", "raw_videos")
    assert _read_dir(tmp_path / "many" / "videos", "raw_videos").equals(videos)
    wv = world.videos.to_pandas()
    kept = wv[(wv.duration_s < 600) & ~world.removed].reset_index(drop=True)
    got = videos.to_pandas()
    assert got.drop(columns=["cover_url", "crawled_at"]).equals(kept.drop(columns=["cover_url", "crawled_at"]))
    assert got["cover_url"].tolist() == [COVER_URL.format(h) for h in kept["cover_url"]]
    assert (got["crawled_at"] > got["release_time"]).all() and (got["duration_s"] < 600).all()
    assert set(a["platform_video_id"].to_pylist()) <= set(got["platform_video_id"])


def test_join_danmaku_keys_commenters_by_midhash(tmp_path):
    world = generate_world(6, 400, 100)
    write_raw(tmp_path / "raw", seed=6, users=400, videos=100, key=KEY, join_danmaku=True)
    keys = set(_read_dir(tmp_path / "raw" / "interactions", "raw_interactions")["user_key"].to_pylist())
    by_midhash = {user_key_for_midhash(KEY, mid_hash(m)) for m in world.mids.tolist()}
    assert keys and keys <= by_midhash


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_write_raw_is_byte_identical_and_private(tmp_path):
    args = dict(seed=9, users=2500, videos=400, interactions=30000, key=KEY, chunk_users=1000)
    first = write_raw(tmp_path / "a", **args)
    write_raw(tmp_path / "b", **args)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert 0.85 * 30000 < first["interactions_written"] < 1.15 * 30000
    # no mid and no mid_hash value anywhere in raw/: compare every cell of every file
    from pixelrec_data.synthetic.events import user_mids
    mids = user_mids(9, np.arange(2500))
    secrets = {str(m) for m in mids.tolist()} | {mid_hash(m) for m in mids.tolist()}
    ints = set(mids.tolist())
    for path in (tmp_path / "a").rglob("*.parquet"):
        table = pq.read_table(path)
        for name in table.column_names:
            values = table[name].to_pylist()
            if pa.types.is_string(table.schema.field(name).type):
                assert not secrets & set(values), (path, name)
        if "user_key" in table.column_names:
            assert not ints & set(table["user_key"].to_pylist())
            assert table.column_names == ["platform_video_id", "user_key", "timestamp", "source"]
    text = (tmp_path / "a" / "crawl_stats.json").read_text()
    assert not any(s in text for s in secrets if len(s) > 5)


def test_hot_video_goes_over_the_cap(tmp_path):
    write_raw(tmp_path / "raw", seed=2, users=7500, videos=300, key=KEY, hot_videos=1)
    inter = _read_dir(tmp_path / "raw" / "interactions", "raw_interactions").to_pandas()
    per_video = inter.groupby("platform_video_id")["user_key"].nunique()
    assert per_video.max() > 6500


@pytest.mark.parametrize("key", [KEY, b"short-key-16byte", bytes(range(100))])
def test_batched_user_keys_follow_the_key_contract(key):
    from pixelrec_data.synthetic.world import _user_keys
    mids = np.array([1, 616368979, 2**32, 123456789012], dtype=np.int64)
    assert _user_keys(key, mids, False).tolist() == [user_key_for_mid(key, m) for m in mids.tolist()]
    assert _user_keys(key, mids, True).tolist() == [user_key_for_midhash(key, mid_hash(m)) for m in mids.tolist()]


def test_bad_arguments():
    with pytest.raises(InputError, match="unknown world knob"):
        generate_world(1, 10, 10, no_such_knob=3)
    with pytest.raises(InputError, match="mean interactions"):
        generate_world(1, 10, 10, mean_interactions_per_user=0.5)
    with pytest.raises(InputError):
        generate_world(1, 0, 10)
    with pytest.raises(InputError, match="between 0 and 1"):
        generate_world(1, 10, 10, danmaku_share=1.5)
    with pytest.raises(InputError, match="not a int"):
        generate_world(1, 10, 10, topics="many")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pixelrec_data.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_generate_raw_command(tmp_path):
    raw, key = tmp_path / "raw", tmp_path / "key"
    common = ["generate-raw", "--out", str(raw), "--key-file", str(key), "--seed", "3",
              "--users", "800", "--videos", "200"]
    ok = _cli(*common)
    assert ok.returncode == 0, ok.stderr
    assert "interactions" in ok.stdout and key.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in raw.iterdir()) == ["crawl_stats.json", "interactions", "videos"]
    before = _digests(raw)
    refused = _cli(*common)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--overwrite" in refused.stderr
    again = _cli(*common, "--overwrite")
    assert again.returncode == 0 and _digests(raw) == before
    inside = _cli("generate-raw", "--out", str(raw), "--key-file", str(raw / "k"), "--users", "5",
                  "--videos", "5", "--overwrite")
    assert inside.returncode == 2 and "outside" in inside.stderr and "Traceback" not in inside.stderr
    too_few = _cli("generate-raw", "--out", str(tmp_path / "x"), "--key-file", str(key), "--users", "100",
                   "--videos", "5", "--interactions", "10")
    assert too_few.returncode == 2 and "Traceback" not in too_few.stderr
    assert not (tmp_path / "x").exists()
