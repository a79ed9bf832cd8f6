"""Stage 8: sequences/{train,validation,test}.parquet, one row per user and split.

The splits' rows regrouped as histories and targets, for users of plain `datasets` and for
sequential models. Derived data: rebuilt only when the splits' sha256 (kept in the sequences files'
metadata) change, and byte-identical for the same splits.
"""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.io import atomic_path
from schemas.tables import SPLIT_NAMES

from .engine import session, sql_path

SEQUENCES_DIR = "sequences"
SEQUENCES_SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("history_item_ids", pa.list_(pa.string())),
    ("history_timestamps", pa.list_(pa.int64())),
    ("target_item_id", pa.string()),
    ("target_timestamp", pa.int64()),
])
_SOURCES_KEY = b"pixelrec.sources_sha256"


def has_splits(release: Path) -> bool:
    return all((Path(release) / "splits" / f"{s}.parquet").exists() for s in SPLIT_NAMES)


def build_sequences(release: Path, con=None) -> list[Path]:
    """Materialise `<release>/sequences/{train,validation,test}.parquet` from the splits.

    One row per user and split, users in id order, histories in (timestamp, item number) order:
    train: history = the user's train rows but the last, target = the last train row;
    validation: history = all train rows, target = the validation row;
    test: history = train + validation rows, target = the test row.
    Histories are complete (models cut them to their own length, e.g. the last 10 items).
    con: an open DuckDB connection with the build's memory limit and spill folder (else one is
    opened with the default settings).
    """
    release = Path(release)
    sources = _sources_digest(release)
    out = {s: release / SEQUENCES_DIR / f"{s}.parquet" for s in SPLIT_NAMES}
    if all(_digest_of(p) == sources for p in out.values()):
        return list(out.values())
    with contextlib.ExitStack() as stack:
        if con is None:
            con = stack.enter_context(session(release.parent))
        for split in SPLIT_NAMES:
            con.execute(f"CREATE OR REPLACE TEMP VIEW seq_{split} AS SELECT user_id, item_id, timestamp "
                        f"FROM read_parquet({sql_path(release / 'splits' / (split + '.parquet'))})")
        try:
            for split, path in out.items():
                _write_sequences(con.sql(_sequence_sql(split)), path, sources)
        finally:
            for split in SPLIT_NAMES:
                con.execute(f"DROP VIEW IF EXISTS seq_{split}")
    return list(out.values())


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
    before = ("seq_train" if split == "validation"
              else "(SELECT * FROM seq_train UNION ALL SELECT * FROM seq_validation)")
    return (f"WITH h AS (SELECT user_id, {agg} FROM {before} GROUP BY user_id) "
            "SELECT t.user_id, coalesce(h.items, []::VARCHAR[]) AS history_item_ids, "
            "coalesce(h.times, []::BIGINT[]) AS history_timestamps, "
            "t.item_id AS target_item_id, t.timestamp AS target_timestamp "
            f"FROM seq_{split} t LEFT JOIN h USING (user_id) ORDER BY {_USER_ORDER.replace('user_id', 't.user_id')}")


def _write_sequences(result, path: Path, sources: str) -> None:
    schema = SEQUENCES_SCHEMA.with_metadata({_SOURCES_KEY: sources.encode()})
    rows_per_group = 1 << 16
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            # DuckDB's batch sizes depend on its threads: regroup to fixed row groups so the file
            # bytes depend on the data only
            pending, buffered = [], 0
            for batch in result.to_arrow_reader(rows_per_group):
                pending.append(pa.Table.from_batches([batch]).cast(schema))
                buffered += batch.num_rows
                if buffered >= rows_per_group:
                    table = pa.concat_tables(pending)
                    full = buffered - buffered % rows_per_group
                    writer.write_table(table.slice(0, full), row_group_size=rows_per_group)
                    pending, buffered = [table.slice(full)], buffered - full
            if buffered:
                writer.write_table(pa.concat_tables(pending), row_group_size=rows_per_group)


def _sources_digest(release: Path) -> str:
    digest = hashlib.sha256()
    for split in SPLIT_NAMES:
        with open(release / "splits" / f"{split}.parquet", "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _digest_of(path: Path) -> str | None:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = meta.get(_SOURCES_KEY)
    return value.decode() if value else None
