"""The world's ground truth for tests: what a perfect crawl of the simulator would recover."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.atomic import atomic_path
from schemas.io import write_table
from schemas.tables import RAW_VIDEOS
from .world import cover_hash

TRUTH_EVENTS = pa.schema([
    ("platform_video_id", pa.string()), ("mid", pa.int64()), ("mid_hash", pa.string()),
    ("timestamp", pa.int64()), ("source", pa.string()),
])
TRUTH_STATUS = pa.schema([
    ("platform_video_id", pa.string()), ("removed", pa.bool_()), ("comments_closed", pa.bool_()),
])
COVER_HOST = "http://127.0.0.1"


def truth_videos(world) -> pa.Table:
    """RAW_VIDEOS for every video; cover_url as a full URL, crawled_at 0."""
    videos = world.videos.select(RAW_VIDEOS.names)
    hashes = [cover_hash(v) for v in videos.column("cover_url").to_pylist()]
    urls = pa.array([f"{COVER_HOST}/bfs/archive/{h}.jpg" for h in hashes], pa.string())
    videos = videos.set_column(RAW_VIDEOS.get_field_index("cover_url"), "cover_url", urls)
    zeros = pa.array(np.zeros(videos.num_rows, np.int64))
    videos = videos.set_column(RAW_VIDEOS.get_field_index("crawled_at"), "crawled_at", zeros)
    return videos.cast(RAW_VIDEOS)


def dump_truth(world, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write videos.parquet, events.parquet and status.parquet (removed / comments closed) atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"videos": write_table(truth_videos(world), out / "videos.parquet", "raw_videos")}
    events = world.events.select(TRUTH_EVENTS.names).cast(TRUTH_EVENTS)
    status = pa.table({
        "platform_video_id": world.videos.column("platform_video_id"),
        "removed": pa.array(np.asarray(world.removed, bool)),
        "comments_closed": pa.array(np.asarray(world.comments_closed, bool)),
    }, schema=TRUTH_STATUS)
    for name, table in (("events", events), ("status", status)):
        with atomic_path(out / f"{name}.parquet") as tmp:
            pq.write_table(table, tmp, compression="zstd")
        paths[name] = out / f"{name}.parquet"
    return paths
