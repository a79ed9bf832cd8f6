"""Rows of finished shards, whatever the shard layout that wrote them.

A rerun with another --shard-size cuts the items into other shards, so its shard files name other
items than the earlier run's. Every finished shard file of the earlier run is read once, before the
run writes any, and its rows are offered for reuse when the shard still describes the current data:
its recorded digest, recomputed over its own items with their CURRENT URLs, must match (an item
whose URL changed makes its whole old shard unusable), and it must be of the stored format.
"""
from __future__ import annotations

import hashlib

from .limits import ORIGINAL
from .reader import CoverTask


def carried_rows(records, tasks: list[CoverTask], cover_format: str) -> dict[str, dict]:
    """item_id -> covers row, from every finished shard file that still matches the data."""
    url_of = {task.item_id: task.url or "" for task in tasks}
    carried: dict[str, dict] = {}
    for stats_path in sorted(records.stats_dir.glob("shard-*.json")):
        stats, rows = records.read_shard(stats_path.stem)
        if (stats is None or not rows or stats.get("cover_format", ORIGINAL) != cover_format
                or any(row["item_id"] not in url_of for row in rows)):
            continue
        digest = hashlib.sha256()
        for row in rows:
            digest.update(f"{row['item_id']}\t{url_of[row['item_id']]}\n".encode())
        if digest.hexdigest() == stats.get("items_digest"):
            carried.update({row["item_id"]: row for row in rows})
    return carried
