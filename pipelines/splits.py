"""Stage 5: leave-one-out splits of any release folder (built, imported or downloaded).

Each user's history is ordered by (timestamp, item number): the last interaction goes to test, the
one before it to validation, the rest to train. A user with one interaction has only a test row, a
user with two has validation + test. The rows stream out of DuckDB sorted by (user number,
timestamp, item number), so the role of a row only needs the next two user numbers: memory stays
flat whatever the release size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.errors import InputError
from schemas.io import check_schema
from schemas.tables import SPLIT, SPLIT_NAMES

from .engine import BATCH_ROWS, RowGroupWriter, as_input_error, session, sql_path
from .id_numbers import canonical_numbers

ITEM_ID = r"^i[0-9]+$"
USER_ID = r"^u[0-9]+$"


def check_ids(con, source_sql: str, where: str) -> None:
    """Refuse ids that are not i<digits> / u<digits> (they name files, and order the splits)."""
    with as_input_error(where):
        bad = con.execute(f"""
            SELECT item_id, user_id FROM {source_sql}
            WHERE NOT regexp_full_match(item_id, '{ITEM_ID[1:-1]}')
               OR NOT regexp_full_match(user_id, '{USER_ID[1:-1]}') LIMIT 1""").fetchall()
    if bad:
        bad = bad[0]
        raise InputError(f"{where}: bad id (item_id {bad[0]!r}, user_id {bad[1]!r}); "
                         f"ids must look like i<digits> and u<digits>")


def _roles(users: np.ndarray) -> np.ndarray:
    """Role per row of a user-sorted run whose last two rows are followed by their true successors.

    `users` holds the rows to label plus two look-ahead rows at the end; returns 0 train,
    1 validation, 2 test for all but the look-ahead rows.
    """
    n = len(users) - 2
    last = users[:n] != users[1:n + 1]
    second = (users[:n] == users[1:n + 1]) & (users[1:n + 1] != users[2:n + 2])
    return np.where(last, 2, np.where(second, 1, 0)).astype(np.int8)


class NotSorted(Exception):
    """The file is not in (user number, timestamp, item number) order: sort it in DuckDB instead."""


def build_splits(release: str | Path, con=None, out: str | Path | None = None) -> dict:
    """Write splits/{train,validation,test}.parquet of `release` (into folder `out`, default the
    release itself); return their row counts.

    Files written by build-release and import-official are already in split order, so they stream
    straight through (order checked on the way); any other file is sorted by DuckDB first.
    `con`: an open DuckDB session to reuse (one memory budget per build); a new one otherwise.
    """
    release = Path(release)
    out = Path(out) if out is not None else release
    path = release / "interactions.parquet"
    check_schema(path, "interactions")
    try:
        return _write_splits(out, _file_order(path))
    except NotSorted:
        pass
    if con is None:
        with session(release.parent) as own:
            return _sorted_splits(out, path, own)
    return _sorted_splits(out, path, con)


def _sorted_splits(release: Path, path: Path, con) -> dict:
    source = f"read_parquet({sql_path(path)})"
    check_ids(con, source, str(path))
    with as_input_error(str(path)):
        reader = con.sql(f"""
            SELECT item_id, user_id, timestamp, CAST(substr(user_id, 2) AS BIGINT) AS u,
                   CAST(substr(item_id, 2) AS BIGINT) AS i
            FROM {source}
            ORDER BY u, timestamp, i""").to_arrow_reader(BATCH_ROWS)
        return _write_splits(release, _numbered(reader))


def _numbered(reader):
    for batch in reader:
        table = pa.Table.from_batches([batch])
        yield table, table["u"].to_numpy(), table["timestamp"].to_numpy(), table["i"].to_numpy()


def _file_order(path: Path):
    """(table, u, t, i) batches in file order; u, t, i: user number, timestamp, item number."""
    for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=["item_id", "user_id", "timestamp"]):
        table = pa.Table.from_batches([batch])
        items, users = table.column("item_id"), table.column("user_id")
        u, i = canonical_numbers(users, "u"), canonical_numbers(items, "i")
        if u is None or i is None:  # ids with leading zeros (or bad ones): the general check
            u, i = _digit_numbers(users, USER_ID), _digit_numbers(items, ITEM_ID)
        yield table, u, table.column("timestamp").to_numpy(), i


def _digit_numbers(ids: pa.Array, pattern: str) -> np.ndarray:
    ok = pc.match_substring_regex(ids, pattern)
    if ok.null_count or not pc.all(ok).as_py():
        raise NotSorted  # the DuckDB path names the bad id
    return pc.cast(pc.utf8_slice_codeunits(ids, 1), pa.int64(), safe=False).to_numpy()


def _ascending(u, t, i) -> bool:
    """Whether rows are in (u, t, i) order, lexicographically non-decreasing."""
    du, dt, di = np.diff(u), np.diff(t), np.diff(i)
    return bool(np.all((du > 0) | ((du == 0) & ((dt > 0) | ((dt == 0) & (di >= 0))))))


class SplitWriter:
    """Takes rows in (user, timestamp, item) order and writes the three split files.

    feed() raises NotSorted at the first row out of order (checked across batches too).
    """

    def __init__(self, release: Path):
        self.folder = Path(release) / "splits"
        self.existed = self.folder.exists()
        self.writers = {name: RowGroupWriter(self.folder / f"{name}.parquet", "split", SPLIT)
                        for name in SPLIT_NAMES}
        self.carry = None
        self.previous = None

    def feed(self, table: pa.Table, u, t, i) -> None:
        u, t, i = (np.asarray(x, dtype=np.int64) for x in (u, t, i))
        if self.previous is not None:
            pu, pt, pi = self.previous
            ordered = _ascending(np.r_[pu, u], np.r_[pt, t], np.r_[pi, i])
        else:
            ordered = _ascending(u, t, i)
        if not ordered:
            raise NotSorted
        if len(u):
            self.previous = (u[-1], t[-1], i[-1])
        columns = table.select(["item_id", "user_id", "timestamp"]).append_column("u", pa.array(u))
        self.carry = _route(self.writers, self.carry, columns, final=False)

    def feed_whole_users(self, table: pa.Table, u, t, i, from_end: np.ndarray) -> None:
        """Rows of whole users (no user continues in the next call), with each row's place from
        its user's last row (0: the last): no look-ahead to keep."""
        if self.carry is not None:
            raise ValueError("feed() and feed_whole_users() do not mix")
        if not len(u):
            return
        if self.previous is not None:
            pu, pt, pi = self.previous
            ordered = u[0] > pu and _ascending(u, t, i)
        else:
            ordered = _ascending(u, t, i)
        if not ordered:
            raise NotSorted
        self.previous = (u[-1], t[-1], i[-1])
        _write_roles(self.writers, table.select(["item_id", "user_id", "timestamp"]),
                     (2 - np.minimum(from_end, 2)).astype(np.int8))

    def flush(self) -> None:
        """Route the look-ahead rows and write every file's last row group (close() then only
        finishes the files)."""
        _route(self.writers, self.carry, None, final=True)
        self.carry = None  # so a second flush (close's) routes nothing
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> dict:
        self.flush()
        return {name: writer.close() for name, writer in self.writers.items()}

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        if not self.existed and self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def _write_splits(release: Path, batches) -> dict:
    out = SplitWriter(release)
    try:
        for table, u, t, i in batches:
            out.feed(table, u, t, i)
        return out.close()
    except BaseException:
        out.abort()
        raise


def _route(writers, carry: pa.Table | None, table: pa.Table | None, final: bool) -> pa.Table | None:
    """Label and write all rows but the last two (kept as look-ahead), or all of them when final."""
    parts = [t for t in (carry, table) if t is not None and t.num_rows]
    if not parts:
        return None
    rows = pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]
    users = rows.column("u").to_numpy()
    if final:
        users = np.concatenate([users, [-1, -2]])  # sentinels: nobody follows the last rows
        labelled, rest = rows, None
    else:
        if rows.num_rows <= 2:
            return rows
        labelled, rest = rows.slice(0, rows.num_rows - 2), rows.slice(rows.num_rows - 2)
    _write_roles(writers, labelled.drop_columns(["u"]), _roles(users))
    return rest


def _write_roles(writers, rows: pa.Table, roles: np.ndarray) -> None:
    """Each row to the split file of its role (0 train, 1 validation, 2 test)."""
    for code, name in enumerate(SPLIT_NAMES):
        chosen = rows.filter(pa.array(roles == code))
        if chosen.num_rows:
            writers[name].write_batch(chosen)
