"""One cover, from URL to stored cover and status row: the per-item work of fetch-covers.

run.py calls fetch_and_store from its event loop and store_cover through CoverThreads.
"""
from __future__ import annotations

import asyncio
import ctypes
import sys
from concurrent.futures import ThreadPoolExecutor

from schemas.errors import one_line

from .. import store
from ..writing import LocalWriteError
from .images import process_cover
from .resize import ResizeSpec


def keep_image_memory() -> None:
    """Let glibc reuse freed image buffers instead of unmapping them.

    A decoded cover (a few hundred KB) is above glibc's default mmap threshold, so every decode,
    resize and encode maps fresh pages and unmaps them again: page faults cost a fifth of the time
    of a resize. Heap allocation up to 4 MB, and trimming only above 32 MB free, avoids that."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 4 * 1024 * 1024)   # M_MMAP_THRESHOLD
            libc.mallopt(-1, 32 * 1024 * 1024)  # M_TRIM_THRESHOLD
        except (OSError, AttributeError):  # not glibc: its defaults stay
            pass


# Covers waiting for the pool, beyond one per thread, before the loop's thread takes one itself
BACKLOG = 8


class CoverThreads:
    """Where the blocking work of the run goes: a thread pool (at most 4 threads: more only fight
    over the GIL), and the event loop's own thread when covers pile up before the pool.

    Handing a cover to a thread and its row back costs about a tenth of the cover's CPU (the queue,
    the wake-ups, the GIL passing between threads). Once more than BACKLOG covers wait, the
    downloads are not what holds the run back: the loop's thread decodes the next one itself
    (one held in memory; a body in a file may be a large picture), and the pool, with its queue
    still full, never waits for it. The pool then has one thread fewer than the cores. With too
    few requests in flight to keep such a backlog (`concurrency` under 2 x BACKLOG), the loop's
    thread never decodes and the pool has a thread per core."""

    def __init__(self, cores: int, concurrency: int):
        cores = min(4, cores)
        self.lends = concurrency >= 2 * BACKLOG  # the loop's thread lends a hand
        self.threads = max(1, cores - 1) if self.lends else max(2, cores)
        self.pool = ThreadPoolExecutor(max_workers=self.threads)
        self._handed = 0  # covers given to the pool and not back yet (changed on the loop only)

    async def run(self, work, *args, inline: bool = True):
        """`work(*args)`, on the loop's thread when `inline` allows and the pool is backed up."""
        if inline and self.lends and self._handed >= self.threads + BACKLOG:
            return work(*args)
        self._handed += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, work, *args)
        finally:
            self._handed -= 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.pool.shutdown()
        return False


def store_cover(writer, item_id: str, body, complete: bool, resize: ResizeSpec | None) -> dict:
    """Validate `body` (a bodies.Body; resize it when asked), store it with the format's shard
    writer (covers/formats.py), and return its row (an error row when the body fails; the caller
    removes any stale cover of the item). The body is discarded here, in the thread that decoded
    it; an original too large for memory is moved into place rather than copied."""
    try:
        cover = process_cover(body.content(), complete, resize)
        if cover.status != "ok":  # run.py removes a stale cover of the item
            return error_row(item_id, cover.status, cover.error)
        if cover.file is not None:
            writer.write_file(item_id, cover.file)
        else:
            writer.write(item_id, cover.data)
        return ok_row(item_id, cover)
    finally:
        body.discard()


async def fetch_and_store(fetcher, url: str, item_id: str, store) -> tuple[dict, int]:
    """Download `url` and store it with `await store(item_id, body, complete)` (which discards
    the body).

    Returns (row, bytes downloaded); row["attempts"] counts the requests made. A body of unknown
    length that decodes as cut short gets one more round.
    """
    attempts = downloaded = 0
    for _ in range(2):
        result = await fetcher.fetch(url, item_id)
        attempts += result.attempts
        if result.status != "ok":
            row = error_row(item_id, result.status, result.error)
            break
        downloaded += result.body.size
        try:
            row = await store(item_id, result.body, result.length_checked)
        except BaseException:
            result.body.discard()  # a cancelled hand-off never reached the thread
            raise
        if row["status"] != "truncated":
            break
    row["attempts"] = attempts
    return row, downloaded


def error_row(item_id: str, status: str, error: str = "", attempts: int | None = None) -> dict:
    return {"item_id": item_id, "status": status, "error": error or None, "sha256": None,
            "width": None, "height": None, "bytes": None, "phash": None, "attempts": attempts}


def ok_row(item_id: str, cover) -> dict:
    """The row of a stored cover; fetch_and_store fills in the requests made ('attempts')."""
    return {"item_id": item_id, "status": "ok", "error": None, "sha256": cover.sha256,
            "width": cover.width, "height": cover.height, "bytes": cover.size,
            "phash": cover.phash, "attempts": None}


STOPPED = "not_fetched"  # the status of an item a run that stopped on a failed write never reached


def stopped_table(records, tasks, runs, options, error: OSError) -> OSError:
    """After a failed write (a full disk): a status table that claims nothing untrue (each stored
    cover's row, each error found, `not_fetched` for the rest), or none when even that cannot be
    written; returns the error to raise, naming the path and what became of the table. A --shard
    run writes no table, as when it succeeds."""
    if options.shard is not None:
        return error
    known: dict[str, dict] = {}
    for run in runs:
        known.update(run.kept_rows())
    reason = f"the run stopped before this cover: {one_line(error)}"
    rows = [known.get(task.item_id) or error_row(task.item_id, STOPPED, reason, attempts=0)
            for task in tasks]
    table = store.status_table(records.release_dir)
    try:
        records.write_covers_table(rows)
        stored = sum(row["status"] == "ok" for row in rows)
        note = f"{table.name} lists the {stored} covers stored; rerun to fetch the rest"
    except (OSError, LocalWriteError):
        table.unlink(missing_ok=True)  # a stale table would vouch for covers since replaced
        note = f"{table.name} could not be written and was removed; rerun once there is space"
    return OSError(error.errno, f"{error.strerror} ({note})", error.filename)
