"""Stage 4: nested subsets of eligible users (>= 5 interactions), drawn deterministically from a seed.

Eligible users are ranked once by a seeded 64-bit hash (splitmix64 of user number XOR seed) and each
subset takes the first N of that ranking. Sizes never grow along the list, so every subset is
inside the previous one by construction (Pixel200K within Pixel1M within Pixel8M).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from schemas.errors import InputError
from schemas.protocol import MIN_USER_INTERACTIONS

MIN_INTERACTIONS = MIN_USER_INTERACTIONS
DEFAULT_SUBSETS = (("pixel8m", None), ("pixel1m", 1_000_000), ("pixel200k", 200_000))
FULL_RELEASE = "pixelrec"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Subset:
    name: str
    size: int | None  # None: all eligible users


def parse_subsets(specs) -> list[Subset]:
    """Parse ['pixel8m=all', 'pixel1m=1000000', ...]; empty means the paper's defaults."""
    if not specs:
        return [Subset(n, s) for n, s in DEFAULT_SUBSETS]
    out, seen = [], {FULL_RELEASE}
    for spec in specs:
        name, sep, size = spec.partition("=")
        name, size = name.strip(), size.strip().replace("_", "").replace(",", "")
        if not sep or not _NAME.match(name):
            raise InputError(f"--subset {spec!r}: expected NAME=SIZE with a lower-case name, "
                             f"e.g. pixel1m=1000000 or pixel8m=all")
        if name in seen:
            raise InputError(f"--subset {spec!r}: the name {name} is used twice (or is the full release)")
        seen.add(name)
        if size == "all":
            out.append(Subset(name, None))
            continue
        if not size.isdigit() or int(size) < 1:
            raise InputError(f"--subset {spec!r}: SIZE must be a positive number of users or 'all'")
        out.append(Subset(name, int(size)))
    for before, after in zip(out, out[1:]):
        if after.size is None and before.size is not None or (
                before.size is not None and after.size is not None and after.size > before.size):
            raise InputError(f"--subset {after.name}: each subset is drawn inside the previous one, "
                             f"so sizes must not grow ({before.name} is smaller)")
    return out


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser over uint64 values (wrapping arithmetic)."""
    z = values.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def draw_positions(counts: np.ndarray, seed: int, min_interactions: int = MIN_INTERACTIONS) -> np.ndarray:
    """Position of each user (by user number) in the seeded draw order; -1 for ineligible users."""
    eligible = np.flatnonzero(counts >= min_interactions).astype(np.uint64)
    hashed = splitmix64(eligible ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    order = eligible[np.lexsort((eligible, hashed))]
    # 32 bits, like the user numbers: the releases table's sort carries 4 bytes a row less
    positions = np.full(len(counts), -1, dtype=np.int32)
    positions[order.astype(np.int64)] = np.arange(len(order), dtype=np.int32)
    return positions


def check_sizes(subsets: list[Subset], eligible: int, min_interactions: int = MIN_INTERACTIONS) -> None:
    """Stop when a subset asks for more users than are eligible, with a command line that fits."""
    for subset in subsets:
        if subset.size is not None and subset.size > eligible:
            example, size = [], eligible
            for other in subsets:
                if other.size is None:
                    example.append(f"--subset {other.name}=all")
                else:
                    size = max(1, size // 2 if not example or example[-1].endswith("=all") else size // 5)
                    example.append(f"--subset {other.name}={size}")
            raise InputError(
                f"--subset {subset.name}={subset.size}: only {eligible} users have >= "
                f"{min_interactions} interactions; pass smaller sizes, e.g. {' '.join(example)}")


def attach_draw(con, user_keys: np.ndarray, positions: np.ndarray) -> int:
    """Create table `releases` (inum, unum, ts, src, pos) from `capped`: the rows numbered, in
    release order, with each user's draw position (-1 for ineligible users); drop `capped`, the
    last table with user keys. Return its rows.

    user_keys: the keys in user number order (anonymize.number_users); positions by user number.
    Sorting once here, by (user number, timestamp, item number), lets every release stream out in
    file order through a plain filter on `pos`, with no further sort: DuckDB keeps insertion order
    for scans and filters (preserve_insertion_order).
    """
    unum = np.arange(len(positions), dtype=np.int32)
    con.register("user_draw", pa.table({"user_key": pa.array(user_keys, pa.uint64()), "unum": unum,
                                        "pos": positions}))
    try:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE releases AS
            SELECT i.inum, d.unum, c.ts, c.src, d.pos
            FROM capped c JOIN item_numbers i USING (vnum) JOIN user_draw d USING (user_key)
            ORDER BY d.unum, c.ts, i.inum""")
    finally:
        con.unregister("user_draw")
    con.execute("DROP TABLE capped")
    return con.execute("SELECT count(*) FROM releases").fetchall()[0][0]


def subset_filter(subset: Subset | None) -> str:
    """SQL condition on `releases` selecting a subset's users (TRUE for the full release)."""
    if subset is None:
        return "TRUE"
    if subset.size is None:
        return "pos >= 0"
    return f"pos >= 0 AND pos < {int(subset.size)}"
