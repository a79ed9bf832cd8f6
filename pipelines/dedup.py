"""Stage 2: deduplicate videos and interactions, and apply the per-item cap (DuckDB tables).

Rules (the paper's section 2):
- videos: one row per platform_video_id, the most recently crawled; ties broken by every other
  column so the choice never depends on file order;
- interactions: one per (user_key, video), the earliest kept; equal times prefer 'comment'
  (a fixed order of the source names);
- per video at most `cap` users, the earliest kept (ties by user_key).
"""
from __future__ import annotations

from schemas.protocol import ITEM_USER_CAP
from schemas.tables import COUNT_COLUMNS

DEFAULT_CAP = ITEM_USER_CAP
_TIEBREAK = ["aid", "title", "description", "tag", "channel", "cover_url", *COUNT_COLUMNS,
             "release_time", "duration_s"]


def dedup_videos(con) -> int:
    """Create table `videos` (one row per platform_video_id); return its row count."""
    order = ", ".join(f"{c} ASC NULLS LAST" for c in _TIEBREAK)
    con.execute(f"""
        CREATE OR REPLACE TABLE videos AS
        SELECT * EXCLUDE (filename, rn) FROM (
            SELECT *, row_number() OVER (PARTITION BY platform_video_id
                                         ORDER BY crawled_at DESC NULLS LAST, {order}) AS rn
            FROM raw_videos)
        WHERE rn = 1""")
    return con.execute("SELECT count(*) FROM videos").fetchall()[0][0]


def dedup_interactions(con) -> dict:
    """Create table `pairs` (vnum, user_key, ts, src): one row per (user, video), earliest kept.

    Needs table `video_numbers` (platform_video_id, vnum). src is 0 for 'comment', 1 for 'danmaku';
    the minimum of timestamp*2 + src picks the earliest row and, on equal times, the comment.
    """
    con.execute("""
        CREATE OR REPLACE TABLE pairs AS
        SELECT vnum, user_key,
               (min(timestamp * 2 + CASE WHEN source = 'danmaku' THEN 1 ELSE 0 END) // 2)::BIGINT AS ts,
               (min(timestamp * 2 + CASE WHEN source = 'danmaku' THEN 1 ELSE 0 END) % 2)::TINYINT AS src,
               count(*) AS n_raw
        FROM raw_interactions JOIN video_numbers USING (platform_video_id)
        GROUP BY vnum, user_key""")
    joined, pairs = con.execute("SELECT coalesce(sum(n_raw), 0)::BIGINT, count(*) FROM pairs").fetchall()[0]
    con.execute("ALTER TABLE pairs DROP COLUMN n_raw")
    return {"interactions_of_known_videos": int(joined), "after_dedup": int(pairs),
            "duplicates_removed": int(joined - pairs)}


def apply_cap(con, cap: int = DEFAULT_CAP) -> dict:
    """Create table `capped` from `pairs`: at most `cap` users per video, the earliest kept.

    The window runs only over the videos above the cap, so the bulk of the rows is copied as is.
    """
    if cap < 1:
        raise ValueError("cap must be >= 1")
    con.execute("CREATE OR REPLACE TABLE video_counts AS SELECT vnum, count(*) AS n FROM pairs GROUP BY vnum")
    con.execute(f"CREATE OR REPLACE TABLE over_cap AS SELECT vnum FROM video_counts WHERE n > {int(cap)}")
    con.execute(f"""
        CREATE OR REPLACE TABLE capped AS
        SELECT vnum, user_key, ts, src FROM pairs ANTI JOIN over_cap USING (vnum)
        UNION ALL
        SELECT vnum, user_key, ts, src FROM (
            SELECT p.*, row_number() OVER (PARTITION BY vnum ORDER BY ts, user_key) AS rn
            FROM pairs p SEMI JOIN over_cap USING (vnum))
        WHERE rn <= {int(cap)}""")
    over = con.execute("SELECT count(*) FROM over_cap").fetchall()[0][0]
    before = con.execute("SELECT count(*) FROM pairs").fetchall()[0][0]
    after = con.execute("SELECT count(*) FROM capped").fetchall()[0][0]
    con.execute("DROP TABLE pairs")
    return {"items_over_cap": int(over), "cap_removed": int(before - after), "after_cap": int(after)}
