"""The checks that make an imported official release consistent, and DuckDB's CSV errors in one line.

Ids: only canonical ones (`u0`, `u17`, `i42`: no leading zero, at most 18 digits, so every id is
one BIGINT and one string). `u01` and `u1` would be one user to every numeric sort and two to every
join; such a file is refused, naming the first collision (or the first non-canonical id).
Timestamps: integers only (a fraction would be rounded silently by a cast), of unix seconds (a
negative one, or one in milliseconds, is named as such).
Header: each column once (DuckDB would rename a second `user_id` and read the first).
Duplicates: one row per (user, item), the earliest kept, as the build does; how many rows were
dropped is reported.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import duckdb

from schemas.errors import InputError

from .csv_scan import oversize_row_line

MAX_ID_DIGITS = 18  # 10**18 - 1 fits a BIGINT
CANONICAL_DIGITS = f"(0|[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}})"
INTEGER_TIMESTAMP_DIGITS = 12  # unix seconds; 12 digits reach the year 33658
INTEGER_TIMESTAMP = f"[0-9]{{1,{INTEGER_TIMESTAMP_DIGITS}}}"
# the digits of a present-day time counted in a unit finer than seconds
_SUBSECOND_UNITS = {13: "milliseconds", 16: "microseconds", 19: "nanoseconds"}
# rows of a CSV file longer than this are refused (a title of many MB is no real item)
MAX_LINE_BYTES = 8 << 20


def canonical_id(prefix: str) -> str:
    """The regular expression (for regexp_full_match) of a canonical id with this prefix."""
    return prefix + CANONICAL_DIGITS


def check_canonical_ids(con, view: str, column: str, prefix: str, where: str) -> None:
    """Refuse the first id of `column` that is not canonical; name its twin when one exists."""
    bad = _first(con, f"""SELECT {column} FROM {view}
                          WHERE {column} IS NOT NULL AND regexp_full_match({column}, '{prefix}[0-9]+')
                            AND NOT regexp_full_match({column}, '{canonical_id(prefix)}')
                          ORDER BY {column} LIMIT 1""")
    if bad is None:
        return
    value = bad[0]
    digits = value[1:].lstrip("0") or "0"
    if len(digits) > MAX_ID_DIGITS:
        raise InputError(f"{where}: {column} {value[:40]!r} has {len(digits)} digits; ids have at "
                         f"most {MAX_ID_DIGITS}")
    twin = _first(con, f"SELECT {column} FROM {view} WHERE {column} = ? LIMIT 1", [prefix + digits])
    if twin is not None:
        raise InputError(f"{where}: {column} {value!r} and {twin[0]!r} name the same number; ids "
                         f"must be canonical ({prefix}0, {prefix}1, ...: no leading zeros)")
    raise InputError(f"{where}: {column} {value!r} has a leading zero; ids must be canonical "
                     f"({prefix}0, {prefix}1, ...; write {prefix + digits!r})")


def check_integer_timestamps(con, view: str, where: str) -> None:
    bad = _first(con, f"""SELECT timestamp FROM {view} WHERE timestamp IS NULL
                          OR NOT regexp_full_match(timestamp, '{INTEGER_TIMESTAMP}') LIMIT 1""")
    if bad is not None:
        raise InputError(f"{where}: column 'timestamp' holds {str(bad[0])[:40]!r}: "
                         f"{timestamp_problem(bad[0])}")


def timestamp_problem(value: str | None) -> str:
    """What is wrong with a timestamp that is not 1 to 12 digits, in words."""
    text = (value or "").strip()
    if re.fullmatch(r"-[0-9]+", text):
        return "a negative timestamp; expected unix seconds (1970 or later)"
    if re.fullmatch(r"[0-9]+", text):
        unit = _SUBSECOND_UNITS.get(len(text.lstrip("0")))
        if unit:
            return f"looks like {unit} ({len(text)} digits); expected unix seconds"
        return f"{len(text)} digits; expected unix seconds (at most {INTEGER_TIMESTAMP_DIGITS})"
    return "expected an integer (unix seconds)"


def duplicate_rows(con, view: str) -> int:
    """Rows beyond the first of each (user_id, item_id) pair."""
    return _first(con, f"SELECT count(*) - count(DISTINCT (user_id, item_id)) FROM {view}")[0]


def earliest_per_pair(view: str, timestamp: str) -> str:
    """A FROM clause of `view` keeping one row per (user, item): the earliest (ties: the first in
    the file's order, as read)."""
    return f"""(SELECT * FROM {view} QUALIFY row_number() OVER (
                  PARTITION BY user_id, item_id ORDER BY {timestamp}) = 1)"""


@contextlib.contextmanager
def csv_errors(path):
    """DuckDB's multi-line CSV errors as one line naming the file, the line and the reason; the
    offending line itself is never quoted (it may be megabytes)."""
    try:
        yield
    except duckdb.Error as exc:
        raise InputError(describe_csv_error(Path(path), str(exc))) from None


def describe_csv_error(path: Path, text: str) -> str:
    rows = [row.strip() for row in text.splitlines() if row.strip()]
    head = re.sub(r"^[A-Za-z ]*Error: ", "", rows[0]) if rows else "unreadable"
    named = re.search(r"CSV Error on Line: (\d+)", text)
    line = named and int(named.group(1))
    reason = ""
    for n, value in enumerate(rows):
        if value.startswith("Original Line:") and n + 1 < len(rows):
            reason = rows[n + 1]
            break
    low = text.lower()
    if "invalid unicode" in low or "utf-8" in low and "not utf-8" in low:
        reason = "text is not valid UTF-8"
    elif "maximum line size" in low:
        reason = f"a row longer than {MAX_LINE_BYTES:,} bytes"
        # DuckDB names line 1 for an oversize row wherever it is: the file's bytes say where
        line = oversize_row_line(path, MAX_LINE_BYTES)
    elif "sniffing" in low:
        reason = "the CSV layout could not be read (unbalanced quotes, or rows of differing width?)"
    if line:
        return f"{path}: line {line}: {(reason or head)[:200]}"
    return f"{path}: {(reason or head)[:200]}"


def _first(con, query: str, params=None):
    rows = con.execute(query, params or []).fetchall()
    return rows[0] if rows else None
