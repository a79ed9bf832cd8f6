"""DuckDB sessions and deterministic Parquet writing shared by the release stages.

Every heavy step runs in DuckDB with a memory limit and a spill folder, so the full PixelRec size
(about 196M raw interactions) builds out of core. Files are written by pyarrow from DuckDB's ordered
result stream in fixed-size row groups, so the same rows always give the same bytes.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.errors import InputError, one_line
from schemas.io import conform

from .digests import HashedParquetFile, arrow_read_bytes

ROW_GROUP_ROWS = 1 << 20
BATCH_ROWS = 1 << 18
PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}
# columns with few distinct values per row group; unique ids (user_id, an item's own id) are not
# worth a dictionary that Parquet would abandon after the first page
DICTIONARY_COLUMNS = ("item_id", "source", "tag", "channel")


MEMORY_FRACTION = 0.25  # of the machine's memory: DuckDB's RSS runs past its limit, Python adds ~1-2 GB
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$", re.IGNORECASE)


def machine_memory() -> int | None:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and (total is None or int(text) < total):
            total = int(text)
    return total


def default_memory_limit() -> str:
    """DuckDB's budget: PIXELREC_DUCKDB_MEMORY (e.g. '6GB'), else a quarter of the machine's memory
    (6 GB on 24 GB, 4 GB on 16 GB), at least 1 GB."""
    if os.environ.get("PIXELREC_DUCKDB_MEMORY"):
        return check_memory_limit(os.environ["PIXELREC_DUCKDB_MEMORY"])
    total = machine_memory()
    if not total:
        return "6GB"
    return f"{max(1024, int(total * MEMORY_FRACTION / 2**20))}MiB"


def check_memory_limit(text: str) -> str:
    """A DuckDB memory_limit such as '4GB', '3.5GiB' or '512MB' (a bare number: GB); else InputError."""
    match = _SIZE.match(str(text))
    if not match:
        raise InputError(f"memory limit {text!r}: expected a size such as 4GB, 3.5GiB or 512MB")
    number, unit = match.group(1), (match.group(2) or "GB").upper()
    scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    if float(number) * scale < 2**27:
        raise InputError(f"memory limit {text!r}: at least 128MB is needed")
    return f"{number}{unit.replace('IB', 'iB')}"


def default_threads() -> int:
    return int(os.environ.get("PIXELREC_THREADS", "0")) or (os.cpu_count() or 1)


def spawn_pool(workers: int):
    """A pool of worker processes started afresh: spawned, not forked, as the caller runs DuckDB's
    and pyarrow's threads. Collect its results with result_or_here()."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def result_or_here(future, function, *args):
    """The result of `future` (function(*args) sent to a spawn_pool), or function(*args) run in this
    process when the worker could not start or died (a program read from standard input cannot
    spawn one: the child has no main module to load)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        return function(*args)


@contextlib.contextmanager
def session(work_dir: str | os.PathLike | None = None, memory_limit: str | None = None,
            threads: int | None = None):
    """A DuckDB connection backed by a database file in a private temporary folder.

    The stages keep their tables as TEMP tables: held in memory and spilled to the spill folder past
    the memory limit, so they may exceed RAM, but never compressed into the database file (a quarter
    less CPU for the tables of a build than persistent ones). The folder is removed on exit.
    """
    parent = Path(work_dir) if work_dir else None
    if parent:
        parent.mkdir(parents=True, exist_ok=True)
    import duckdb  # here, not above: a command that never queries (fetch-covers) skips its import

    tmp = Path(tempfile.mkdtemp(prefix=".pixelrec-work-", dir=parent))
    con = duckdb.connect(str(tmp / "work.duckdb"))
    try:
        limit = check_memory_limit(memory_limit) if memory_limit else default_memory_limit()
        con.execute(f"SET memory_limit='{limit}'")
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


@contextlib.contextmanager
def as_input_error(what: str):
    """Turn a DuckDB failure on user files (bad UTF-8, bad types, ...) into a one-line InputError."""
    import duckdb  # loaded already: this guards DuckDB queries

    try:
        yield
    except duckdb.Error as exc:
        message, full = one_line(exc), str(exc).lower()
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
        # the Arrow size of each row group, for the dataset cards (the split files and the item table)
        self._measure = table_name in ("split", "items")
        self.group_bytes: list[int] = []
        dictionary = [c for c in DICTIONARY_COLUMNS if c in schema.names and
                      not (table_name == "items" and c == "item_id")]
        # hashed while written: the manifest takes the digest instead of reading the file back
        self._out = HashedParquetFile(self.path, schema, use_dictionary=dictionary, **PARQUET_OPTIONS)

    def write_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = conform(pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch,
                        self.table_name, self.path, self.schema)
        for chunk in table.to_batches():
            if chunk.num_rows:
                self.pending.append(chunk)
                self.pending_rows += chunk.num_rows
        while self.pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, rows: int) -> None:
        table = pa.Table.from_batches(self.pending, schema=self.schema)
        group = table.slice(0, rows)
        self._out.writer.write_table(group, row_group_size=rows)
        if self._measure:
            self.group_bytes.append(arrow_read_bytes(group))
        rest = table.slice(rows)
        self.pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        self.pending_rows = rest.num_rows
        self.rows += rows

    def flush(self) -> None:
        """Write the rows held back as the last (short) row group; close() does it otherwise."""
        if self.pending_rows:
            self._flush(self.pending_rows)

    def close(self) -> int:
        self.flush()
        self._out.close(self.group_bytes if self._measure else None)
        return self.rows

    def abort(self) -> None:
        self._out.abort()


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
