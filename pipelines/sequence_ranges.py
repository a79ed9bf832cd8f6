"""Read the three split files side by side, one range of user numbers at a time.

The files must be grouped by user number (non-decreasing), validation and test with at most one row
per user (strictly increasing), and every id a plain i<n> / u<n> without leading zeros: then a range
of users holds all of their rows in all three files. Anything else raises NotGrouped, and the caller
takes a path that sorts (DuckDB).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.tables import SPLIT_NAMES

from .id_numbers import canonical_numbers

_COLUMNS = ["user_id", "item_id", "timestamp"]


class NotGrouped(Exception):
    """The split files cannot be read range by range (see the module docstring)."""


def _numbers(ids: pa.Array, prefix: str) -> np.ndarray:
    numbers = canonical_numbers(ids, prefix)
    if numbers is None:
        raise NotGrouped
    return numbers


class _Cursor:
    """Buffered rows of one split file, handed out by user range."""

    def __init__(self, path: Path, batch_rows: int, one_per_user: bool):
        self._batches = pq.ParquetFile(path).iter_batches(batch_rows, columns=_COLUMNS)
        self.batch_rows, self.strict = batch_rows, one_per_user
        self.rows: dict | None = None
        self.done = False
        self._last_user = -1

    def size(self) -> int:
        return 0 if self.rows is None else len(self.rows["u"])

    def needs_more(self) -> bool:
        if self.done:
            return False
        u = None if self.rows is None else self.rows["u"]
        return u is None or len(u) < self.batch_rows or u[0] == u[-1]

    def read(self) -> None:
        batch = next(self._batches, None)
        if batch is None:
            self.done = True
            return
        user_id, item_id = batch.column("user_id"), batch.column("item_id")
        rows = {"user_id": user_id, "item_id": item_id, "u": _numbers(user_id, "u"),
                "i": _numbers(item_id, "i"),
                "t": batch.column("timestamp").to_numpy(zero_copy_only=False).astype(np.int64, copy=False)}
        u = np.r_[self._last_user, rows["u"]]
        steps = np.diff(u)
        if np.any(steps < 0) or (self.strict and np.any(steps == 0)):
            raise NotGrouped
        if len(rows["u"]):
            self._last_user = int(rows["u"][-1])
        self.rows = rows if self.rows is None else concat_rows(self.rows, rows)

    def last_user(self) -> int:
        return int(self.rows["u"][-1])

    def take_through(self, bound: int | None) -> dict:
        """Rows of users <= bound (all of them when bound is None), removed from the buffer."""
        if self.rows is None:
            return _empty()
        n = len(self.rows["u"]) if bound is None else int(np.searchsorted(self.rows["u"], bound, "right"))
        head = {k: v[:n] for k, v in self.rows.items()}
        rest = {k: v[n:] for k, v in self.rows.items()}
        self.rows = rest if len(rest["u"]) else None
        return head


def concat_rows(a: dict, b: dict) -> dict:
    return {k: (pa.concat_arrays([a[k], b[k]]) if isinstance(a[k], pa.Array) else np.concatenate([a[k], b[k]]))
            for k in a}


def _empty() -> dict:
    return {"user_id": pa.array([], pa.string()), "item_id": pa.array([], pa.string()),
            "u": np.zeros(0, np.int64), "i": np.zeros(0, np.int64), "t": np.zeros(0, np.int64)}


def user_ranges(splits: Path, batch_rows: int):
    """Yield (train, validation, test) row dicts, one range of users at a time, users ascending.

    Each dict: user_id, item_id (Arrow strings), u, i (their numbers), t (timestamps) as numpy.
    """
    cursors = [_Cursor(Path(splits) / f"{s}.parquet", batch_rows, one_per_user=(s != "train"))
               for s in SPLIT_NAMES]
    while True:
        for cursor in cursors:
            while cursor.needs_more():
                cursor.read()
                if cursor.size() >= cursor.batch_rows:
                    break
        live = [c for c in cursors if not c.done and c.size()]
        if not live:
            yield tuple(c.take_through(None) for c in cursors)
            return
        # every live buffer may still continue its last user: stop just before the smallest of them
        bound = min(c.last_user() for c in live) - 1
        parts = tuple(c.take_through(bound) for c in cursors)
        if any(len(p["u"]) for p in parts):
            yield parts
        else:
            for cursor in live:  # one user fills a whole buffer: read on until it ends
                if cursor.last_user() == bound + 1:
                    cursor.read()
