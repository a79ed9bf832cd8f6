"""Stage 3: dense ids i0..iN and u0..uM from keyed hashes, never from crawl order.

Items are ordered by keyed_rank_value(key, "video", platform_video_id) and users by
keyed_rank_value(key, "user", str(user_key)); a (astronomically rare) equal value falls back to the
raw value itself. The numbers are assigned once per build and every subset keeps them.
"""
from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pyarrow as pa

from schemas.keys import keyed_rank_value

CHUNK = 1 << 20


def _rank_values(key: bytes, namespace: str, values) -> np.ndarray:
    """keyed_rank_value for many values at once (an HMAC state copied per value: ~1 us each)."""
    base = hmac.new(key, digestmod=hashlib.sha256)
    prefix = f"{namespace}:".encode()

    def one(value) -> bytes:
        mac = base.copy()
        mac.update(prefix + str(value).encode())
        return mac.digest()[:8]

    out = np.empty(len(values), dtype=np.uint64)
    for start in range(0, len(values), CHUNK):  # chunks bound the temporary bytes objects
        chunk = values[start:start + CHUNK]
        chunk = chunk.tolist() if isinstance(chunk, np.ndarray) else chunk
        out[start:start + len(chunk)] = np.frombuffer(b"".join(map(one, chunk)), dtype=">u8")
    if len(values):  # the batch form must equal the contract's one-value function
        assert int(out[0]) == keyed_rank_value(key, namespace, str(int(values[0]) if isinstance(
            values, np.ndarray) else values[0]))
    return out


def number_videos(con, key: bytes) -> int:
    """Create table `video_numbers` (platform_video_id, vnum) over all deduplicated videos."""
    ids = con.sql("SELECT platform_video_id FROM videos").to_arrow_table().column(0).to_pylist()
    ranks = _rank_values(key, "video", ids)
    order = sorted(range(len(ids)), key=lambda i: (int(ranks[i]), ids[i]))
    vnum = np.empty(len(ids), dtype=np.int32)
    vnum[np.asarray(order, dtype=np.int64)] = np.arange(len(ids), dtype=np.int32)
    table = pa.table({"platform_video_id": pa.array(ids, pa.string()), "vnum": vnum})
    con.register("video_numbers_arrow", table)
    con.execute("CREATE OR REPLACE TABLE video_numbers AS SELECT * FROM video_numbers_arrow")
    con.unregister("video_numbers_arrow")
    return len(ids)


def number_items(con) -> dict:
    """Create table `item_numbers` (vnum, inum): videos that kept interactions, densely renumbered.

    vnum already follows the keyed order, so dense ranking over the kept vnums keeps that order.
    """
    con.execute("""
        CREATE OR REPLACE TABLE item_numbers AS
        SELECT vnum, (row_number() OVER (ORDER BY vnum) - 1)::INTEGER AS inum
        FROM (SELECT DISTINCT vnum FROM capped)""")
    kept = con.execute("SELECT count(*) FROM item_numbers").fetchall()[0][0]
    total = con.execute("SELECT count(*) FROM video_numbers").fetchall()[0][0]
    return {"items": int(kept), "items_dropped_no_interactions": int(total - kept)}


def number_users(con, key: bytes) -> np.ndarray:
    """Create table `user_numbers` (user_key, unum); return each user's interaction count by unum."""
    table = con.sql("SELECT user_key, count(*)::INTEGER AS n FROM capped GROUP BY user_key"
                        ).to_arrow_table()
    keys = table.column("user_key").to_numpy()
    counts = table.column("n").to_numpy()
    del table
    ranks = _rank_values(key, "user", keys)
    order = np.lexsort((keys, ranks))  # by rank value, then by the key itself
    del ranks
    unum = np.empty(len(keys), dtype=np.int32)
    unum[order] = np.arange(len(keys), dtype=np.int32)
    mapping = pa.table({"user_key": pa.array(keys, pa.uint64()), "unum": unum})
    con.register("user_numbers_arrow", mapping)
    con.execute("CREATE OR REPLACE TABLE user_numbers AS SELECT * FROM user_numbers_arrow")
    con.unregister("user_numbers_arrow")
    return counts[order]


def build_interactions(con) -> int:
    """Create table `inter` (inum, unum, ts, src) from `capped`; drop the raw user keys after."""
    con.execute("""
        CREATE OR REPLACE TABLE inter AS
        SELECT i.inum, u.unum, c.ts, c.src
        FROM capped c JOIN item_numbers i USING (vnum) JOIN user_numbers u USING (user_key)""")
    con.execute("DROP TABLE capped")
    con.execute("DROP TABLE user_numbers")
    return con.execute("SELECT count(*) FROM inter").fetchall()[0][0]
