"""Facts about a CSV file that DuckDB's reader does not report: the header's names as written, and
the line where an oversize row starts.

DuckDB renames a repeated column (`user_id`, `user_id_1`), so a header naming a column twice would
pass every check of the names it reports; and its error for a row over `max_line_size` names
"line 1" wherever the row is. Both are answered here from the file's bytes, in bounded memory.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

_QUOTE, _NEWLINE = ord('"'), ord("\n")
_CHUNK_BYTES = 4 << 20
_MAX_HEADER_BYTES = 1 << 16


def header_names(path: Path) -> list[str]:
    """The column names of the first line, as written (a UTF-8 byte order mark dropped)."""
    with open(path, "rb") as handle:
        first = handle.readline(_MAX_HEADER_BYTES)
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    return next(csv.reader([text]), [])


def repeated_names(names: list[str]) -> list[str]:
    """Names written more than once; case is ignored, as DuckDB's column names ignore it."""
    counts = Counter(name.lower() for name in names)
    return [name for name in dict.fromkeys(names) if counts[name.lower()] > 1]


def oversize_row_line(path: Path, limit: int) -> int | None:
    """The line (1-based, counting every newline of the file) where the first row longer than
    `limit` bytes starts, or None. A row ends at a newline outside double quotes; a doubled quote
    inside a quoted field flips the quote state twice, so counting parity is enough."""
    start, start_line = 0, 1        # byte offset and line of the row being read
    offset, newlines, quoted = 0, 0, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            data = np.frombuffer(chunk, np.uint8)
            parity = np.cumsum(data == _QUOTE, dtype=np.uint8)  # wraps at 256: parity survives
            breaks = np.flatnonzero(data == _NEWLINE)
            ends = breaks[((parity[breaks] + quoted) & 1) == 0]
            if ends.size:
                starts = np.concatenate(([start], offset + ends[:-1] + 1))
                over = np.flatnonzero(offset + ends - starts > limit)
                if over.size:
                    first = int(over[0])
                    return start_line if first == 0 else _line_after(newlines, breaks, ends[first - 1])
                start, start_line = offset + int(ends[-1]) + 1, _line_after(newlines, breaks, ends[-1])
            newlines += breaks.size
            quoted = (quoted + int(parity[-1])) & 1
            offset += len(chunk)
    return start_line if offset - start > limit else None


def _line_after(newlines_before: int, breaks: np.ndarray, end: int) -> int:
    """The line that begins after the newline at chunk position `end`."""
    return newlines_before + int(np.searchsorted(breaks, end)) + 2
