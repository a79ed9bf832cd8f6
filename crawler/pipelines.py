"""Item pipelines: keyed hashing of user ids, and Parquet shards committed whole videos at a time.

Anonymizer turns a mid / midHash into `user_key` (schemas.keys). The spider calls it the moment a
response is parsed, so no platform id is ever kept in a request (which Scrapy may serialise to
disk or to Redis), in an item or in a file.

ShardPipeline buffers finished videos in memory and writes them as one videos shard and one
interactions shard (rolled by size, each written atomically), then appends a commit record to the
worker's journal (crawler/state.py). A video therefore reaches raw/ whole or not at all.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import pyarrow as pa

from schemas.io import write_table
from schemas.tables import RAW_VIDEOS
from schemas.keys import user_key_for_mid, user_key_for_midhash

from .items import ListingPage, VideoDone
from .state import Worker

ROW_BYTES = 48  # rough in-memory size of one event row, for rolling shards by size


class Anonymizer:
    """mid / midHash -> user_key. The same users comment on many videos: each id is hashed once
    (a bounded in-memory cache, never written anywhere)."""

    CACHE_SIZE = 1 << 20

    def __init__(self, key: bytes, join_danmaku: bool):
        self._key = key
        self._join = join_danmaku
        self.commenter = functools.lru_cache(self.CACHE_SIZE)(self._commenter)
        self.danmaku_sender = functools.lru_cache(self.CACHE_SIZE)(self._danmaku_sender)

    def _commenter(self, mid: int) -> int:
        return user_key_for_mid(self._key, mid, join_danmaku=self._join)

    def _danmaku_sender(self, midhash: str) -> int:
        return user_key_for_midhash(self._key, midhash)


class ShardPipeline:
    def __init__(self, worker: Worker, shard_bytes: int, flush_seconds: float, claim=None,
                 progress=None):
        self.worker = worker
        self.shard_bytes = max(1, shard_bytes)
        self.flush_seconds = flush_seconds
        self.claim = claim            # redis mode: a callable aid -> bool (False: done elsewhere)
        self.progress = progress      # a callable (kept: bool, events: int), or None
        self._videos, self._events = [], []
        self._kept, self._rejected, self._related = [], [], []
        self._last_flush = time.monotonic()
        self.committed_videos = 0
        self.committed_events = 0

    @classmethod
    def from_crawler(cls, crawler):
        runtime = crawler.settings.get("PIXELREC_RUNTIME")
        return cls(runtime.worker, crawler.settings.getint("PIXELREC_SHARD_BYTES"),
                   crawler.settings.getfloat("PIXELREC_FLUSH_SECONDS"), runtime.claim,
                   runtime.progress)

    def process_item(self, item):
        if isinstance(item, ListingPage):
            self.worker.append({"t": "listing", "rid": item["rid"], "pn": item["pn"],
                                "count": item["count"], "found": list(item["found"])},
                               durable=False)
        elif isinstance(item, VideoDone):
            self._add_video(item)
            if self.progress is not None:
                self.progress(item["row"] is not None, len(item["events"]))
            if self._due():
                self.flush()
        return item

    def _add_video(self, item: VideoDone) -> None:
        if self.claim is not None and not self.claim(item["aid"]):
            return  # another worker finished the same video (a resumed Redis crawl)
        self._related.extend(item["related"])
        if item["row"] is None:
            self._rejected.append(item["aid"])
            return
        self._kept.append(item["aid"])
        self._videos.append(item["row"])
        video_id = item["row"]["platform_video_id"]
        self._events.extend((video_id, uk, ts, src) for uk, ts, src in item["events"])

    def _due(self) -> bool:
        size = len(self._events) * ROW_BYTES + len(self._videos) * 1024
        return size >= self.shard_bytes or (
            time.monotonic() - self._last_flush >= self.flush_seconds)

    def flush(self) -> None:
        """Write the buffered videos as shards, then commit them in the journal."""
        self._last_flush = time.monotonic()
        if not (self._kept or self._rejected):
            return
        seq = None
        if self._videos:
            seq = self.worker.next_seq
            name = self.worker.shard_name(seq)
            write_table(_events_table(self._events), self.worker.out_dir / "interactions" / name,
                        "raw_interactions")
            write_table(pa.Table.from_pylist(self._videos, schema=RAW_VIDEOS),
                        self.worker.out_dir / "videos" / name, "raw_videos")
        self.worker.append({"t": "commit", "seq": seq, "kept": self._kept,
                            "rejected": self._rejected, "related": sorted(set(self._related)),
                            "events": len(self._events)})
        if seq is not None:
            self.worker.next_seq = seq + 1
        self.committed_videos += len(self._kept)
        self.committed_events += len(self._events)
        self._videos, self._events = [], []
        self._kept, self._rejected, self._related = [], [], []

    def close_spider(self):
        self.flush()


def _events_table(events: list) -> pa.Table:
    columns = list(zip(*events)) if events else [[], [], [], []]
    return pa.table({
        "platform_video_id": pa.array(columns[0], pa.string()),
        "user_key": pa.array(columns[1], pa.uint64()),
        "timestamp": pa.array(columns[2], pa.int64()),
        "source": pa.array(columns[3], pa.string()),
    })


def output_dirs(out_dir: Path) -> None:
    for name in ("videos", "interactions", "state"):
        (Path(out_dir) / name).mkdir(parents=True, exist_ok=True)
