"""sha256 computed while a file is written, so the manifest never reads a release back.

`HashingFile` wraps a binary file: every write also feeds a sha256. On close the digest is remembered
for that file, keyed by what identifies the file on disk (device, inode, size, mtime in ns): a rename
keeps all four, so an entry made in a temporary folder still holds once the folder is moved into
place, and any later change to the file (size or mtime) makes the entry void. The record lives in
this process only; `sha256_of` falls back to reading the file.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from schemas.manifest import sha256_file

_KNOWN: dict[tuple[int, int, int, int], str] = {}
_MAX_KNOWN = 100_000  # a long-lived process writing many small files keeps this bounded


def _identity(path: str | os.PathLike) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def remember(path: str | os.PathLike, sha256: str) -> None:
    """Record the sha256 of a file this process has just written and closed."""
    if len(_KNOWN) >= _MAX_KNOWN:
        _KNOWN.clear()
    _KNOWN[_identity(path)] = sha256


def known_sha256(path: str | os.PathLike) -> str | None:
    """The digest recorded while `path` was written, if the file is unchanged since; else None."""
    try:
        return _KNOWN.get(_identity(path))
    except OSError:
        return None


def sha256_of(path: str | os.PathLike) -> str:
    """sha256 of a file: the one recorded while it was written, else read from disk."""
    return known_sha256(path) or sha256_file(path)


def matches(path: str | os.PathLike, size: int, sha256: str) -> bool:
    """True when `path` is a file of `size` bytes with this sha256 (size checked first)."""
    try:
        return os.path.isfile(path) and os.stat(path).st_size == size and sha256_of(path) == sha256
    except OSError:
        return False


class HashingFile:
    """A write-only binary file that hashes what goes through it (pyarrow writers accept it).

    close() records the digest for `path`; abort() closes without recording.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = open(self.path, "wb")
        self._sha = hashlib.sha256()
        self.bytes = 0
        self.sha256: str | None = None
        self._held: list[bytes] | None = None
        self._transform = None

    def hold(self, transform) -> None:
        """Keep what is written from now on in memory; close() passes it through
        `transform(bytes) -> bytes` (same length) before writing and hashing it."""
        self._held, self._transform = [], transform

    # the subset of io.RawIOBase that pyarrow's PythonFile uses for writing
    def write(self, data) -> int:
        if self._held is not None:
            self._held.append(bytes(data))
            self.bytes += len(data)
            return len(data)
        view = memoryview(data)
        self._sha.update(view)
        written = self._file.write(view)
        self.bytes += written
        return written

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        if self._file.closed:
            return
        if self._held is not None:
            held, self._held = b"".join(self._held), None
            tail = self._transform(held)
            if len(tail) != len(held):
                raise ValueError("a held tail must keep its length")
            self._sha.update(tail)
            self._file.write(tail)
        self._file.close()
        self.sha256 = self._sha.hexdigest()
        remember(self.path, self.sha256)

    def abort(self) -> None:
        self._held = None
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --- Arrow sizes, for the dataset cards ------------------------------------------------------------
# A dataset card records each split's size in Arrow bytes as `datasets` measures it (the file read
# back in batches of one row group). Counting it while the file is written spares the card a full
# decode of every split; the card checks the count against its own reading of the first row group.

_ARROW: dict[tuple[int, int, int, int], tuple[int, ...]] = {}


def arrow_read_bytes(table) -> int:
    """`nbytes` of `table` as `datasets` measures it (read by pyarrow's Parquet reader, cast to the
    card's features): strings and lists without a validity bitmap, fixed-width columns with one, the
    fixed-width values inside lists without; 4 bytes of offsets per value. The card checks this rule
    against a real read of row group 0 and reads the whole file where it does not hold."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def size(chunks, kind, in_list=False) -> int:  # by column, not by chunk: the reader makes one array
        n = sum(len(chunk) for chunk in chunks)
        if pa.types.is_string(kind):
            return 4 * n + sum(int(pc.sum(pc.binary_length(chunk)).as_py() or 0) for chunk in chunks)
        if pa.types.is_list(kind):
            return 4 * n + size([chunk.flatten() for chunk in chunks], kind.value_type, True)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            return (0 if in_list else (n + 7) // 8) + kind.bit_width // 8 * n
        raise TypeError(f"no read size rule for {kind}")

    return sum(size(column.chunks, column.type) for column in table.columns)


def remember_arrow_bytes(path: str | os.PathLike, groups: list[int]) -> None:
    """Record the Arrow bytes of each row group of a Parquet file this process has just closed."""
    if len(_ARROW) >= _MAX_KNOWN:
        _ARROW.clear()
    _ARROW[_identity(path)] = tuple(groups)


def known_arrow_bytes(path: str | os.PathLike) -> tuple[int, ...] | None:
    """Per row group Arrow bytes recorded while `path` was written (None: unknown or changed)."""
    try:
        return _ARROW.get(_identity(path))
    except OSError:
        return None


_CONFIRMED: set[tuple[int, int, int, int]] = set()


def confirm_arrow_bytes(path: str | os.PathLike) -> None:
    """Note that a read of `path` agreed with its recorded Arrow bytes (a card need not read it
    again while the file is unchanged)."""
    if len(_CONFIRMED) >= _MAX_KNOWN:
        _CONFIRMED.clear()
    _CONFIRMED.add(_identity(path))


def arrow_bytes_confirmed(path: str | os.PathLike) -> bool:
    try:
        return _identity(path) in _CONFIRMED
    except OSError:
        return False


class HashedParquetFile:
    """One Parquet file written under a temporary name beside `path`, hashed while written, and
    renamed into place by close() (abort() leaves nothing). `writer` is its pyarrow ParquetWriter."""

    def __init__(self, path: str | os.PathLike, schema, **writer_options):
        import pyarrow.parquet as pq

        from schemas.atomic import atomic_path

        self._atomic = atomic_path(path)
        self.file = HashingFile(self._atomic.__enter__())
        self.writer = pq.ParquetWriter(self.file, schema, **writer_options)

    def close(self, group_bytes: list[int] | None = None) -> None:
        """Finish, remember the digest (and the row groups' Arrow sizes, when given), rename."""
        self.writer.close()
        self.file.close()
        if group_bytes is not None:
            remember_arrow_bytes(self.file.path, group_bytes)
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            self.file.abort()
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)


# --- a metadata value known only once a Parquet file is written -------------------------------------

class FooterPatchFailed(Exception):
    """The footer did not hold the placeholder exactly as expected: nothing was written."""


def footer_metadata_patch(written, final):
    """A transform for `HashingFile.hold`: the Parquet footer at the end of the held bytes, written
    with schema `written`, made the footer schema `final` gives. The schemas differ only in
    metadata values of equal length, so the footer keeps its length and every offset in it; the
    values stand twice in a footer, as they are and inside the base64 of the serialized Arrow schema.
    """
    swaps = [(base64.b64encode(written.serialize().to_pybytes()),
              base64.b64encode(final.serialize().to_pybytes()))]
    swaps += [(value, final.metadata[key]) for key, value in written.metadata.items()
              if final.metadata[key] != value]

    def transform(tail: bytes) -> bytes:
        footer_length = int.from_bytes(tail[-8:-4], "little") if len(tail) >= 8 else len(tail)
        if tail[-4:] != b"PAR1" or footer_length + 8 > len(tail):
            raise FooterPatchFailed("no whole Parquet footer at the end of the held bytes")
        start = len(tail) - 8 - footer_length
        footer = tail[start:-8]
        for old, new in swaps:
            if len(old) != len(new) or footer.count(old) != 1:
                raise FooterPatchFailed("the footer does not hold the placeholder once")
            footer = footer.replace(old, new)
        return tail[:start] + footer + tail[-8:]

    return transform
