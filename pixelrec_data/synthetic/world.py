"""The synthetic world of the PixelRec toolkit, and raw/ generated from it as a crawl would.

generate_world() returns a whole world in memory (videos, cover features, every comment and
danmaku event with the platform user ids): the simulator serves it. write_raw() writes raw/
(the crawler's output layout) as a crawl of that same world would, in chunks of users, so the full PixelRec size
(30M users, 196M interactions) fits in a few GB. Both are deterministic from the seed and
vectorised (see videos.py and events.py for the model); the only per-user Python
loop is the keyed hash of the user id (HMAC-SHA256, the privacy contract of schemas.keys).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.errors import InputError
from schemas.atomic import atomic_dir
from schemas.io import write_table
from schemas.keys import mid_hash
from ..progress import bar
from .events import Events, SessionShape, generate_events, session_shape, user_mids
from .videos import VideoPlan, VideoStats, plan_videos, videos_table

COVER_URL = "https://i0.hdslb.com/bfs/archive/{}.jpg"
DEFAULT_MEAN = 6.6  # PixelRec: 195,755,320 interactions over 29,845,039 users


@dataclass(frozen=True)
class WorldParams:
    """Knobs of the world (keyword arguments of generate_world / write_raw)."""
    users: int = 1000
    topics: int = 22                 # latent topics (cover prototypes, user tastes), one per vertical
    popularity_sigma: float = 0.64   # log-normal spread of video popularity (Figure 6a)
    appeal_strength: float = 0.8     # log-popularity gain per unit of cover saturation
    long_fraction: float = 0.10      # videos of 10 minutes or more (the crawler drops them)
    removed_fraction: float = 0.01   # videos answering -404 / 62002
    closed_fraction: float = 0.015   # videos whose comments are closed (12002)
    main_channel_fraction: float = 0.06
    danmaku_share: float = 0.25      # share of events sent as danmaku
    repeat_rate: float = 0.06        # events repeated later by the same user on the same video
    follow_rate: float = 0.2         # choices that follow a related video of the previous one
    related_per_video: int = 5
    segment_mean: float = 4.0        # mean run of choices inside one topic
    tie_rate: float = 0.08           # in-segment gaps of 0 s (same-second events)
    hot_videos: int = 0              # force this many videos above the cap (needs users >= ~7000)
    hot_video_users: int = 7000      # expected audience of each hot video
    start_time: int = 1559347200     # 2019-06-01: first event time
    end_time: int = 1640995200       # 2022-01-01: last event time (about)
    crawl_time: int = 1641600000     # 2022-01-08: crawled_at of raw videos starts here


@dataclass
class World:
    videos: pa.Table             # RAW_VIDEOS columns; cover_url = 40-hex hash; crawled_at = 0
    visual: np.ndarray           # float32 [n_videos, len(VISUAL_FEATURES)] in [0, 1]
    events: pa.Table             # platform_video_id, mid, mid_hash, timestamp, source (sorted)
    cid: np.ndarray              # int64 per video, unique (danmaku pool id)
    comments_closed: np.ndarray  # bool per video (the reply API answers 12002)
    removed: np.ndarray          # bool per video (the view API answers -404 / 62002)
    topic: np.ndarray = field(default=None)     # int32 per video: latent topic (ground truth)
    related: np.ndarray = field(default=None)   # int32 [n_videos, R]: related video indices
    popularity: np.ndarray = field(default=None)  # float64 per video: popularity weight
    mids: np.ndarray = field(default=None)      # int64 per user index
    params: WorldParams = field(default=None)


def make_params(users: int, knobs: dict) -> WorldParams:
    names = {f.name for f in dataclasses.fields(WorldParams)} - {"users"}
    unknown = sorted(set(knobs) - names)
    if unknown:
        raise InputError(f"unknown world knob(s): {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    defaults = WorldParams()
    values = {}
    for name, value in knobs.items():
        kind = type(getattr(defaults, name))
        try:
            values[name] = kind(value)
        except (TypeError, ValueError):
            raise InputError(f"world knob {name}: {value!r} is not a {kind.__name__}") from None
        if name.endswith(("_fraction", "_share", "_rate")) and not 0 <= values[name] <= 1:
            raise InputError(f"world knob {name}: {value!r} is not between 0 and 1")
    p = WorldParams(users=int(users), **values)
    if p.topics < 1 or p.related_per_video < 1 or p.segment_mean < 1 or p.hot_videos < 0:
        raise InputError("world knobs topics, related_per_video and segment_mean must be at least 1, "
                         "hot_videos at least 0")
    return p


def _check_sizes(users: int, videos: int) -> None:
    if users < 1 or videos < 2:
        raise InputError(f"need at least 1 user and 2 videos (got users={users}, videos={videos})")
    if users > 2**32 - 1 or videos > 2**30 - 10_000_000:
        raise InputError(f"too large: users={users}, videos={videos}")


def _shape(mean: float) -> SessionShape:
    if not 2.0 <= mean <= 1000:
        raise InputError(f"mean interactions per user must be between 2 and 1000 (got {mean:.3g}); "
                         f"pass more interactions or fewer users")
    return session_shape(mean)


def generate_world(seed: int, users: int, videos: int, *, mean_interactions_per_user: float = DEFAULT_MEAN,
                   interactions: int | None = None, **knobs) -> World:
    """The whole world in memory (simulator sizes: thousands to a few million events).

    mean_interactions_per_user counts choices over all videos (long and removed ones too);
    `interactions`, when given, replaces it as in write_raw (about that many rows in a crawl), so
    generate_world(s, u, v, interactions=n) is the world that write_raw(..., interactions=n) crawls.
    """
    _check_sizes(users, videos)
    p = make_params(users, knobs)
    plan = plan_videos(seed, videos, p)
    if interactions is not None:
        mean_interactions_per_user = mean_for_interactions(interactions, users, plan, p)
    events, _ = generate_events(seed, 0, users, 0, plan, _shape(mean_interactions_per_user), p)
    stats = VideoStats.empty(videos)
    stats.add(events.video, events.timestamp, events.danmaku)
    return World(
        videos=videos_table(seed, plan, stats, p), visual=plan.visual,
        events=_events_table(seed, events, plan), cid=plan.cid,
        comments_closed=plan.comments_closed, removed=plan.removed, topic=plan.topic,
        related=plan.related, popularity=plan.weight, mids=user_mids(seed, np.arange(users)), params=p)


def _events_table(seed: int, events: Events, plan: VideoPlan) -> pa.Table:
    mids = user_mids(seed, events.user)
    order = np.lexsort((events.danmaku, events.video, mids, events.timestamp))
    uniq, inverse = np.unique(mids, return_inverse=True)
    hashes = np.asarray([mid_hash(m) for m in uniq.tolist()], dtype=object)
    return pa.table({
        "platform_video_id": pa.array(plan.bvid[events.video[order]], pa.string()),
        "mid": pa.array(mids[order], pa.int64()),
        "mid_hash": pa.array(hashes[inverse[order]], pa.string()),
        "timestamp": pa.array(events.timestamp[order], pa.int64()),
        "source": pa.array(np.where(events.danmaku[order], "danmaku", "comment"), pa.string()),
    })


def mean_for_interactions(interactions: int, users: int, plan: VideoPlan, p: WorldParams) -> float:
    """Choices per user that make a crawl of the world hold about `interactions` rows."""
    share = plan.weight / plan.weight.sum()
    crawled = plan.micro & ~plan.removed
    kept = np.where(crawled, np.where(plan.comments_closed, p.danmaku_share, 1.0), 0.0)
    hot = plan.hot.size * users * min(0.98, p.hot_video_users / max(users, 1))
    return (interactions - hot) / (users * float((share * kept).sum()) * (1 + p.repeat_rate))


def write_raw(out_dir, *, seed: int, users: int, videos: int, interactions: int | None = None,
              key: bytes, chunk_users: int = 1_000_000, overwrite: bool = False,
              join_danmaku: bool = False, **knobs) -> dict:
    """Write raw/ (videos + interactions shards + crawl_stats.json) as a crawl of the world would.

    Only micro-videos (< 600 s) that are not removed; comments of closed videos are omitted; each
    user id becomes user_key (schemas.keys) before anything is written; with join_danmaku,
    commenters are keyed through crc32(mid) like danmaku senders. Returns the counts.
    """
    _check_sizes(users, videos)
    if chunk_users < 1:
        raise InputError(f"chunk_users must be at least 1 (got {chunk_users})")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise InputError(f"{out_dir}: exists and is not an empty folder (pass --overwrite to replace it)")
    p = make_params(users, knobs)
    plan = plan_videos(seed, videos, p)
    mean = DEFAULT_MEAN if interactions is None else mean_for_interactions(interactions, users, plan, p)
    shape = _shape(mean)
    keep_video = plan.micro & ~plan.removed
    stats = VideoStats.empty(videos)
    bvid = pa.array(plan.bvid, pa.string())
    counts = {"comment_rows": 0, "danmaku_rows": 0, "world_events": 0, "shards": 0}
    with atomic_dir(out_dir) as tmp, bar(total=users, desc="generate raw", unit="user") as progress:
        first_event = 0
        for first_user in range(0, users, chunk_users):
            n_users = min(chunk_users, users - first_user)
            events, n_choices = generate_events(seed, first_user, n_users, first_event, plan, shape, p)
            first_event += n_choices
            stats.add(events.video, events.timestamp, events.danmaku)
            table, n_dm = _crawl_chunk(seed, events, first_user, n_users, plan, keep_video, key, bvid,
                                       join_danmaku)
            write_table(table, tmp / "interactions" / f"part-{counts['shards']:05d}.parquet",
                        "raw_interactions")
            counts["shards"] += 1
            counts["world_events"] += len(events)
            counts["danmaku_rows"] += n_dm
            counts["comment_rows"] += table.num_rows - n_dm
            progress.update(n_users)
        written = _write_videos(tmp, seed, plan, stats, p, keep_video)
        result = _crawl_stats(seed, users, videos, plan, stats, counts, written, keep_video)
        (tmp / "crawl_stats.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _crawl_chunk(seed, events: Events, first_user, n_users, plan, keep_video, key, bvid, join_danmaku):
    """Keep what a crawl sees of these events and replace each user id by its user_key."""
    kept = keep_video[events.video] & (events.danmaku | ~plan.comments_closed[events.video])
    local = events.user[kept] - first_user
    danmaku = events.danmaku[kept]
    mids = user_mids(seed, np.arange(first_user, first_user + n_users, dtype=np.int64))
    user_key = np.zeros(local.size, np.uint64)
    for is_dm in (False, True):
        rows = danmaku == is_dm
        who = np.flatnonzero(np.bincount(local[rows], minlength=n_users))
        keys = np.zeros(n_users, np.uint64)
        keys[who] = _user_keys(key, mids[who], is_dm or join_danmaku)
        user_key[rows] = keys[local[rows]]
    source = pa.DictionaryArray.from_arrays(pa.array(danmaku.astype(np.int8)),
                                            pa.array(["comment", "danmaku"]))
    return pa.table({
        "platform_video_id": bvid.take(pa.array(events.video[kept])),
        "user_key": pa.array(user_key, pa.uint64()),
        "timestamp": pa.array(events.timestamp[kept], pa.int64()),
        "source": source.cast(pa.string()),
    }), int(danmaku.sum())


def _user_keys(key: bytes, mids: np.ndarray, danmaku: bool) -> np.ndarray:
    """schemas.keys.user_key_for_mid / user_key_for_midhash, batched (checked equal in the tests).

    HMAC-SHA256 by hand from precomputed pad states (RFC 2104): 2.5x faster than hmac.digest per
    call, and this loop over users is the one per-user Python loop of the generator.
    """
    if danmaku:
        texts = [b"midhash:%x" % zlib.crc32(b"%d" % m) for m in mids.tolist()]
    else:
        texts = [b"mid:%d" % m for m in mids.tolist()]
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    out = bytearray()
    for text in texts:
        h = inner.copy()
        h.update(text)
        o = outer.copy()
        o.update(h.digest())
        out += o.digest()[:8]
    return np.frombuffer(bytes(out), dtype=">u8").astype(np.uint64)


def _write_videos(tmp: Path, seed, plan, stats, p, keep_video) -> int:
    table = videos_table(seed, plan, stats, p)
    idx = np.flatnonzero(keep_video)
    table = table.take(pa.array(idx))
    prefix, suffix = COVER_URL.split("{}")
    urls = np.char.add(np.char.add(prefix, plan.cover_hash[idx]), suffix)
    # the crawl visits the videos over three days after crawl_time
    crawled = p.crawl_time + (np.arange(idx.size, dtype=np.int64) * 3 * 86400) // max(idx.size, 1)
    table = table.set_column(table.schema.get_field_index("cover_url"), "cover_url", pa.array(urls, pa.string()))
    table = table.set_column(table.schema.get_field_index("crawled_at"), "crawled_at", pa.array(crawled, pa.int64()))
    write_table(table, tmp / "videos" / "part-00000.parquet", "raw_videos")
    return int(idx.size)


def _crawl_stats(seed, users, videos, plan: VideoPlan, stats: VideoStats, counts, written, keep_video) -> dict:
    per_video = stats.comment_events + stats.danmaku_events
    return {
        "generator": "pixelrec generate-raw (synthetic world)",
        "seed": int(seed),
        "users": int(users),
        "videos_in_world": int(videos),
        "videos_written": written,
        "videos_long_skipped": int((~plan.micro).sum()),
        "videos_removed": int(plan.removed.sum()),
        "videos_comments_closed": int((plan.comments_closed & keep_video).sum()),
        "world_events": counts["world_events"],
        "interactions_written": counts["comment_rows"] + counts["danmaku_rows"],
        "comment_rows": counts["comment_rows"],
        "danmaku_rows": counts["danmaku_rows"],
        "interaction_shards": counts["shards"],
        "max_events_per_video": int(per_video.max()) if per_video.size else 0,
    }
