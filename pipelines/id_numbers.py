"""The numbers behind canonical ids (`u0`, `u17`, `i42`), read straight from Arrow's buffers.

The streaming paths of the splits and the sequences order rows by these numbers; every id of a
release passes through here, so it costs about half of the regular expression + parse it replaces:
the first two bytes of each id are checked in numpy, and the integer parse checks the rest (it
accepts digits only once a sign, a leading zero and a `0x` prefix are ruled out by the second byte).
The same ids as official_checks.canonical_id(prefix) accept.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .official_checks import MAX_ID_DIGITS

_ZERO, _ONE, _NINE = ord("0"), ord("1"), ord("9")


def canonical_numbers(ids: pa.Array | pa.ChunkedArray, prefix: str) -> np.ndarray | None:
    """The numbers of `ids` when every one matches ^prefix(0|[1-9][0-9]*)$ with at most
    MAX_ID_DIGITS digits; None when any does not (or is null). `prefix`: one ASCII letter."""
    if isinstance(ids, pa.ChunkedArray):
        parts = [canonical_numbers(chunk, prefix) for chunk in ids.chunks]
        if any(part is None for part in parts):
            return None
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if ids.null_count:
        return None
    if ids.type != pa.string():
        ids = ids.cast(pa.string())
    n = len(ids)
    if not n:
        return np.zeros(0, np.int64)
    _, offsets_buffer, data_buffer = ids.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, n + 1, ids.offset * 4)
    lengths = np.diff(offsets)
    if lengths.min() < 2 or lengths.max() > 1 + MAX_ID_DIGITS:
        return None
    data = np.frombuffer(data_buffer, np.uint8)
    first, second = data[offsets[:-1]], data[offsets[:-1] + 1]
    lone_zero = (second == _ZERO) & (lengths == 2)
    if not (np.all(first == ord(prefix)) and np.all(((second >= _ONE) & (second <= _NINE)) | lone_zero)):
        return None
    try:
        numbers = pc.cast(pc.utf8_slice_codeunits(ids, 1), pa.int64())
    except pa.ArrowInvalid:
        return None
    return numbers.to_numpy(zero_copy_only=False)
