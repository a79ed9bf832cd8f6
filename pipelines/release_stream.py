"""One pass over a release's rows in split order (user number, timestamp, item number): the
interactions file, the three split files, the three sequences files and the counts behind the
stats, all from the same stream, so nothing is read back.

The rows are cut into batches of whole users (the last user of a batch waits for the next one), so
every user's history is in one batch. Each file has its own lane: its batches are encoded in order,
one at a time, by whichever of the stream's threads (one per core; pyarrow lets go of the GIL) is
free, and a few batches at most wait per lane, so memory stays bounded.
The sequences files need the digest of the split files in their footers: they are written with a
placeholder of the same length, which their footers take once the split files are closed (see
digests.footer_metadata_patch); should that ever fail, they are built from the split files instead.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import INTERACTIONS, SPLIT_NAMES

from .digests import FooterPatchFailed
from .engine import RowGroupWriter, default_threads
from .sequences import SequenceWriter, build_sequences, sequence_paths, sources_digest, whole_users_batch
from .splits import SplitWriter
from .stats import UsageCounts

SOURCE_NAMES = pa.array(["comment", "danmaku"])  # by src number


class ReleaseStream:
    """Takes record batches of numbered rows (inum, unum, ts, src) in split order; `items`: how
    many item numbers there are (their ids are made once)."""

    def __init__(self, folder: Path, items: int):
        self.folder = Path(folder)
        self.interactions = RowGroupWriter(self.folder / "interactions.parquet", "interactions", INTERACTIONS)
        self.splits = SplitWriter(self.folder)
        self.sequences = {split: SequenceWriter(path, None)
                          for split, path in sequence_paths(self.folder).items()}
        self.counts = UsageCounts()
        self._item_ids = _ids("i", np.arange(items))
        names = ("interactions", "splits", *SPLIT_NAMES)
        # a thread per core, not per file: the seven files of a release encoded by seven threads
        # at once on two cores took a fifth more CPU than by two (they evict each other's caches);
        # in the stream, a thread per core took 4-5% less CPU and time than a thread per file
        self._pool = ThreadPoolExecutor(max_workers=max(2, min(len(names), default_threads())))
        self._lanes = {name: _Lane(self._pool) for name in names}
        self._carry: list[np.ndarray] | None = None
        self.split_rows: dict[str, int] = {}  # by close()

    def feed(self, batch: pa.RecordBatch) -> None:
        columns = [batch.column(name).to_numpy() for name in ("unum", "inum", "ts", "src")]
        if self._carry is not None:
            columns = [np.concatenate([a, b]) for a, b in zip(self._carry, columns)]
        users = columns[0]
        if not len(users):
            return
        changes = np.flatnonzero(users[1:] != users[:-1])
        last_start = int(changes[-1]) + 1 if len(changes) else 0
        self._carry = [c[last_start:] for c in columns]
        if last_start:
            self._emit(*(c[:last_start] for c in columns))

    def _emit(self, unum, inum, ts, src) -> None:
        """Rows of whole users to every lane."""
        u, i, t = (np.asarray(x, dtype=np.int64) for x in (unum, inum, ts))
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
        lengths = np.diff(np.r_[starts, len(u)])
        from_end = np.repeat(starts + lengths, lengths) - np.arange(1, len(u) + 1)
        self.counts.add(lengths, i)
        user_ids = _ids("u", u[starts])
        user_id = user_ids.take(pa.array(np.repeat(np.arange(len(starts)), lengths)))
        item_id = self._item_ids.take(pa.array(i))
        table = pa.Table.from_arrays([item_id, user_id, pa.array(t), SOURCE_NAMES.take(pa.array(src))],
                                     schema=INTERACTIONS)
        self._run("interactions", self.interactions.write_batch, table)
        self._run("splits", self.splits.feed_whole_users, table, u, t, i, from_end)
        for split, writer in self.sequences.items():
            self._run(split, _write_sequences, writer, split, user_ids, item_id, t, from_end, starts, lengths)

    def _run(self, lane: str, function, *args) -> None:
        self._lanes[lane].submit(function, *args)

    def close(self) -> dict:
        """Finish every file; return the split row counts."""
        if self._carry is not None and len(self._carry[0]):
            self._emit(*self._carry)
        self._carry = None
        # the last row groups too are written on their lanes, side by side; the files are finished
        # only once every lane is through (a failure in one leaves no other file in place)
        self._run("interactions", self.interactions.flush)
        self._run("splits", self.splits.flush)
        for split, writer in self.sequences.items():
            self._run(split, writer.flush)
        try:
            for lane in self._lanes.values():
                lane.finish()
        finally:
            self._pool.shutdown(wait=True)
        self.interactions.close()
        split_rows = self.splits.close()
        sources = sources_digest(self.folder)
        try:
            for writer in self.sequences.values():
                writer.close(sources)
        except FooterPatchFailed:
            self._abort_sequences()
            build_sequences(self.folder)
        self.split_rows = split_rows
        return split_rows

    def abort(self) -> None:
        for lane in self._lanes.values():
            lane.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.interactions.abort()
        self.splits.abort()
        self._abort_sequences()

    def _abort_sequences(self) -> None:
        for writer in self.sequences.values():
            writer.abort()


class _Lane:
    """One file's work, in order, on the stream's shared threads: each batch waits at the back of
    their queue, and one batch of a lane runs at a time (its writer is not shared). At most DEPTH
    batches wait for it."""

    # batches waiting per lane: with 4, a lane that is slow for a moment (the test sequences,
    # the longest histories) does not stop the others (measured 5% faster than 2 at 1/10 scale)
    DEPTH = 4

    def __init__(self, pool: ThreadPoolExecutor):
        self._pool = pool
        self._lock = threading.Lock()
        self._waiting: deque = deque()  # (function, args, future) not yet started
        self._busy = False  # a batch of this lane is queued on the pool or running
        self._pending: deque = deque()  # futures not yet collected

    def submit(self, function, *args) -> None:
        while len(self._pending) >= self.DEPTH:
            self._pending.popleft().result()
        future: Future = Future()
        with self._lock:
            self._waiting.append((function, args, future))
            start, self._busy = not self._busy, True
        if start:
            self._pool.submit(self._run_next)
        self._pending.append(future)

    def _run_next(self) -> None:
        with self._lock:
            if not self._waiting:  # dropped by stop()
                self._busy = False
                return
            function, args, future = self._waiting.popleft()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # handed to whoever collects the future
                future.set_exception(exc)
        with self._lock:
            if self._waiting:  # behind the other lanes' batches queued meanwhile
                self._pool.submit(self._run_next)
            else:
                self._busy = False

    def finish(self) -> None:
        """Wait for every batch, raising the first failure."""
        while self._pending:
            self._pending.popleft().result()

    def stop(self) -> None:
        """Drop the batches not yet started."""
        with self._lock:
            for _, _, future in self._waiting:
                future.cancel()
            self._waiting.clear()
        self._pending.clear()


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    """Canonical ids: prefix + the number in decimal (`i42`, `u7`)."""
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def _write_sequences(writer: SequenceWriter, split: str, *rows) -> None:
    writer.write(whole_users_batch(split, *rows))
