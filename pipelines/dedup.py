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
        CREATE OR REPLACE TEMP TABLE videos AS
        SELECT * EXCLUDE (filename, rn) FROM (
            SELECT *, row_number() OVER (PARTITION BY platform_video_id
                                         ORDER BY crawled_at DESC NULLS LAST, {order}) AS rn
            FROM raw_videos)
        WHERE rn = 1""")
    return con.execute("SELECT count(*) FROM videos").fetchall()[0][0]


def dedup_interactions(con) -> dict:
    """Create table `pairs` (vnum, user_key, ts, src, n_raw): one row per (user, video), earliest
    kept; n_raw counts the raw rows it stands for.

    Needs table `video_numbers` (platform_video_id, vnum). src is 0 for 'comment', 1 for 'danmaku';
    the minimum of timestamp*2 + src picks the earliest row and, on equal times, the comment.
    """
    con.execute("""
        CREATE OR REPLACE TEMP TABLE pairs AS
        SELECT vnum, user_key, (first // 2)::BIGINT AS ts, (first % 2)::TINYINT AS src, n_raw
        FROM (SELECT vnum, user_key,
                     min(timestamp * 2 + CASE WHEN source = 'danmaku' THEN 1 ELSE 0 END) AS first,
                     count(*) AS n_raw
              FROM raw_interactions JOIN video_numbers USING (platform_video_id)
              GROUP BY vnum, user_key)""")
    joined, pairs = con.execute("SELECT coalesce(sum(n_raw), 0)::BIGINT, count(*) FROM pairs").fetchall()[0]
    return {"interactions_of_known_videos": int(joined), "after_dedup": int(pairs),
            "duplicates_removed": int(joined - pairs)}


def apply_cap(con, cap: int = DEFAULT_CAP) -> dict:
    """Create table `capped` (vnum, user_key, ts, src) from `pairs`: at most `cap` users per video,
    the earliest kept; and table `video_counts` (vnum, n): the users of each video before the cap.

    Without a video above the cap, `pairs` becomes `capped` as it is (its n_raw column stays);
    otherwise the window runs only over the videos above the cap.
    """
    if cap < 1:
        raise ValueError("cap must be >= 1")
    con.execute("CREATE OR REPLACE TEMP TABLE video_counts AS SELECT vnum, count(*) AS n FROM pairs GROUP BY vnum")
    over, removed, before = con.execute(f"""
        SELECT count(*) FILTER (WHERE n > {int(cap)}),
               coalesce(sum(n - {int(cap)}) FILTER (WHERE n > {int(cap)}), 0)::BIGINT,
               coalesce(sum(n), 0)::BIGINT
        FROM video_counts""").fetchall()[0]
    if not over:
        con.execute("ALTER TABLE pairs RENAME TO capped")
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE over_cap AS SELECT vnum FROM video_counts WHERE n > {int(cap)}")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE capped AS
            SELECT vnum, user_key, ts, src FROM pairs ANTI JOIN over_cap USING (vnum)
            UNION ALL
            SELECT vnum, user_key, ts, src FROM (
                SELECT p.*, row_number() OVER (PARTITION BY vnum ORDER BY ts, user_key) AS rn
                FROM pairs p SEMI JOIN over_cap USING (vnum))
            WHERE rn <= {int(cap)}""")
        con.execute("DROP TABLE pairs")
        con.execute("DROP TABLE over_cap")
    return {"items_over_cap": int(over), "cap_removed": int(removed), "after_cap": int(before - removed)}
