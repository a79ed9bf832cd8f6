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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.tables import SPLIT_NAMES

_COLUMNS = ["user_id", "item_id", "timestamp"]
_MAX_DIGITS = 18  # past int64's safe range: let DuckDB order them
_ZERO, _ONE, _NINE = ord("0"), ord("1"), ord("9")


class NotGrouped(Exception):
    """The split files cannot be read range by range (see the module docstring)."""


def _numbers(ids: pa.Array, prefix: str) -> np.ndarray:
    """The numbers of canonical ids (prefix, then 0 or digits without a leading zero).

    The first two bytes of every id are checked on Arrow's own buffers and the integer parse checks
    the rest (it accepts digits only, once the sign and a leading zero are ruled out): the same ids
    as the regular expression ^prefix(0|[1-9][0-9]*)$, at a third of its cost.
    """
    if ids.null_count:
        raise NotGrouped
    if ids.type != pa.string():
        ids = ids.cast(pa.string())
    n = len(ids)
    if not n:
        return np.zeros(0, np.int64)
    _, offsets_buffer, data_buffer = ids.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, n + 1, ids.offset * 4)
    lengths = np.diff(offsets)
    if lengths.min() < 2 or lengths.max() > 1 + _MAX_DIGITS:
        raise NotGrouped
    data = np.frombuffer(data_buffer, np.uint8)
    first, second = data[offsets[:-1]], data[offsets[:-1] + 1]
    lone_zero = (second == _ZERO) & (lengths == 2)
    if not (np.all(first == ord(prefix)) and np.all(((second >= _ONE) & (second <= _NINE)) | lone_zero)):
        raise NotGrouped
    try:
        numbers = pc.cast(pc.utf8_slice_codeunits(ids, 1), pa.int64())
    except pa.ArrowInvalid:
        raise NotGrouped from None
    return numbers.to_numpy(zero_copy_only=False)


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
