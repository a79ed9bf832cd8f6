"""Cover bodies between the download and the decode, in bounded memory whatever a server sends.

A body stays in memory while it is small (`IN_MEMORY_BYTES`) and the run's shared budget
(`MEMORY_BUDGET`) allows: the common cover, tens to hundreds of KB, never touches the disk. A
larger body, or one that arrives while the budget is spent, goes on as it arrives into a temporary
file in the stats folder (`covers/_stats/.<item_id>.body.tmp-<n>`) and is decoded from there. So
the bodies held in memory never pass the budget, whatever their sizes and the `--concurrency`;
on disk at most concurrency x `--max-bytes` wait, each removed once decoded (or moved into place
as the stored cover, when the original bytes are kept). The temporaries of a killed run are
removed by the next run on the release (pipelines.finish removes `.*.tmp-*`, FetchRecords the
older ones).

Every write names its file when it fails (covers.writing.LocalWriteError): a full disk stops the
run with the path, never passes for a network failure of one cover.
"""
from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

from ..writing import naming

IN_MEMORY_BYTES = 2 << 20  # a body over this goes to a file
MEMORY_BUDGET = 64 << 20  # bodies of all requests in flight, in memory together
BODY_GLOB = ".i*.body.tmp-*"


class BodyStore:
    """Hands out `Body` sinks for one run; `folder` takes the bodies that do not stay in memory."""

    def __init__(self, folder: Path, budget: int | None = None, in_memory: int | None = None):
        self.folder = Path(folder)
        self.budget = MEMORY_BUDGET if budget is None else budget
        self.in_memory = IN_MEMORY_BYTES if in_memory is None else in_memory
        self._used = 0
        self._lock = threading.Lock()  # taken on the event loop and released in the pool threads
        self._numbers = itertools.count()

    def body(self, item_id: str) -> "Body":
        return Body(self, item_id)

    def _reserve(self, size: int) -> bool:
        with self._lock:
            if self._used + size > self.budget:
                return False
            self._used += size
            return True

    def _release(self, body: "Body") -> None:
        with self._lock:  # once per reservation, even when two threads discard the same body
            self._used -= body._reserved
            body._reserved = 0

    def _spill_path(self, item_id: str) -> Path:
        return self.folder / f".{item_id}.body.tmp-{os.getpid()}-{next(self._numbers)}"


class Body:
    """One response body: `append` blocks as they arrive, `finish`, then `content()` gives the
    bytes (kept in memory) or the path of the file holding them; `discard` frees either."""

    def __init__(self, store: BodyStore, item_id: str):
        self.store, self.item_id = store, item_id
        self.size = 0
        self._blocks: list[bytes] = []
        self._reserved = 0
        self._file = None
        self.path: Path | None = None

    def append(self, block: bytes) -> None:
        self.size += len(block)
        if self._file is None and (self.size > self.store.in_memory
                                   or not self.store._reserve(len(block))):
            self._spill()
        if self._file is None:
            self._reserved += len(block)
            self._blocks.append(block)
            return
        with naming(self.path):
            self._file.write(block)

    def _spill(self) -> None:
        self.path = self.store._spill_path(self.item_id)
        with naming(self.path):
            self.store.folder.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "xb")
            self._file.writelines(self._blocks)
        self._blocks = []
        self._free_memory()

    def finish(self) -> None:
        if self._file is not None:
            with naming(self.path):
                self._file.close()

    def content(self) -> bytes | Path:
        """The whole body: bytes, or the path of its file (the file is the caller's until
        `discard`; a caller that moves it away leaves nothing to remove)."""
        if self.path is not None:
            return self.path
        data = b"".join(self._blocks) if len(self._blocks) != 1 else self._blocks[0]
        self._blocks = [data]
        return data

    def discard(self) -> None:
        """Free the memory or remove the file (safe to call twice, and after a move)."""
        self._blocks = []
        self._free_memory()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _free_memory(self) -> None:
        if self._reserved:
            self.store._release(self)
