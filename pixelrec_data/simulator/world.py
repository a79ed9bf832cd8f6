"""The simulator's read-only index over a synthetic World: everything a request needs, precomputed.

Built once at startup (vectorised, a second or two for thousands of videos and a million events):
id lookups, per-channel listings, comments per video newest first (the reply pages), danmaku per video
oldest first (the list.so pool), and a few deterministic platform-side ids (rpid, dmid, owner mid).
Each video's comment threads (roots and nested replies) are built on its first request and cached.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import COUNT_COLUMNS
from .channels import MAIN_RID, channel_rids
from .faults import unit_draw
from .threads import Threads, build_threads

DM_MAXLIMITS = (500, 1000, 1500, 3000, 6000, 8000)  # the pool sizes the platform uses
RPID_BASE = 100_000_000_000
DMID_BASE = 29_000_000_000_000_000


def cover_hash(value: str) -> str:
    """The 40-hex cover hash, whether the world holds the bare hash or a full cover URL."""
    return str(value).rsplit("/", 1)[-1].split("@", 1)[0].split(".", 1)[0]


@dataclass
class Events:
    """One source's events grouped by video: rows of video i are start[i]:start[i+1]."""
    start: np.ndarray
    mid: np.ndarray
    mid_hash: np.ndarray  # object array of str
    timestamp: np.ndarray
    ident: np.ndarray     # rpid (comments) or dmid (danmaku)

    def rows(self, i: int) -> slice:
        return slice(int(self.start[i]), int(self.start[i + 1]))


class SimWorld:
    def __init__(self, world, seed: int):
        self.seed = int(seed)
        self.world = world
        videos = world.videos
        self.n = videos.num_rows
        self.cols = {name: videos.column(name).to_pylist() for name in videos.column_names}
        self.cols["cover_url"] = [cover_hash(v) for v in self.cols["cover_url"]]
        self.cid = np.asarray(world.cid, dtype=np.int64)
        self.visual = np.asarray(world.visual, dtype=np.float32)
        self.comments_closed = np.asarray(world.comments_closed, dtype=bool)
        self.removed = np.asarray(world.removed, dtype=bool)
        self.by_aid = {int(a): i for i, a in enumerate(self.cols["aid"])}
        self.by_bvid = {b: i for i, b in enumerate(self.cols["platform_video_id"])}
        self.by_cid = {int(c): i for i, c in enumerate(self.cid)}
        self.by_cover = {h: i for i, h in enumerate(self.cols["cover_url"])}
        self.rid_of_channel = channel_rids(self.cols["channel"])
        self.listing = self._listings()
        self.comments, self.danmaku = self._group_events(world.events)
        # per world, not per class: a class-level cache would keep every world ever built alive
        self.threads = functools.lru_cache(maxsize=16384)(self._threads)
        self.related = functools.lru_cache(maxsize=4096)(self._related)

    # -- listings -------------------------------------------------------------------------------
    def _listings(self) -> dict[int, np.ndarray]:
        """rid -> video indices, newest first (pubdate desc, then aid desc), as dynamic/region pages."""
        release = np.asarray(self.cols["release_time"], dtype=np.int64)
        aid = np.asarray(self.cols["aid"], dtype=np.int64)
        order = np.lexsort((-aid, -release))
        rids = np.asarray([self.rid_of_channel[c] for c in self.cols["channel"]], dtype=np.int64)
        listing = {int(rid): order[rids[order] == rid] for rid in np.unique(rids)}
        listing[MAIN_RID] = order  # the main channel lists every video
        return listing

    def rid(self, i: int) -> int:
        return self.rid_of_channel[self.cols["channel"][i]]

    # -- events ---------------------------------------------------------------------------------
    def _group_events(self, events: pa.Table) -> tuple[Events, Events]:
        video = pc.index_in(events.column("platform_video_id"),
                            value_set=pa.array(self.cols["platform_video_id"], pa.string()))
        video = video.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        source = events.column("source").to_numpy(zero_copy_only=False)
        mid = events.column("mid").to_numpy(zero_copy_only=False).astype(np.int64)
        mid_hash = np.asarray(events.column("mid_hash").to_pylist(), dtype=object)
        timestamp = events.column("timestamp").to_numpy(zero_copy_only=False).astype(np.int64)
        known = video >= 0
        comments = self._group(known & (source == "comment"), video, mid, mid_hash, timestamp,
                               newest_first=True, base=RPID_BASE)
        danmaku = self._group(known & (source == "danmaku"), video, mid, mid_hash, timestamp,
                              newest_first=False, base=DMID_BASE)
        return comments, danmaku

    def _group(self, mask, video, mid, mid_hash, timestamp, newest_first: bool, base: int) -> Events:
        video, mid, mid_hash, timestamp = video[mask], mid[mask], mid_hash[mask], timestamp[mask]
        # Platform ids grow with time over the whole site (like real rpids/dmids).
        by_time = np.lexsort((mid, video, timestamp))
        ident = np.empty(len(video), dtype=np.int64)
        ident[by_time] = base + np.arange(len(video), dtype=np.int64) * 7
        sign = -1 if newest_first else 1
        order = np.lexsort((sign * ident, video))
        start = np.searchsorted(video[order], np.arange(self.n + 1))
        return Events(start=start, mid=mid[order], mid_hash=mid_hash[order],
                      timestamp=timestamp[order], ident=ident[order])

    # -- per-video derived values ---------------------------------------------------------------
    def owner_mid(self, i: int) -> int:
        return 1_000_000 + int(unit_draw(self.seed, "owner", self.cols["aid"][i]) * 2_000_000_000)

    def _threads(self, i: int) -> Threads:
        """Video i's comments as roots and nested replies (threads.py); self.threads caches it."""
        rows = self.comments.rows(i)
        return build_threads(self.comments.ident[rows], self.seed, int(self.cols["aid"][i]), rows.start)

    def dm_pool(self, i: int) -> tuple[slice, int]:
        """The current danmaku pool (newest `maxlimit` events) and maxlimit, as list.so serves it."""
        rows = self.danmaku.rows(i)
        count = rows.stop - rows.start
        maxlimit = next((m for m in DM_MAXLIMITS if m >= count), DM_MAXLIMITS[-1])
        return slice(max(rows.start, rows.stop - maxlimit), rows.stop), maxlimit

    def error_code(self, i: int) -> int | None:
        """-404 or 62002 for a removed video (fixed per video), else None."""
        if not self.removed[i]:
            return None
        return -404 if unit_draw(self.seed, "removed", self.cols["aid"][i]) < 0.5 else 62002

    def counts(self, i: int) -> dict[str, int]:
        return {name: int(self.cols[name][i] or 0) for name in COUNT_COLUMNS}

    def _related(self, i: int) -> tuple[int, ...]:
        """1-40 visible videos, deterministic: the world's own related videos first (users follow
        them), then same tag, same channel, any."""
        rng = np.random.default_rng([self.seed, 77, int(self.cols["aid"][i])])
        k = int(rng.integers(1, 41))
        own = getattr(self.world, "related", None)
        own = [int(j) for j in own[i]] if own is not None else []
        tag, channel = self.cols["tag"][i], self.cols["channel"][i]
        tiers = [own, [], [], []]
        for j in rng.permutation(self.n)[: max(400, 8 * k)]:
            tier = 1 if self.cols["tag"][j] == tag else 2 if self.cols["channel"][j] == channel else 3
            tiers[tier].append(int(j))
        picked = []
        for j in tiers[0] + tiers[1] + tiers[2] + tiers[3]:
            if j != i and not self.removed[j] and j not in picked:
                picked.append(j)
        k = max(k, len([j for j in own if j != i and not self.removed[j]]))
        return tuple(picked[: min(40, k)])

    def lookup(self, aid=None, bvid=None) -> int | None:
        if bvid:
            return self.by_bvid.get(bvid)
        if aid is not None:
            return self.by_aid.get(aid)
        return None
