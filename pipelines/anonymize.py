"""Stage 3: dense ids i0..iN and u0..uM from keyed hashes, never from crawl order.

Items are ordered by keyed_rank_value(key, "video", platform_video_id) and users by
keyed_rank_value(key, "user", str(user_key)); a (astronomically rare) equal value falls back to the
raw value itself. The numbers are assigned once per build and every subset keeps them.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from schemas.keys import keyed_rank_value

from .engine import default_threads, result_or_here, spawn_pool

try:  # CPython's own SHA-256: copying its state is a plain struct copy, where copying an OpenSSL
    # context costs a third of each value's time (3.0 -> 2.1 us a value, the same digests)
    from _sha256 import sha256 as _fast_sha256  # Python 3.11
except ImportError:
    try:
        from _sha2 import sha256 as _fast_sha256  # Python 3.12 and later
    except ImportError:
        _fast_sha256 = hashlib.sha256

CHUNK = 1 << 20
# values per process at least: below that, starting a process costs more than it saves
PARALLEL_MIN = 1 << 20


def _rank_values(key: bytes, namespace: str, values) -> np.ndarray:
    """keyed_rank_value for many values at once, split over up to one process per core (hashing
    small values holds the GIL, so threads would not help)."""
    workers = min(default_threads(), max(1, len(values) // PARALLEL_MIN))
    if workers < 2:
        out = _rank_part(key, namespace, values)
    else:
        bounds = np.linspace(0, len(values), workers + 1).astype(np.int64).tolist()
        parts = [(key, namespace, values[a:b]) for a, b in zip(bounds, bounds[1:])]
        with spawn_pool(workers - 1) as pool:
            others = [(pool.submit(_rank_part, *part), part) for part in parts[1:]]
            first = _rank_part(*parts[0])
            out = np.concatenate([first, *(result_or_here(future, _rank_part, *part)
                                           for future, part in others)])
    if len(values):  # the batch form must equal the contract's one-value function
        assert int(out[0]) == keyed_rank_value(key, namespace, str(int(values[0]) if isinstance(
            values, np.ndarray) else values[0]))
    return out


def _rank_part(key: bytes, namespace: str, values) -> np.ndarray:
    """_rank_values in this process: HMAC-SHA256 (RFC 2104) from the two hash states after the
    padded key, copied per value (~2 us a value, a third of what copying an hmac object costs)."""
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    inner_base = _fast_sha256(bytes(b ^ 0x36 for b in padded))
    outer_base = _fast_sha256(bytes(b ^ 0x5C for b in padded))
    prefix = f"{namespace}:"
    # integers (user keys) are written into the message by bytes formatting: the same digits as
    # str(), a quarter of a value's time less than str() and encode()
    integer_message = prefix.encode() + b"%d"
    integers = isinstance(values, np.ndarray) and values.dtype.kind in "iu"

    def one(value) -> bytes:
        inner = inner_base.copy()
        inner.update(integer_message % value if integers else (prefix + str(value)).encode())
        outer = outer_base.copy()
        outer.update(inner.digest())
        return outer.digest()[:8]

    out = np.empty(len(values), dtype=np.uint64)
    for start in range(0, len(values), CHUNK):  # chunks bound the temporary bytes objects
        chunk = values[start:start + CHUNK]
        chunk = chunk.tolist() if isinstance(chunk, np.ndarray) else chunk
        out[start:start + len(chunk)] = np.frombuffer(b"".join(map(one, chunk)), dtype=">u8")
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
    con.execute("CREATE OR REPLACE TEMP TABLE video_numbers AS SELECT * FROM video_numbers_arrow")
    con.unregister("video_numbers_arrow")
    return len(ids)


def number_items(con) -> dict:
    """Create table `item_numbers` (vnum, inum): videos that kept interactions, densely renumbered.

    vnum already follows the keyed order, so dense ranking over the kept vnums keeps that order.
    Needs `video_counts` (dedup.apply_cap): the cap keeps at least one user of every video there.
    """
    con.execute("""
        CREATE OR REPLACE TEMP TABLE item_numbers AS
        SELECT vnum, (row_number() OVER (ORDER BY vnum) - 1)::INTEGER AS inum
        FROM video_counts""")
    kept = con.execute("SELECT count(*) FROM item_numbers").fetchall()[0][0]
    total = con.execute("SELECT count(*) FROM video_numbers").fetchall()[0][0]
    return {"items": int(kept), "items_dropped_no_interactions": int(total - kept)}


def number_users(con, key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Number the users of `capped`: return their user keys in number order (unum = position)
    and each one's interaction count, by number."""
    table = con.sql("SELECT user_key, count(*)::INTEGER AS n FROM capped GROUP BY user_key"
                        ).to_arrow_table()
    keys = table.column("user_key").to_numpy()
    counts = table.column("n").to_numpy()
    del table
    ranks = _rank_values(key, "user", keys)
    order = _by_rank_then_key(ranks, keys)
    del ranks
    return keys[order], counts[order]


def _by_rank_then_key(ranks: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The order of `ranks`, equal ranks by key: a plain sort (a third of lexsort's time), and
    lexsort only where two ranks are equal (64-bit hashes: astronomically rare)."""
    order = np.argsort(ranks)
    ordered = ranks[order]
    if len(ordered) > 1 and bool((ordered[1:] == ordered[:-1]).any()):
        order = np.lexsort((keys, ranks))
    return order
