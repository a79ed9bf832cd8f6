"""One cover, from URL to stored cover and status row: the per-item work of fetch-covers.

run.py calls fetch_and_store from its event loop and store_cover in its thread pool.
"""
from __future__ import annotations

import ctypes
import sys

from .images import ResizeSpec, process_cover


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


def store_cover(writer, item_id: str, body: bytes, complete: bool,
                resize: ResizeSpec | None) -> dict:
    """Validate `body` (resize it when asked), store it with the format's shard writer
    (covers/formats.py), and return its row (an error row when the body fails; the caller removes
    any stale cover of the item)."""
    cover = process_cover(body, complete, resize)
    if cover.status != "ok":  # run.py removes a stale cover of the item
        return error_row(item_id, cover.status, cover.error)
    writer.write(item_id, cover.data)
    return ok_row(item_id, cover)


async def fetch_and_store(fetcher, url: str, item_id: str, store) -> tuple[dict, int]:
    """Download `url` and store it with `await store(item_id, body, complete)`.

    Returns (row, bytes downloaded); row["attempts"] counts the requests made. A body of unknown
    length that decodes as cut short gets one more round.
    """
    attempts = downloaded = 0
    for _ in range(2):
        result = await fetcher.fetch(url)
        attempts += result.attempts
        downloaded += len(result.body or b"")
        if result.status != "ok":
            row = error_row(item_id, result.status, result.error)
            break
        row = await store(item_id, result.body, result.length_checked)
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
            "width": cover.width, "height": cover.height, "bytes": len(cover.data),
            "phash": cover.phash, "attempts": None}
