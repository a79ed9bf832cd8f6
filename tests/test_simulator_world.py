"""A tiny hand-made world with the synthetic World's shape, and tests of the simulator's index over it."""
from __future__ import annotations

import hashlib
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from schemas.tables import COUNT_COLUMNS, RAW_VIDEOS
from pixelrec_data.simulator.world import SimWorld

CHANNELS = ["动画", "音乐", "游戏", "main"]
TAGS = ["cats", "drums", "speedrun", "cooking,food"]


@dataclass
class TinyWorld:
    videos: pa.Table
    visual: np.ndarray
    events: pa.Table
    cid: np.ndarray
    comments_closed: np.ndarray
    removed: np.ndarray


def _bvid(n: int) -> str:
    alphabet = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
    chars = []
    for _ in range(9):
        n, r = divmod(n, 58)
        chars.append(alphabet[r])
    return "BV1" + "".join(chars)


def tiny_world(seed: int = 3, users: int = 60, videos: int = 12, big_video_comments: int = 45) -> TinyWorld:
    """Videos with a long one, a removed one, one with closed comments and one with many comments."""
    rng = np.random.default_rng(seed)
    aid = 10_000 + np.arange(videos, dtype=np.int64) * 37
    cols = {
        "platform_video_id": [_bvid(int(a) * 7919) for a in aid],
        "aid": aid,
        "title": [f"video {k}" for k in range(videos)],
        "description": [f"line one\nline two of {k}" for k in range(videos)],
        "tag": [TAGS[k % len(TAGS)] for k in range(videos)],
        "channel": [CHANNELS[k % len(CHANNELS)] for k in range(videos)],
        "cover_url": [hashlib.sha1(f"cover{seed}-{k}".encode()).hexdigest() for k in range(videos)],
        **{c: rng.integers(0, 10_000, videos) for c in COUNT_COLUMNS},
        "release_time": 1_600_000_000 + rng.integers(0, 10**7, videos),
        "duration_s": np.where(np.arange(videos) == 1, 900, 30 + rng.integers(0, 500, videos)).astype(np.int32),
        "crawled_at": np.zeros(videos, np.int64),
    }
    table = pa.table(cols, schema=RAW_VIDEOS)
    mids = 1_000 + rng.choice(10**8, users, replace=False).astype(np.int64)
    rows = []
    for k, bvid in enumerate(cols["platform_video_id"]):
        n_comments = big_video_comments if k == 0 else int(rng.integers(0, 8))
        n_danmaku = 9 if k == 0 else int(rng.integers(0, 6))
        for source, n in (("comment", n_comments), ("danmaku", n_danmaku)):
            for mid in rng.choice(mids, n, replace=n > users):
                rows.append((bvid, int(mid), format(zlib.crc32(str(int(mid)).encode()), "x"),
                             int(cols["release_time"][k] + rng.integers(1, 10**6)), source))
    events = pa.table({name: [r[j] for r in rows] for j, name in
                       enumerate(["platform_video_id", "mid", "mid_hash", "timestamp", "source"])},
                      schema=pa.schema([("platform_video_id", pa.string()), ("mid", pa.int64()),
                                        ("mid_hash", pa.string()), ("timestamp", pa.int64()),
                                        ("source", pa.string())]))
    flags = np.zeros(videos, bool)
    closed, removed = flags.copy(), flags.copy()
    closed[2], removed[3] = True, True
    return TinyWorld(videos=table, visual=rng.random((videos, 9)).astype(np.float32), events=events,
                     cid=200_000 + aid * 3, comments_closed=closed, removed=removed)


@contextmanager
def tiny_simulator(**options):
    """A real simulator (a server thread) serving tiny_world(), with start_simulator's `options`
    (rate, faults, ...): yields (base URL, world), stops it after."""
    from pixelrec_data.simulator import start_simulator

    world = tiny_world()
    url, stop = start_simulator(seed=3, world=world, **options)
    try:
        yield url, world
    finally:
        stop()


@pytest.fixture(scope="module")
def indexed():
    world = tiny_world()
    return world, SimWorld(world, seed=3)


def test_events_grouped_per_video_and_ordered(indexed):
    world, sim = indexed
    events = world.events.to_pylist()
    for i, bvid in enumerate(sim.cols["platform_video_id"]):
        for source, group, newest_first in (("comment", sim.comments, True), ("danmaku", sim.danmaku, False)):
            want = sorted((e["mid"], e["timestamp"]) for e in events
                          if e["platform_video_id"] == bvid and e["source"] == source)
            rows = group.rows(i)
            got = sorted(zip(group.mid[rows].tolist(), group.timestamp[rows].tolist()))
            assert got == want
            stamps = group.timestamp[rows].tolist()
            assert stamps == sorted(stamps, reverse=newest_first)


def test_threads_split_each_videos_comments_into_roots_and_later_replies(indexed):
    world, sim = indexed
    again, other = SimWorld(world, seed=3), SimWorld(world, seed=4)
    c, differs = sim.comments, 0
    for i in range(world.videos.num_rows):
        threads, rows = sim.threads(i), sim.comments.rows(i)
        assert sorted(threads.roots.tolist() + threads.replies.tolist()) == list(range(rows.start, rows.stop))
        assert threads.root_rpid.tolist() == sorted(c.ident[threads.roots].tolist(), reverse=True)
        for k in range(len(threads.roots)):
            replies = threads.replies[threads.start[k]:threads.start[k + 1]]
            assert (c.timestamp[replies] >= c.timestamp[threads.roots[k]]).all()
            assert c.ident[replies].tolist() == sorted(c.ident[replies].tolist())
            assert threads.find_root(int(threads.root_rpid[k])) == k
        assert all(threads.find_root(int(r)) is None for r in c.ident[threads.replies])
        assert threads.replies.tolist() == again.threads(i).replies.tolist()
        differs += threads.replies.tolist() != other.threads(i).replies.tolist()
    assert differs > 0 and sim.threads(0).total == 45


def test_listing_covers_every_video_once(indexed):
    world, sim = indexed
    listed = np.concatenate([rows for rid, rows in sim.listing.items() if rid != 0])
    assert sorted(listed.tolist()) == list(range(world.videos.num_rows))
    assert len(set(sim.rid_of_channel.values())) == len(CHANNELS)
    assert sorted(sim.listing[0].tolist()) == list(range(world.videos.num_rows))  # main channel: all
    assert sim.rid_of_channel["音乐"] == 3  # a channel named like a platform zone keeps its rid


def test_related_is_deterministic_and_bounded(indexed):
    world, sim = indexed
    again = SimWorld(world, seed=3)
    for i in range(world.videos.num_rows):
        related = sim.related(i)
        assert related == again.related(i)
        assert 1 <= len(related) <= 40 and i not in related
        assert not any(world.removed[j] for j in related)


def http_get(url: str, timeout: float = 10.0):
    """(status, headers, body) of a GET, whatever the status; body stays as sent (no decompression)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def get_json(url: str):
    import json
    status, _, body = http_get(url)
    return status, json.loads(body)
