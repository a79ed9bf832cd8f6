"""import-official: the official PixelRec CSV files -> a release folder (export.py goes back).

Import keeps the official ids (checked against i<digits> / u<digits>, since covers are named after
them), copes with quoted titles holding commas and newlines and with item-info files that lack the
description column, and reports items that occur in the interactions but not in the item info
(they are kept with empty metadata).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pixelrec_data.covers import store as cover_store
from schemas.errors import InputError
from schemas.tables import (COUNT_COLUMNS, INTERACTIONS, OFFICIAL_EXTRA_ITEM_COLUMNS,
                            OFFICIAL_INTERACTION_COLUMNS, OFFICIAL_ITEM_COLUMNS, items_schema)

from .build import splits_and_stats
from .csv_scan import header_names, repeated_names
from .engine import as_input_error, session, sql_path, write_query
from .finish import release_work
from .ingest import MIN_TIMESTAMP, max_timestamp
from .official_checks import (MAX_LINE_BYTES, check_canonical_ids, check_integer_timestamps,
                              csv_errors, duplicate_rows, earliest_per_pair)
from .splits import ITEM_ID, USER_ID

_ITEM_NUMBER = "CAST(substr(item_id, 2) AS BIGINT)"
_USER_NUMBER = "CAST(substr(user_id, 2) AS BIGINT)"
_COVER_NAME = re.compile(r"^i[0-9]+\.jpg$")


def _read_csv(con, path: Path, view: str, required: list[str]) -> list[str]:
    """Load a CSV (all text) into table `view`, parsed once for the several queries that follow;
    check it is non-empty and has `required` columns."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    repeated = repeated_names(header_names(path))
    if repeated:
        raise InputError(f"{path}: column '{repeated[0]}' appears more than once in the header; "
                         f"each column must appear once")
    with csv_errors(path):
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {view} AS SELECT * FROM read_csv({sql_path(path)},
                        header=true, all_varchar=true, delim=',', quote='"', escape='"',
                        max_line_size={MAX_LINE_BYTES})""")
        columns = [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]
        rows = con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(f"{path}: missing column '{missing[0]}' (header has {', '.join(columns)}; "
                         f"expected {', '.join(required)})")
    if rows == 0:
        raise InputError(f"{path}: no data rows")
    return columns


def _first(con, query: str):
    rows = con.execute(query).fetchall()
    return rows[0] if rows else None


def _check_interactions(con, path: Path) -> None:
    where = str(path)
    with as_input_error(where):
        bad = _first(con, f"""SELECT item_id, user_id FROM official_inter
                              WHERE item_id IS NULL OR user_id IS NULL
                                 OR NOT regexp_full_match(item_id, '{ITEM_ID[1:-1]}')
                                 OR NOT regexp_full_match(user_id, '{USER_ID[1:-1]}') LIMIT 1""")
        if bad:
            raise InputError(f"{where}: bad id (item_id {bad[0]!r:.40}, user_id {bad[1]!r:.40}); "
                             f"ids must look like i<digits> and u<digits>")
        check_canonical_ids(con, "official_inter", "user_id", "u", where)
        check_canonical_ids(con, "official_inter", "item_id", "i", where)
        check_integer_timestamps(con, "official_inter", where)
        low, high = _first(con, "SELECT min(CAST(timestamp AS BIGINT)), max(CAST(timestamp AS BIGINT)) "
                                "FROM official_inter")
    if low < MIN_TIMESTAMP:
        raise InputError(f"{where}: column 'timestamp' holds {low}, before 2000-01-01 (expected unix seconds)")
    if high > max_timestamp():
        raise InputError(f"{where}: column 'timestamp' holds {high}, more than a day in the future")


def _check_items(con, path: Path, columns: list[str]) -> None:
    where = str(path)
    with as_input_error(where):
        bad = _first(con, f"""SELECT item_id FROM official_items WHERE item_id IS NULL
                              OR NOT regexp_full_match(item_id, '{ITEM_ID[1:-1]}') LIMIT 1""")
        if bad:
            raise InputError(f"{where}: bad item_id {bad[0]!r:.40}; ids must look like i<digits>")
        check_canonical_ids(con, "official_items", "item_id", "i", where)
        for column in COUNT_COLUMNS:
            bad = _first(con, f"""SELECT {column} FROM official_items WHERE {column} IS NOT NULL
                                  AND TRY_CAST({column} AS BIGINT) IS NULL LIMIT 1""")
            if bad:
                raise InputError(f"{where}: column '{column}' holds {bad[0]!r}, expected an integer")
        dup = _first(con, "SELECT item_id FROM official_items GROUP BY item_id HAVING count(*) > 1 LIMIT 1")
        if dup:
            raise InputError(f"{where}: item_id {dup[0]} appears more than once")


def import_official(interactions_csv, items_csv, out, covers=None, overwrite: bool = False) -> dict:
    """Official CSVs (+ optional covers folder) -> release folder `out`; return a report.

    The report: the release counts, `missing_examples` (items without item info, first ones) and
    `duplicates_dropped` (rows repeating a (user, item) pair: the earliest is kept)."""
    interactions_csv, items_csv, out = Path(interactions_csv), Path(items_csv), Path(out)
    if covers is not None and not Path(covers).is_dir():
        raise InputError(f"{covers}: covers folder not found")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", out.name) or "release"
    if name != out.name:
        raise InputError(f"{out}: a release folder name uses only letters, digits, '_', '.' and '-'")
    with release_work(out.parent, [name], "import-official", overwrite=overwrite) as staging:
        report = import_release(staging, name, interactions_csv, items_csv, covers)
        staging.commit()
    return report


def import_release(staging, name: str, interactions_csv, items_csv, covers=None,
                   extend=None) -> dict:
    """The official CSVs (+ a folder of covers) as the staged release `name` of `staging`
    (pipelines.finish), completed: sequences, manifest, card; returns the report.

    extend(folder, build, counts): runs once the tables, splits and stats are written and before
    the release is completed; it may add files (the publisher's covers) and returns the manifest
    entries of those it hashed as it wrote them (or None)."""
    interactions_csv, items_csv = Path(interactions_csv), Path(items_csv)
    with session(staging.work) as con:
        build, counts, missing = _import(con, interactions_csv, items_csv, staging, name, covers)
        if extend is None:
            staging.complete(name, build, counts, con=con)
    if extend is not None:  # the DuckDB session (and its memory) is closed by then
        known = extend(staging.stage / name, build, counts)
        staging.complete(name, build, counts, known=known)
    return {**counts, "missing_examples": [m[0] for m in missing[:10]]}


def _import(con, interactions_csv: Path, items_csv: Path, staging, name: str, covers):
    """Tables, splits and stats of the staged release; (build, counts, items missing info)."""
    _read_csv(con, interactions_csv, "official_inter", OFFICIAL_INTERACTION_COLUMNS)
    _check_interactions(con, interactions_csv)
    columns = _read_csv(con, items_csv, "official_items",
                        [c for c in OFFICIAL_ITEM_COLUMNS if c != "description"])
    _check_items(con, items_csv, columns)
    duplicates = duplicate_rows(con, "official_inter")
    missing = con.execute(f"""SELECT DISTINCT item_id FROM official_inter
                              ANTI JOIN official_items USING (item_id) ORDER BY {_ITEM_NUMBER}""").fetchall()
    description = "description" if "description" in columns else "NULL"
    counts = ", ".join(f"CAST({c} AS BIGINT) AS {c}" for c in COUNT_COLUMNS)
    extra = [c for c in OFFICIAL_EXTRA_ITEM_COLUMNS if c in columns]
    tmp = staging.folder(name)
    write_query(con, f"""
        SELECT item_id, {counts}, {''.join(f'{c}, ' for c in extra)}title, tag,
               {description} AS description, NULL AS cover_url,
               NULL AS release_time, NULL AS channel, NULL AS duration_s
        FROM official_items
        UNION ALL
        SELECT DISTINCT item_id, {', '.join(f'NULL AS {c}' for c in COUNT_COLUMNS)},
               {''.join('NULL, ' for _ in extra)}NULL, NULL, NULL, NULL, NULL, NULL, NULL
        FROM official_inter ANTI JOIN official_items USING (item_id)
        ORDER BY {_ITEM_NUMBER}""", tmp / "items.parquet", "items", items_schema(extra))
    write_query(con, f"""
        SELECT item_id, user_id, CAST(timestamp AS BIGINT) AS timestamp, 'official' AS source
        FROM {earliest_per_pair("official_inter", "CAST(timestamp AS BIGINT)")}
        ORDER BY {_USER_NUMBER}, CAST(timestamp AS BIGINT), {_ITEM_NUMBER}""",
                tmp / "interactions.parquet", "interactions", INTERACTIONS)
    copied = _copy_covers(con, Path(covers), tmp) if covers is not None else 0
    build = {"source": "official", "interactions_file": interactions_csv.name,
             "items_file": items_csv.name, "items_missing_info": len(missing)}
    counts = splits_and_stats(tmp, {"items_missing_info": len(missing), "covers_copied": copied,
                                    "duplicates_dropped": duplicates}, con=con)
    return build, counts, missing


def _copy_covers(con, source: Path, release: Path) -> int:
    """Copy <item_id>.jpg for the release's items only (stored as files, covers/store.py): never
    a name that is not i<digits>.jpg."""
    items = {row[0] for row in con.execute("SELECT DISTINCT item_id FROM official_items UNION "
                                           "SELECT DISTINCT item_id FROM official_inter").fetchall()}
    copied = 0
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        if not _COVER_NAME.match(entry.name) or entry.name[:-4] not in items:
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        target = cover_store.cover_file(release, entry.name[:-4])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry.path, target)
        copied += 1
    return copied
