"""Validated, atomic reading and writing of the contract's tables.

Every writer and reader goes through here, so a file that does not match its schema is refused with
one line naming the file and the column, and no reader ever sees a half-written file: writes go to a
temporary name in the same folder and are renamed into place.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .errors import InputError, SchemaError, one_line
from .tables import ADDED_COLUMNS, REQUIRED_NON_NULL, TABLES

_STRINGS = (pa.string(), pa.large_string())
try:  # string_view exists in newer pyarrow only
    _STRINGS = _STRINGS + (pa.string_view(),)
except AttributeError:  # pragma: no cover
    pass


def _compatible(actual: pa.DataType, wanted: pa.DataType) -> bool:
    if actual == wanted:
        return True
    if pa.types.is_dictionary(actual):
        return _compatible(actual.value_type, wanted)
    if wanted in _STRINGS:
        return actual in _STRINGS or pa.types.is_null(actual)
    if pa.types.is_integer(wanted):
        if pa.types.is_null(actual):
            return True
        if not pa.types.is_integer(actual):
            return False
        # widening only, and never signed -> unsigned
        if pa.types.is_unsigned_integer(wanted):
            return pa.types.is_unsigned_integer(actual) and actual.bit_width <= wanted.bit_width
        return actual.bit_width < wanted.bit_width or (
            actual.bit_width == wanted.bit_width and pa.types.is_signed_integer(actual))
    return False


def conform(table: pa.Table, name: str, source: str | os.PathLike = "<table>",
            schema: pa.Schema | None = None) -> pa.Table:
    """Return `table` with exactly the columns of schema `name` (or of `schema`, a variant of it
    such as items with the official extra columns), in order, cast to its types.

    Extra columns are dropped; a missing column (other than a later-added one, read as nulls),
    an incompatible type or a null in a required column raises SchemaError naming `source` and
    the column.
    """
    schema = schema or TABLES[name]
    columns = []
    for field in schema:
        if field.name not in table.column_names and field.name in ADDED_COLUMNS.get(name, ()):
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        if field.name not in table.column_names:
            raise SchemaError(f"{source}: missing column '{field.name}' (a {name} table needs "
                              f"{', '.join(schema.names)})")
        column = table.column(field.name)
        if not _compatible(column.type, field.type):
            raise SchemaError(f"{source}: column '{field.name}' has type {column.type}, "
                              f"expected {field.type}")
        if column.type != field.type:
            column = column.cast(field.type)
        if field.name in REQUIRED_NON_NULL.get(name, ()) and column.null_count:
            raise SchemaError(f"{source}: column '{field.name}' has {column.null_count} null values")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def check_schema(path: str | os.PathLike, name: str) -> pa.Schema:
    """Check a Parquet file's schema (without reading its data) against schema `name`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        file_schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"{path}: not a readable Parquet file ({one_line(exc)})") from None
    for field in TABLES[name]:
        idx = file_schema.get_field_index(field.name)
        if idx < 0 and field.name in ADDED_COLUMNS.get(name, ()):
            continue
        if idx < 0:
            raise SchemaError(f"{path}: missing column '{field.name}'")
        if not _compatible(file_schema.field(idx).type, field.type):
            raise SchemaError(f"{path}: column '{field.name}' has type "
                              f"{file_schema.field(idx).type}, expected {field.type}")
    return file_schema


def read_table(path: str | os.PathLike, name: str) -> pa.Table:
    """Read a Parquet file and conform it to schema `name`."""
    check_schema(path, name)
    try:
        # ParquetFile, not pq.read_table: that goes through pyarrow.dataset, which imports pandas
        # (some 50 MB of memory) for nothing when a single file is read
        file = pq.ParquetFile(path)
        present = set(file.schema_arrow.names)
        table = file.read(columns=[n for n in TABLES[name].names if n in present])
    except Exception as exc:
        raise InputError(f"{path}: cannot read ({one_line(exc)})") from None
    return conform(table, name, path)


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """`rows` (dicts of str, int, float, bool or None; keys outside `schema` ignored) as a table
    of `schema` in one chunk: pa.Table.from_pylist(rows, schema=schema), without its pandas probe.

    pyarrow's converters from Python objects import pandas (0.2 s of CPU) to ask whether a value
    is a pandas object, in commands that never use it (fetch-covers writes its status tables this
    way); its JSON reader converts the same values without asking."""
    import pyarrow.json as pj

    if not rows:
        return schema.empty_table()
    data = b"\n".join(map(orjson.dumps, rows))
    table = pj.read_json(io.BytesIO(data),
                         read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
                         parse_options=pj.ParseOptions(explicit_schema=schema,
                                                       unexpected_field_behavior="ignore"))
    return table.select(schema.names).combine_chunks()


def write_table(table: pa.Table, path: str | os.PathLike, name: str, **parquet_kwargs) -> Path:
    """Conform `table` to schema `name` and write it atomically as Parquet."""
    table = conform(table, name, path)
    kwargs = {"compression": "zstd", "write_statistics": True}
    kwargs.update(parquet_kwargs)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)
    return Path(path)




def read_json_or_empty(path: str | os.PathLike) -> dict:
    """A small JSON document (a marker, a stats file), or {} when it is absent or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
