"""export: a release folder -> the official CSV layout, or RecBole atomic files.

`pixelrec-csv` writes `<name>.csv` (item_id,user_id,timestamp) and `<name>_items.csv` (the official
item info), the files people open in spreadsheets. A text cell that a spreadsheet would read as a
formula (CSV injection: `=`, `+`, `-`, `@` first, also after blanks or invisible characters and in
full-width form; spreadsheet.py has the rule) gets a leading apostrophe (`'=HYPERLINK(...)`), the
escape spreadsheets themselves show for literal text; NUL bytes are removed from every text cell (no
CSV reader keeps them). Ids, counts and timestamps are never touched (they cannot start that way).

`recbole` writes RecBole's atomic files where RecBole looks for them: `OUT/<name>/<name>.train.inter`,
`.valid.inter`, `.test.inter` (the release's leave-one-out splits, through RecBole's
`benchmark_filename`), `OUT/<name>/<name>.item`, and `OUT/<name>/<name>.yaml` whose `data_path` is
OUT, so `run_recbole(dataset=<name>, config_file_list=[OUT/<name>/<name>.yaml])` loads them. Atomic
files are tab-separated with `field:type` headers (token, token_seq, float); text fields become
token sequences with whitespace runs folded to one space, so no cell holds a tab or a newline.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from schemas.errors import InputError
from schemas.atomic import atomic_dir, atomic_path, atomic_write_text
from schemas.tables import COUNT_COLUMNS, OFFICIAL_ITEM_COLUMNS

from .engine import session, sql_path
from .manifest import read_manifest
from .spreadsheet import safe_sql

FORMATS = ("pixelrec-csv", "recbole")
_ITEM_NUMBER = "CAST(substr(item_id, 2) AS BIGINT)"
_USER_NUMBER = "CAST(substr(user_id, 2) AS BIGINT)"
RECBOLE_SPLITS = (("train", "train"), ("validation", "valid"), ("test", "test"))
TEXT_COLUMNS = ("title", "tag", "description")


def export_release(release: Path, fmt: str, out) -> list[Path]:
    """Write the release as `pixelrec-csv` files in `out`, or as RecBole atomic files in
    `out/<name>/`; returns the paths written."""
    release, out = Path(release), Path(out)
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt}: expected pixelrec-csv or recbole")
    name = read_manifest(release)["name"] if (release / "manifest.json").is_file() else release.name
    for needed in ("items.parquet", "interactions.parquet"):
        if not (release / needed).is_file():
            raise InputError(f"{release / needed}: no such file")
    target = out if fmt == "pixelrec-csv" else out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with session(target.parent) as con, atomic_dir(target) as tmp:
        if fmt == "pixelrec-csv":
            files = _export_csv(con, release, tmp, name)
        else:
            files = _export_recbole(con, release, tmp, name, out)
    return [target / f for f in files]


def _copy(con, query: str, path: Path, delim: str = ",") -> None:
    with atomic_path(path) as tmp:
        con.execute(f"COPY ({query}) TO {sql_path(tmp)} (FORMAT csv, HEADER true, DELIMITER '{delim}')")


def _export_csv(con, release: Path, out: Path, name: str) -> list[str]:
    """`<name>.csv` (item_id,user_id,timestamp) and `<name>_items.csv` (the official item info)."""
    inter = f"read_parquet({sql_path(release / 'interactions.parquet')})"
    items = f"read_parquet({sql_path(release / 'items.parquet')})"
    _copy(con, f"SELECT item_id, user_id, timestamp FROM {inter} "
               f"ORDER BY {_USER_NUMBER}, timestamp, {_ITEM_NUMBER}", out / f"{name}.csv")
    columns = [safe_sql(c) if c in TEXT_COLUMNS else c for c in OFFICIAL_ITEM_COLUMNS]
    _copy(con, f"SELECT {', '.join(columns)} FROM {items} ORDER BY {_ITEM_NUMBER}",
          out / f"{name}_items.csv")
    return [f"{name}.csv", f"{name}_items.csv"]


def _export_recbole(con, release: Path, out: Path, name: str, data_path: Path) -> list[str]:
    files = []
    for split, suffix in RECBOLE_SPLITS:
        path = release / "splits" / f"{split}.parquet"
        if not path.is_file():
            raise InputError(f"{path}: no such file (run pixelrec build-splits first)")
        _copy(con, f"""SELECT user_id AS "user_id:token", item_id AS "item_id:token",
                              timestamp AS "timestamp:float" FROM read_parquet({sql_path(path)})
                       ORDER BY {_USER_NUMBER}, timestamp, {_ITEM_NUMBER}""",
              out / f"{name}.{suffix}.inter", "\t")
        files.append(f"{name}.{suffix}.inter")
    text = [f"trim(regexp_replace(replace(coalesce({c}, ''), chr(0), ''), '\\s+', ' ', 'g')) "
            f"AS \"{c}:token_seq\"" for c in TEXT_COLUMNS]
    counts = [f'{c} AS "{c}:float"' for c in COUNT_COLUMNS]
    _copy(con, f"""SELECT item_id AS "item_id:token", {', '.join(text)}, {', '.join(counts)}
                   FROM read_parquet({sql_path(release / 'items.parquet')}) ORDER BY {_ITEM_NUMBER}""",
          out / f"{name}.item", "\t")
    config = {"dataset": name, "data_path": str(data_path.resolve()),
              "benchmark_filename": [suffix for _, suffix in RECBOLE_SPLITS],
              "field_separator": "\t", "seq_separator": " ",
              "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
              "load_col": {"inter": ["user_id", "item_id", "timestamp"],
                           "item": ["item_id", *TEXT_COLUMNS, *COUNT_COLUMNS]},
              "eval_args": {"order": "TO", "split": None, "mode": "full"}}
    atomic_write_text(out / f"{name}.yaml", yaml.safe_dump(config, sort_keys=False))
    return [*files, f"{name}.item", f"{name}.yaml"]
