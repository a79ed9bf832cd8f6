"""DuckDB sessions and deterministic Parquet writing shared by the release stages.

Every heavy step runs in DuckDB with a memory limit and a spill folder, so the full PixelRec size
(about 196M raw interactions) builds out of core. Files are written by pyarrow from DuckDB's ordered
result stream in fixed-size row groups, so the same rows always give the same bytes.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.errors import InputError
from schemas.io import atomic_path, conform

ROW_GROUP_ROWS = 1 << 20
BATCH_ROWS = 1 << 18
PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}
# columns with few distinct values per row group; unique ids (user_id, an item's own id) are not
# worth a dictionary that Parquet would abandon after the first page
DICTIONARY_COLUMNS = ("item_id", "source", "tag", "channel")


def default_memory_limit() -> str:
    """DuckDB's budget: PIXELREC_DUCKDB_MEMORY (e.g. '6GB') or 6GB, well under the 12 GB RSS target."""
    return os.environ.get("PIXELREC_DUCKDB_MEMORY", "6GB")


def default_threads() -> int:
    return int(os.environ.get("PIXELREC_THREADS", "0")) or (os.cpu_count() or 1)


@contextlib.contextmanager
def session(work_dir: str | os.PathLike | None = None, memory_limit: str | None = None,
            threads: int | None = None):
    """A DuckDB connection backed by a database file in a private temporary folder.

    A file database (not in-memory) lets intermediate tables exceed RAM; the folder is removed on exit.
    """
    parent = Path(work_dir) if work_dir else None
    if parent:
        parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pixelrec-work-", dir=parent))
    con = duckdb.connect(str(tmp / "work.duckdb"))
    try:
        con.execute(f"SET memory_limit='{memory_limit or default_memory_limit()}'")
        con.execute(f"SET temp_directory='{tmp / 'spill'}'")
        con.execute(f"SET threads={int(threads or default_threads())}")
        con.execute("SET preserve_insertion_order=true")
        con.execute("SET enable_progress_bar=false")
        yield con
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)


def sql_path(path: str | os.PathLike) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def sql_list(paths) -> str:
    return "[" + ", ".join(sql_path(p) for p in paths) + "]"


def first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def as_input_error(what: str):
    """Turn a DuckDB failure on user files (bad UTF-8, bad types, ...) into a one-line InputError."""
    try:
        yield
    except duckdb.Error as exc:
        message, full = first_line(exc), str(exc).lower()
        if "utf" in full or "unicode" in full or "encoding" in full:
            raise InputError(f"{what}: text is not valid UTF-8 ({message})") from None
        raise InputError(f"{what}: {message}") from None


class RowGroupWriter:
    """Writes record batches to one Parquet file in row groups of exactly `row_group_rows` rows.

    Row groups never depend on how the producer happened to batch its output, which keeps files
    byte-identical across runs and thread counts.
    """

    def __init__(self, path: Path, table_name: str, schema: pa.Schema,
                 row_group_rows: int = ROW_GROUP_ROWS):
        self.path, self.table_name, self.schema = Path(path), table_name, schema
        self.row_group_rows = row_group_rows
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.rows = 0
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        dictionary = [c for c in DICTIONARY_COLUMNS if c in schema.names and
                      not (table_name == "items" and c == "item_id")]
        self._writer = pq.ParquetWriter(self._tmp, schema, use_dictionary=dictionary, **PARQUET_OPTIONS)

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = conform(pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch,
                        self.table_name, self.path)
        for chunk in table.to_batches():
            if chunk.num_rows:
                self.pending.append(chunk)
                self.pending_rows += chunk.num_rows
        while self.pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, rows: int) -> None:
        table = pa.Table.from_batches(self.pending, schema=self.schema)
        self._writer.write_table(table.slice(0, rows), row_group_size=rows)
        rest = table.slice(rows)
        self.pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        self.pending_rows = rest.num_rows
        self.rows += rows

    def close(self) -> int:
        if self.pending_rows:
            self._flush(self.pending_rows)
        self._writer.close()
        self._atomic.__exit__(None, None, None)
        return self.rows

    def abort(self) -> None:
        self._writer.close()
        self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_query(con, query: str, path: Path, table_name: str, schema: pa.Schema,
                row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Stream an (ordered) query into one Parquet file; return its row count."""
    reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
    writer = RowGroupWriter(path, table_name, schema, row_group_rows)
    try:
        for batch in reader:
            writer.write_batch(batch)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def parquet_rows(path: str | os.PathLike) -> int:
    return pq.ParquetFile(path).metadata.num_rows
