import os
import subprocess
import sys

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import MANIFEST_SCHEMA, TABLES, InputError, SchemaError
from schemas.atomic import atomic_dir
from schemas.io import conform, read_table, write_table
from schemas.keys import load_or_create_key, mid_hash, user_key_for_mid, user_key_for_midhash


def _interactions(**overrides):
    data = {"item_id": ["i0", "i1"], "user_id": ["u0", "u0"], "timestamp": [1, 2],
            "source": ["comment", "danmaku"]}
    data.update(overrides)
    return pa.table(data)


def test_conform_orders_and_casts():
    table = _interactions().select(["user_id", "timestamp", "source", "item_id"])
    out = conform(table, "interactions")
    assert out.schema == TABLES["interactions"]


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(_interactions().drop(["timestamp"]), path)
    with pytest.raises(SchemaError, match=r"x\.parquet: missing column 'timestamp'"):
        read_table(path, "interactions")


def test_wrong_type_is_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(_interactions(timestamp=["a", "b"]), path)
    with pytest.raises(SchemaError, match="column 'timestamp' has type string"):
        read_table(path, "interactions")


def test_not_parquet_is_one_line_error(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_text("hello")
    with pytest.raises(InputError) as info:
        read_table(path, "interactions")
    assert "\n" not in str(info.value)


def test_write_is_atomic_and_roundtrips(tmp_path):
    path = tmp_path / "sub" / "i.parquet"
    write_table(_interactions(), path, "interactions")
    assert read_table(path, "interactions").num_rows == 2
    assert [p.name for p in path.parent.iterdir()] == ["i.parquet"]


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "release") as tmp:
            (tmp / "half.parquet").write_text("x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_manifest_schema_refuses_key():
    manifest = {"name": "pixel200k", "schema_version": "1.0", "created_by": "pixelrec 0.1.0",
                "build": {"seed": 1}, "counts": {"users": 3},
                "files": [{"path": "items.parquet", "bytes": 1, "sha256": "0" * 64, "rows": 1}]}
    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**manifest, "build": {"key": "secret"}}, MANIFEST_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        bad = dict(manifest, files=[{"path": "../etc", "bytes": 1, "sha256": "0" * 64}])
        jsonschema.validate(bad, MANIFEST_SCHEMA)


def test_keyed_hash_contract(tmp_path):
    key_file = tmp_path / "keys" / "pixelrec.key"
    key = load_or_create_key(key_file)
    assert len(key) == 32 and oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    assert load_or_create_key(key_file) == key
    assert mid_hash(616368979) == "445e7035"  # the platform documentation's worked example
    assert user_key_for_mid(key, 616368979, join_danmaku=True) == user_key_for_midhash(key, "445e7035")
    assert user_key_for_mid(key, 1) != user_key_for_mid(b"x" * 32, 1)
    assert 0 <= user_key_for_mid(key, 1) < 2**64


def test_table_from_rows_is_from_pylist_without_importing_pandas():
    # fetch-covers writes its status tables from rows; pyarrow's own converter would load pandas
    code = """
import sys, hashlib, io
import pyarrow as pa, pyarrow.parquet as pq
from schemas.io import table_from_rows
from schemas.tables import COVERS
rows = [{"item_id": f"i{n}", "status": "ok" if n % 3 else "http_404",
         "error": None if n % 3 else 'HTTP 404 \\u00e9 "q" \\\\ \\n', "sha256": "ab" * 32,
         "width": 224 if n % 3 else None, "height": 2**31 - 1, "bytes": 2**62 + n, "phash": "0f" * 8,
         "attempts": 1 if n % 5 else None, "not_in_schema": 5} for n in range(3000)]
ours = table_from_rows(rows, COVERS)
assert "pandas" not in sys.modules
theirs = pa.Table.from_pylist(rows, schema=COVERS)
assert ours.equals(theirs) and ours.schema.equals(COVERS, check_metadata=True), (ours.schema, theirs.schema)
assert ours.column(0).num_chunks == 1
files = []
for table in (ours, theirs):
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    files.append(out.getvalue())
assert files[0] == files[1], [len(f) for f in files]
assert table_from_rows([], COVERS).schema.equals(COVERS)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
