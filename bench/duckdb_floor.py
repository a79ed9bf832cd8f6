"""The floor a release build is measured against: one DuckDB pass over raw/ that deduplicates the
interactions (one per user and video, the earliest), numbers items and users densely and writes one
Parquet file sorted by (user, timestamp, item). It runs in a session like the build's (same memory
limit, threads and spill folder), so the ratio of the two times says how many such passes the build
costs.

    .venv/bin/python bench/duckdb_floor.py RAW OUT_FOLDER [--memory-limit 4GB]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.engine import session, sql_list, sql_path  # noqa: E402

FLOOR_SQL = """
COPY (
    WITH pairs AS (
        SELECT platform_video_id, user_key, min(timestamp) AS ts
        FROM read_parquet({shards}) GROUP BY platform_video_id, user_key),
    items AS (
        SELECT platform_video_id, row_number() OVER (ORDER BY platform_video_id) - 1 AS inum
        FROM (SELECT DISTINCT platform_video_id FROM pairs)),
    users AS (
        SELECT user_key, row_number() OVER (ORDER BY user_key) - 1 AS unum
        FROM (SELECT DISTINCT user_key FROM pairs))
    SELECT 'i' || inum AS item_id, 'u' || unum AS user_id, ts AS timestamp
    FROM pairs JOIN items USING (platform_video_id) JOIN users USING (user_key)
    ORDER BY unum, ts, inum
) TO {out} (FORMAT parquet, COMPRESSION zstd)
"""


def floor_pass(raw: Path, out_folder: Path, memory_limit: str | None = None) -> int:
    """Run the pass; return the rows written to OUT_FOLDER/interactions.parquet."""
    out_folder.mkdir(parents=True, exist_ok=True)
    shards = sorted((raw / "interactions").glob("part-*.parquet"))
    out = out_folder / "interactions.parquet"
    with session(out_folder, memory_limit=memory_limit) as con:
        con.execute(FLOOR_SQL.format(shards=sql_list(shards), out=sql_path(out)))
        return con.execute(f"SELECT count(*) FROM read_parquet({sql_path(out)})").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--memory-limit", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = floor_pass(args.raw, args.out, args.memory_limit)
    print(f"floor: {rows:,} rows in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
