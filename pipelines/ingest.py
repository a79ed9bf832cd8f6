"""Stage 1: find and validate the raw/ shards (videos + interactions) the crawler wrote.

Schemas are checked from each file's footer (cheap); values are checked with one DuckDB scan per
table, per file, so the error names the file: nulls, unknown sources, negative or absurd times.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from schemas.errors import InputError
from schemas.io import check_schema
from schemas.protocol import MIN_USER_INTERACTIONS

from .engine import as_input_error, sql_list, sql_path

MIN_TIMESTAMP = 946_684_800  # 2000-01-01T00:00:00Z: nothing on the platform is older
SOURCES = ("comment", "danmaku")


@dataclass(frozen=True)
class RawInput:
    root: Path
    videos: tuple[Path, ...]
    interactions: tuple[Path, ...]


def max_timestamp() -> int:
    """The latest plausible time: now plus one day (clock skew)."""
    return int(time.time()) + 86_400


def find_raw(root: str | Path) -> RawInput:
    """List raw/videos/part-*.parquet and raw/interactions/part-*.parquet, checking their schemas."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: raw folder not found")
    found = {}
    for table, folder in (("raw_videos", "videos"), ("raw_interactions", "interactions")):
        paths = tuple(sorted((root / folder).glob("part-*.parquet")))
        if not paths:
            raise InputError(f"{root / folder}: no part-*.parquet shards (expected the crawler's raw/ layout)")
        for path in paths:
            if path.stat().st_size == 0:
                raise InputError(f"{path}: empty file")
            check_schema(path, table)
        found[folder] = paths
    return RawInput(root, found["videos"], found["interactions"])


def register_raw(con, raw: RawInput) -> None:
    """Create the views raw_videos and raw_interactions over the shards."""
    con.execute(f"CREATE OR REPLACE VIEW raw_videos AS SELECT * FROM read_parquet("
                f"{sql_list(raw.videos)}, union_by_name=true, filename=true)")
    con.execute(f"CREATE OR REPLACE VIEW raw_interactions AS SELECT platform_video_id, user_key, "
                f"timestamp, source, filename FROM read_parquet({sql_list(raw.interactions)}, "
                f"union_by_name=true, filename=true)")


def validate_raw(con, raw: RawInput) -> dict:
    """Check values; return row counts. Raises InputError naming the first bad file."""
    high = max_timestamp()
    sources = ", ".join(sql_path(s) for s in SOURCES)
    with as_input_error(f"{raw.root / 'interactions'}"):
        rows = con.execute(f"""
            SELECT filename, count(*),
                   count(*) FILTER (platform_video_id IS NULL OR user_key IS NULL
                                    OR timestamp IS NULL OR source IS NULL),
                   count(*) FILTER (source NOT IN ({sources})),
                   min(timestamp), max(timestamp),
                   count(*) FILTER (length(platform_video_id) = 0)
            FROM raw_interactions GROUP BY filename ORDER BY filename""").fetchall()
    n_interactions = 0
    for name, count, nulls, bad_source, low_ts, high_ts, empty_id in rows:
        n_interactions += count
        if nulls:
            raise InputError(f"{name}: {nulls} interactions with a null value")
        if bad_source:
            raise InputError(f"{name}: {bad_source} interactions whose source is not one of {', '.join(SOURCES)}")
        if empty_id:
            raise InputError(f"{name}: {empty_id} interactions with an empty platform_video_id")
        _check_time(name, "timestamp", low_ts, high_ts, high)
    if n_interactions == 0:
        raise InputError(f"{raw.root / 'interactions'}: the shards hold no interactions")
    with as_input_error(f"{raw.root / 'videos'}"):
        rows = con.execute("""
            SELECT filename, count(*),
                   count(*) FILTER (platform_video_id IS NULL OR cover_url IS NULL),
                   min(crawled_at), max(crawled_at), min(release_time), max(release_time),
                   count(*) FILTER (length(platform_video_id) = 0),
                   -- reading every text column makes DuckDB check that it is valid UTF-8
                   sum(length(coalesce(title, '')) + length(coalesce(description, ''))
                       + length(coalesce(tag, '')) + length(coalesce(channel, '')) + length(cover_url))
            FROM raw_videos GROUP BY filename ORDER BY filename""").fetchall()
    n_videos = 0
    for name, count, nulls, low_c, high_c, low_r, high_r, empty_id, _ in rows:
        n_videos += count
        if nulls:
            raise InputError(f"{name}: {nulls} videos with a null platform_video_id or cover_url")
        if empty_id:
            raise InputError(f"{name}: {empty_id} videos with an empty platform_video_id")
        _check_time(name, "crawled_at", low_c, high_c, high)
        _check_time(name, "release_time", low_r, high_r, high)
    if n_videos == 0:
        raise InputError(f"{raw.root / 'videos'}: the shards hold no videos")
    return {"raw_videos": n_videos, "raw_interactions": n_interactions}


def _check_time(name, column, low, high, limit) -> None:
    if low is not None and low < MIN_TIMESTAMP:
        raise InputError(f"{name}: column '{column}' holds {low}, before 2000-01-01 "
                         f"(expected unix seconds)")
    if high is not None and high > limit:
        raise InputError(f"{name}: column '{column}' holds {high}, more than a day in the future "
                         f"(expected unix seconds)")


def count_eligible_users(raw: str | Path, min_interactions: int = MIN_USER_INTERACTIONS) -> int:
    """Users with at least `min_interactions` distinct videos in raw/ (the eligibility rule of the
    subsets, before deduplication and the cap): enough to size a small build's subsets."""
    pattern = str(Path(raw) / "interactions" / "part-*.parquet")
    if not list(Path(raw).glob("interactions/part-*.parquet")):
        raise InputError(f"{raw}: the crawl wrote no interactions (see the crawl's messages above)")
    con = duckdb.connect()
    try:
        return con.execute(
            "SELECT count(*) FROM (SELECT user_key FROM read_parquet(?) GROUP BY user_key "
            "HAVING count(DISTINCT platform_video_id) >= ?)", [pattern, min_interactions]).fetchone()[0]
    finally:
        con.close()
