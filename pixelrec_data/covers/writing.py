"""The writes of covers, once per cover: lean, atomic, and naming their file when they fail.

A write to an open file fails without a file name (`[Errno 28] No space left on device`); every
write here raises `LocalWriteError`, whose OSError names the path, so that a full disk stops a
fetch with the path instead of passing for a network failure of one cover (the network handlers
catch OSError; this is not one).
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from pathlib import Path

from schemas.atomic import atomic_path


class LocalWriteError(Exception):
    """A write of ours failed (disk full, permissions): `error` is an OSError naming the path."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def naming(path):
    """Re-raise an OSError of the block as a LocalWriteError naming `path`."""
    try:
        yield
    except LocalWriteError:
        raise
    except OSError as exc:
        named = exc if exc.filename else OSError(exc.errno, exc.strerror or str(exc), str(path))
        raise LocalWriteError(named) from exc


def write_atomically(path: Path, data: bytes) -> None:
    """`data` as file `path`, whole or not at all: a temporary name beside it, then a rename (the
    leanest form of schemas.atomic.atomic_path, as it runs once per cover); a failure names
    `path` (LocalWriteError)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with naming(path):
        try:
            descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view):]
            finally:
                os.close(descriptor)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def move_into_place(source: Path, path: Path) -> None:
    """Rename `source` to `path` (atomic); across file systems, a copy written atomically."""
    with naming(path):
        try:
            os.replace(source, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with atomic_path(path) as tmp:
                shutil.copyfile(source, tmp)


def loaded(source) -> bytes | None:
    """A cover's body given as its bytes, None, or a function that reads it (so a shard writer
    reads each body only when it writes it)."""
    return source() if callable(source) else source
