"""Per-user sequences of a release: `<release>/sequences/{train,validation,test}.parquet`.

One row per user and split, users in id order, histories in (timestamp, item number) order:
- train: history = the user's train rows but the last, target = the last train row;
- validation: history = all train rows, target = the validation row;
- test: history = train + validation rows, target = the test row.
Histories are complete (models cut them to their own length, e.g. the last 10 items).

Split files written by this toolkit are sorted by user number with one validation and one test row
per user, so the sequences stream out of them in user ranges: memory stays bounded by one range
whatever the release size, and no sort runs over the whole release. Any other split files (ids that
are not plain i<n>/u<n>, rows not grouped by user) go through DuckDB instead, which gives the same
rows. Sequences are derived data: the sha256 of the three split files is kept in each sequences
file's metadata and they are rebuilt only when it changes; the bytes depend on the splits only.
build-release does not read its split files back: it writes the sequences from the rows it streams
into them (whole_users_batch), with the digest put into each footer once the split files close.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.tables import SEQUENCES_DIR, SPLIT_NAMES

from .digests import FooterPatchFailed, HashedParquetFile, arrow_read_bytes, footer_metadata_patch
from .engine import BATCH_ROWS, session, sql_path
from .sequence_ranges import NotGrouped, concat_rows, user_ranges

SEQUENCES_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("history_item_ids", pa.list_(pa.string())),
    ("history_timestamps", pa.list_(pa.int64())),
    ("target_item_id", pa.string()),
    ("target_timestamp", pa.int64()),
])
SOURCES_KEY = b"pixelrec.sources_sha256"
# stands in the footer of a file written alongside its splits until their digest is known: the
# length of a sha256 in hex, and no character of base64 (so it is found once, as itself)
PENDING_SOURCES = "~" * 64
ROWS_PER_GROUP = 1 << 16
# Within a row group, the Parquet pages depend on how the rows are cut into Arrow arrays. The first
# sequences files were written from DuckDB's result batches, which end at every multiple of 122,880
# rows and 65,536 rows after each; the same cuts keep every file byte-identical to those.
_RUN_BLOCK, _RUN_SPLIT = 122_880, 1 << 16


def has_splits(release: str | Path) -> bool:
    return all((Path(release) / "splits" / f"{s}.parquet").exists() for s in SPLIT_NAMES)


def sequence_paths(release: str | Path) -> dict[str, Path]:
    return {s: Path(release) / SEQUENCES_DIR / f"{s}.parquet" for s in SPLIT_NAMES}


def build_sequences(release: str | Path, con=None) -> list[Path]:
    """Write (or keep, when up to date) the three sequences files of a folder that has splits/.

    `release` may be a temporary folder not yet renamed into place. `con`: an open DuckDB session
    (the build's memory limit and spill folder) for split files that cannot be streamed; a session
    of our own is opened only then.
    """
    release = Path(release)
    sources = sources_digest(release)
    out = sequence_paths(release)
    if all(digest_of(p) == sources for p in out.values()):
        return list(out.values())
    try:
        _stream_sequences(release, out, sources)
    except NotGrouped:
        if con is None:
            with session(release.parent) as own:
                _duckdb_sequences(own, release, out, sources)
        else:
            _duckdb_sequences(con, release, out, sources)
    return list(out.values())


def sources_digest(release: Path) -> str:
    """sha256 of the three split files, one after the other."""
    digest = hashlib.sha256()
    for split in SPLIT_NAMES:
        with open(Path(release) / "splits" / f"{split}.parquet", "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def digest_of(path: Path) -> str | None:
    """The split digest a sequences file was built from (None: no such file or no digest)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = meta.get(SOURCES_KEY)
    return value.decode() if value else None


# --- streaming path -------------------------------------------------------------------------------

def _stream_sequences(release: Path, out: dict[str, Path], sources: str) -> None:
    """Range by range; each file is encoded by its own thread (pyarrow lets go of the GIL), so the
    three files are compressed in parallel while the next range is assembled."""
    writers = {split: SequenceWriter(path, sources) for split, path in out.items()}
    pending: list = []
    try:
        with ThreadPoolExecutor(max_workers=len(writers)) as pool:
            for train, validation, test in user_ranges(release / "splits", BATCH_ROWS):
                histories = _UserLists(train)
                batches = {"train": _train_rows(train), "validation": histories.for_targets(validation),
                           "test": _UserLists(concat_rows(train, validation)).for_targets(test)}
                for future in pending:  # one range in flight per file: memory stays bounded
                    future.result()
                pending = [pool.submit(writers[split].write, batch) for split, batch in batches.items()]
            for future in pending:
                future.result()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.close()


def _sorted(rows: dict) -> dict:
    """Rows ordered by (user number, timestamp, item number); a no-op on files in split order."""
    if _ascending(rows):
        return rows
    # train + validation rows of a range: two sorted runs, which a stable sort by user merges
    order = np.argsort(rows["u"], kind="stable")
    if not _ascending({k: rows[k][order] for k in ("u", "t", "i")}):
        order = np.lexsort((rows["i"], rows["t"], rows["u"]))
    return {k: (v.take(pa.array(order)) if isinstance(v, pa.Array) else v[order]) for k, v in rows.items()}


def _runs(group: pa.Table, first_row: int) -> pa.Table:
    """`group` (rows first_row.. of the file) as Arrow runs cut where DuckDB's batches ended."""
    n = group.num_rows
    cuts = set()
    for block in range(first_row - first_row % _RUN_BLOCK, first_row + n, _RUN_BLOCK):
        cuts.update(p - first_row for p in (block, block + _RUN_SPLIT) if first_row < p < first_row + n)
    bounds = [0, *sorted(cuts), n]
    if len(bounds) == 2:
        return group
    return pa.concat_tables([group.slice(a, b - a) for a, b in zip(bounds, bounds[1:])])


def _ascending(rows: dict) -> bool:
    u, t, i = rows["u"], rows["t"], rows["i"]
    if len(u) < 2:
        return True
    du, dt, di = np.diff(u), np.diff(t), np.diff(i)
    return bool(np.all((du > 0) | ((du == 0) & ((dt > 0) | ((dt == 0) & (di >= 0))))))


class _UserLists:
    """Each user's rows of a range as one list (in (timestamp, item number) order)."""

    def __init__(self, rows: dict):
        rows = _sorted(rows)
        u = rows["u"]
        self.items, self.times = rows["item_id"], rows["t"]
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, np.int64)
        self.users = u[starts]
        self.offsets = np.r_[starts, len(u)].astype(np.int64)

    def for_targets(self, targets: dict) -> pa.RecordBatch:
        """One row per target row: the target user's list as history (empty when none)."""
        users = targets["u"]
        at = np.searchsorted(self.users, users)
        at_safe = np.minimum(at, max(len(self.users) - 1, 0))
        found = (at < len(self.users)) & (self.users[at_safe] == users) if len(self.users) else \
            np.zeros(len(users), bool)
        lengths = np.where(found, self.offsets[at_safe + 1] - self.offsets[at_safe], 0) if len(self.users) \
            else np.zeros(len(users), np.int64)
        firsts = np.where(found, self.offsets[at_safe], 0) if len(self.users) else lengths
        return _batch(targets["user_id"], _ranges(firsts, lengths), self.items, self.times,
                      targets["item_id"], targets["t"])


def _ranges(firsts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """List offsets and the row indices that fill them: firsts[k] .. firsts[k] + lengths[k]."""
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    take = np.repeat(firsts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    return offsets, take


def _train_rows(train: dict) -> pa.RecordBatch:
    """History = the user's train rows but the last; target = the last."""
    rows = _sorted(train)
    u = rows["u"]
    last = np.r_[u[1:] != u[:-1], True] if len(u) else np.zeros(0, bool)
    ends = np.flatnonzero(last)
    starts = np.r_[0, ends[:-1] + 1][:len(ends)]
    lengths = ends - starts
    targets = pa.array(ends)
    return _batch(rows["user_id"].take(targets), _ranges(starts, lengths), rows["item_id"], rows["t"],
                  rows["item_id"].take(targets), rows["t"][ends])


# what each sequences file takes of a user's rows (in split order): the target is the row with
# this many rows after it, the history every row before the target
_ROWS_AFTER_TARGET = {"train": 2, "validation": 1, "test": 0}


def whole_users_batch(split: str, user_ids: pa.Array, item_id: pa.Array, t: np.ndarray,
                      from_end: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> pa.RecordBatch:
    """The `split` sequences of whole users' rows in (user number, timestamp, item number) order,
    as the split writer streams them (the rows the split files give back). user_ids, starts,
    lengths: each user's id, first row and number of rows, in order; item_id, t, from_end: each
    row's item id, timestamp and place from its user's last row (0: the last)."""
    after = _ROWS_AFTER_TARGET[split]
    has_target = lengths > after
    targets = (starts + lengths - 1 - after)[has_target]
    history = from_end > after
    offsets = pa.array(np.r_[0, np.cumsum(lengths[has_target] - after - 1)].astype(np.int32))
    return pa.RecordBatch.from_arrays(
        [user_ids.filter(pa.array(has_target)),
         pa.ListArray.from_arrays(offsets, item_id.filter(pa.array(history))),
         pa.ListArray.from_arrays(offsets, pa.array(t[history], pa.int64())),
         item_id.take(pa.array(targets)), pa.array(t[targets], pa.int64())],
        schema=SEQUENCES_SCHEMA)


def _batch(users, ranges, items: pa.Array, times: np.ndarray, target_items, target_times) -> pa.RecordBatch:
    offsets, take = ranges
    offsets = pa.array(offsets.astype(np.int32))
    history_items = pa.ListArray.from_arrays(offsets, items.take(pa.array(take)))
    history_times = pa.ListArray.from_arrays(offsets, pa.array(times[take], pa.int64()))
    return pa.RecordBatch.from_arrays(
        [users, history_items, history_times, target_items, pa.array(target_times, pa.int64())],
        schema=SEQUENCES_SCHEMA)


# --- DuckDB path (any split files) ----------------------------------------------------------------

_ITEM_ORDER = "timestamp, TRY_CAST(substr(item_id, 2) AS BIGINT), item_id"
_USER_ORDER = "TRY_CAST(substr(user_id, 2) AS BIGINT), user_id"


def _sequence_sql(split: str) -> str:
    agg = (f"list(item_id ORDER BY {_ITEM_ORDER}) AS items, "
           f"list(timestamp ORDER BY {_ITEM_ORDER}) AS times")
    if split == "train":
        return (f"WITH h AS (SELECT user_id, {agg} FROM seq_train GROUP BY user_id) "
                "SELECT user_id, list_slice(items, 1, len(items) - 1) AS history_item_ids, "
                "list_slice(times, 1, len(times) - 1) AS history_timestamps, "
                "items[len(items)] AS target_item_id, times[len(times)] AS target_timestamp "
                f"FROM h ORDER BY {_USER_ORDER}")
    before = ("seq_train" if split == "validation" else
              "(SELECT * FROM seq_train UNION ALL SELECT * FROM seq_validation)")
    return (f"WITH h AS (SELECT user_id, {agg} FROM {before} GROUP BY user_id) "
            "SELECT t.user_id, coalesce(h.items, []::VARCHAR[]) AS history_item_ids, "
            "coalesce(h.times, []::BIGINT[]) AS history_timestamps, "
            "t.item_id AS target_item_id, t.timestamp AS target_timestamp "
            f"FROM seq_{split} t LEFT JOIN h USING (user_id) "
            f"ORDER BY {_USER_ORDER.replace('user_id', 't.user_id')}")


def _duckdb_sequences(con, release: Path, out: dict[str, Path], sources: str) -> None:
    for split in SPLIT_NAMES:
        con.execute(f"CREATE OR REPLACE TEMP VIEW seq_{split} AS SELECT user_id, item_id, timestamp "
                    f"FROM read_parquet({sql_path(release / 'splits' / (split + '.parquet'))})")
    for split, path in out.items():
        writer = SequenceWriter(path, sources)
        try:
            for batch in con.sql(_sequence_sql(split)).to_arrow_reader(ROWS_PER_GROUP):
                writer.write(batch)
        except BaseException:
            writer.abort()
            raise
        writer.close()


# --- writing --------------------------------------------------------------------------------------

class SequenceWriter:
    """One sequences file in row groups of exactly ROWS_PER_GROUP rows (the bytes depend on the rows
    only, never on how they were batched), hashed while written, renamed into place on close().

    sources: the digest of the split files, or None when they are still being written alongside
    (then close() is given it, and puts it in the footer in place of a placeholder)."""

    def __init__(self, path: Path, sources: str | None):
        self.schema = SEQUENCES_SCHEMA.with_metadata({SOURCES_KEY: (sources or PENDING_SOURCES).encode()})
        self._out = HashedParquetFile(path, self.schema, compression="zstd")
        self._pending: list[pa.Table] = []
        self._rows = 0
        self._group_bytes: list[int] = []  # for the dataset card's split sizes
        self._written = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self._pending.append(pa.Table.from_batches([batch]).cast(self.schema))
        self._rows += batch.num_rows
        while self._rows >= ROWS_PER_GROUP:
            self._flush(ROWS_PER_GROUP)

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._pending)
        group = _runs(table.slice(0, rows).combine_chunks(), self._written)
        self._out.writer.write_table(group, row_group_size=rows)
        self._written += rows
        self._group_bytes.append(arrow_read_bytes(group))
        rest = table.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._rows -= rows

    def flush(self) -> None:
        """Write the rows held back as the last (short) row group; close() does it otherwise."""
        if self._rows:
            self._flush(self._rows)

    def close(self, sources: str | None = None) -> None:
        """Finish the file; `sources` is required when the writer was made without it. Raises
        FooterPatchFailed (the file is then aborted) if the footer cannot take it."""
        self.flush()
        if self.schema.metadata[SOURCES_KEY] == PENDING_SOURCES.encode():
            if sources is None or len(sources) != len(PENDING_SOURCES):
                raise ValueError("the digest of the split files is needed to finish a sequences file")
            final = SEQUENCES_SCHEMA.with_metadata({SOURCES_KEY: sources.encode()})
            self._out.file.hold(footer_metadata_patch(self.schema, final))
        try:
            self._out.close(self._group_bytes)
        except FooterPatchFailed:
            self._out.abort()
            raise

    def abort(self) -> None:
        self._out.abort()
