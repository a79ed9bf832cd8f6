"""Per-process caches of the shard formats (covers/formats.py): a release's items.parquet read once
for all the shards written from it, and the last parquet row group read (consecutive covers cost
one read)."""
from __future__ import annotations

import threading
from pathlib import Path

_ITEMS: dict = {}


def items_table(release: Path):
    """items.parquet of a release, read once per process (every shard takes a slice)."""
    import pyarrow.parquet as pq

    path = Path(release) / "items.parquet"
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _ITEMS:
        _ITEMS.clear()
        _ITEMS[key] = pq.read_table(path)
    return _ITEMS[key]


class _RowGroupCache:
    """The last row group read (per process): consecutive items cost one read."""

    def __init__(self):
        self.key, self.rows = None, None
        self.lock = threading.Lock()

    def image(self, path: str, row: int) -> bytes | None:
        import pyarrow.parquet as pq

        with self.lock:
            shard = pq.ParquetFile(path)
            group, first = 0, 0
            while first + shard.metadata.row_group(group).num_rows <= row:
                first += shard.metadata.row_group(group).num_rows
                group += 1
            if self.key != (path, group):
                self.rows = shard.read_row_group(group, columns=["image"]).column(0).to_pylist()
                self.key = (path, group)
            value = self.rows[row - first]
        return value["bytes"] if value else None


ROW_GROUPS = _RowGroupCache()
