"""fetch-covers: compose reader -> client -> validator -> format writer -> records and stats, one
shard at a time.

The storage format (files, parquet, webdataset: covers/formats.py, chosen by FetchOptions.format)
gets one writer per shard, behind the same write / remove / close.
Resume: a shard whose records and stats files exist is re-checked, not re-fetched: an 'ok' row is
kept when its stored cover still has the recorded size and sha256, a final error (404, corrupt...)
is kept as it is, and only the rest (transient errors, missing or changed covers) is fetched again.
In a shard cut short by a kill, covers already stored (atomically, so whole) are re-read and
re-validated instead of downloaded, when they are originals: a resized cover cannot be checked
against its source, so in resize mode (or after a run that switched encoding was cut short) such
covers are fetched again. A shard's records name the stored encoding (original bytes or a resize
label); records of another encoding are not reused.
"""
from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path

from schemas.errors import InputError

from .. import store
from ..writing import LocalWriteError
from .bodies import BodyStore
from .client import Fetcher, HostRateLimiter, is_retryable, make_session
from .images import process_cover
from .limits import ORIGINAL
from .neardup import near_duplicate_groups
from .options import FetchOptions
from .reader import CoverTask, Shard, read_cover_tasks, shard_tasks
from .records import MIXED, FetchRecords
from .reuse import carried_rows
from .stats import ShardStats, summarize
from .work import (CoverThreads, error_row, fetch_and_store, keep_image_memory, ok_row,
                   stopped_table, store_cover)

SUMMARY_FILE = "summary.json"
RUN_ONLY = ("fetched_this_run", "elapsed_s", "images_per_s")  # figures of one run, not of the data


def fetch_release_covers(release_dir: str | Path, options: FetchOptions, progress=None) -> dict:
    """Download every cover of release_dir; store them in `options.format`, write the status
    table and the stats (covers/store.py names the files).

    `progress(total=, desc=, unit=)` opens a tqdm-like bar (pixelrec_data.progress.bar); returns
    the summary also written to the stats folder's summary.json.
    """
    release_dir = Path(release_dir)
    if not release_dir.is_dir():
        raise InputError(f"{release_dir}: no such release folder")
    _check_options(options)
    tasks = read_cover_tasks(release_dir, options.limit)
    shards = shard_tasks(tasks, options.shard_size) if tasks else []
    records = FetchRecords(release_dir)
    records.remove_stale_temporaries()
    # Covers left by a killed run are re-validated only when they are originals of this encoding;
    # while an encoding switch is unfinished the marker says "mixed", so none is trusted.
    stored = records.stored_format()
    disk_reuse = options.resize is None and stored == options.cover_format
    # rows of every finished shard still valid, read before this run rewrites any shard file
    carried = carried_rows(records, tasks, options.cover_format) \
        if stored == options.cover_format else {}
    if stored != options.cover_format:
        records.set_stored_format(MIXED)
    mine, desc = shards, "covers"
    if options.shard is not None:
        # One machine of several: its shards only. A plain run over the merged folders afterwards
        # finds every shard done, verifies the covers and writes the status table without fetching.
        i, n = options.shard
        mine, desc = [shard for shard in shards if shard.number % n == i], f"covers shard {i}/{n}"
    started, runs = time.perf_counter(), []
    try:
        with (progress or _NoBar)(total=sum(len(s.tasks) for s in mine), desc=desc,
                                  unit="cover") as bar:
            shard_stats, rows = asyncio.run(_run_shards(mine, records, options, bar, disk_reuse,
                                                        carried, runs))
        return _finish(records, options, shards, shard_stats, rows, started)
    except LocalWriteError as exc:  # a full disk: the path, and a status table that tells the truth
        raise stopped_table(records, tasks, runs, options, exc.error) from None


def _finish(records: FetchRecords, options: FetchOptions, shards: list[Shard], shard_stats,
            rows: list[dict], started: float) -> dict:
    release_dir = records.release_dir
    records.set_stored_format(options.cover_format)
    elapsed = time.perf_counter() - started
    if options.shard is not None:
        return summarize(shard_stats, rows, {"threshold": options.dup_threshold, "groups": None},
                         elapsed)
    ok = [row for row in rows if row["status"] == "ok"]
    groups = near_duplicate_groups([r["item_id"] for r in ok], [r["phash"] for r in ok],
                                   options.dup_threshold)
    records.write_covers_table(rows)
    records.drop_shards_from(len(shards))  # left by an earlier run with a smaller --shard-size
    store.FORMATS[options.format].finish(release_dir, len(shards))
    summary = summarize(shard_stats, rows, {"threshold": options.dup_threshold, "groups": groups},
                        elapsed)
    # The file holds no per-run figure, so a rerun that changes nothing rewrites it identically.
    records.write_json(SUMMARY_FILE, {k: v for k, v in summary.items() if k not in RUN_ONLY})
    return summary


def _check_options(o: FetchOptions) -> None:
    store.check_format(o.format)
    checks = [(o.concurrency >= 1, "--concurrency must be at least 1"),
              (o.per_host is None or o.per_host >= 1, "--per-host must be at least 1"),
              (o.max_bytes >= 1 and o.max_redirects >= 0, "bad byte or redirect limit"),
              (o.rate is None or o.rate >= 0, "--rate must be >= 0 (0 = no limit)"),
              (o.retries >= 0, "--retries must be >= 0"),
              (o.timeout > 0, "--timeout must be > 0"),
              (o.shard_size >= 1, "--shard-size must be at least 1"),
              (o.limit is None or o.limit >= 0, "--limit must be >= 0"),
              (0 <= o.dup_threshold <= 32, "--dup-threshold must be in 0..32"),
              (o.shard is None or 0 <= o.shard[0] < o.shard[1], "--shard I/N needs 0 <= I < N")]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


async def _run_shards(shards: list[Shard], records: FetchRecords, options: FetchOptions, progress,
                      disk_reuse: bool, carried: dict[str, dict], runs: list):
    """Every shard in turn; `runs` gets each ShardRun as it starts (what a failed write reports)."""
    limiter = HostRateLimiter(options.rate)
    bodies = BodyStore(store.stats_dir(records.release_dir))
    all_stats, all_rows = [], []
    keep_image_memory()
    # What is loaded now lives as long as the run: the collector need not look at it again (its
    # full collections would walk every imported module's objects; 0.2 s of a 3,000-cover run).
    gc.freeze()
    # Decoding, hashing and file writes block: they go to threads (the codecs release the GIL, so
    # with --resize the threads use every core), and to the loop's own when covers pile up.
    with CoverThreads(os.cpu_count() or 1, options.concurrency) as threads:
        async with make_session(options) as session:
            fetcher = Fetcher(session, limiter, options, bodies)
            for shard in shards:
                run = ShardRun(shard, records, fetcher, threads, progress, options, disk_reuse,
                               carried)
                runs.append(run)
                stats, rows = await run.run(options.concurrency)
                all_stats.append(stats)
                all_rows.extend(rows)
    return all_stats, all_rows


class ShardRun:
    """Processes one shard with `concurrency` workers pulling from a queue (img2dataset-style)."""

    def __init__(self, shard: Shard, records: FetchRecords, fetcher, threads: CoverThreads,
                 progress, options: FetchOptions, disk_reuse: bool,
                 carried: dict[str, dict] | None = None):
        self.shard, self.records, self.fetcher, self.threads, self.progress = (
            shard, records, fetcher, threads, progress)
        release = records.release_dir
        positions = range(shard.tasks[0].index, shard.tasks[-1].index + 1)
        self.writer = store.FORMATS[options.format].shard_writer(
            release, shard.name, shard.number, positions, store.spool_dir(release, shard.name))
        self.resize = options.resize
        digest = shard.digest  # hashes every task: once
        self.stats = ShardStats(shard.number, len(shard.tasks), digest, options.cover_format)
        self.rows: list[dict | None] = [None] * len(shard.tasks)
        self.finished = False
        self.failed: LocalWriteError | None = None  # the first failed write stops the shard
        old_stats, old_rows = records.read_shard(shard.name)
        self.finished_before = (old_stats is not None
                                and old_stats.get("items_digest") == digest
                                and old_stats.get("cover_format", ORIGINAL) == options.cover_format)
        if self.finished_before:
            self.previous = {row["item_id"]: row for row in old_rows}
        else:  # rows of the same items from shards of another layout (another --shard-size)
            carried = carried or {}
            self.previous = {t.item_id: carried[t.item_id] for t in shard.tasks if t.item_id in carried}
        # files of a shard recorded in another format are that format's, never originals
        self.disk_reuse = disk_reuse and (old_stats is None or self.finished_before)

    async def run(self, concurrency: int) -> tuple[dict, list[dict]]:
        """(this run's stats of the shard, its covers rows in item order)"""
        queue: asyncio.Queue = asyncio.Queue()
        for position, task in enumerate(self.shard.tasks):
            queue.put_nowait((position, task))
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
        if self.failed is not None:
            raise self.failed
        changed = not (self.finished_before and self.stats.fetched == 0 and self._same_rows())
        await self.threads.run(self.writer.close, self.rows, changed, inline=False)
        if changed:
            self.records.write_shard(self.shard.name, self.rows, self.stats.as_dict())
        # else nothing changed: the shard's files from the earlier run stay as they are
        self.finished = True
        return self.stats.as_dict(), list(self.rows)

    def _same_rows(self) -> bool:
        return all(self.previous.get(row["item_id"]) == row for row in self.rows)

    async def _worker(self, queue: asyncio.Queue) -> None:
        while self.failed is None:  # after a failed write, each worker ends its item and stops
            try:
                position, task = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            row = None
            if self._may_reuse(task):  # only then pay for a trip to the thread pool
                row = await self.threads.run(self._reuse, task, inline=False)
            if row is not None:
                self.stats.add(row, fetched=False)
            else:
                try:
                    row = await self._fetch(task)
                except LocalWriteError as exc:  # the item stays without a row: not stored
                    self.failed = self.failed or exc
                    return
            self.rows[position] = row
            self.progress.update(1)

    def _may_reuse(self, task: CoverTask) -> bool:
        return (task.url is None or task.item_id in self.previous
                or (self.disk_reuse and self.writer.holds(task.item_id)))

    def _reuse(self, task: CoverTask) -> dict | None:
        """The row of a cover that needs no download, or None."""
        if task.url is None:
            return error_row(task.item_id, "bad_url", task.problem, attempts=0)  # never requested
        old = self.previous.get(task.item_id)
        if old is not None:
            if old["status"] == "ok":
                if self.writer.matches(task.item_id, old["bytes"], old["sha256"]):
                    return old
            elif not is_retryable(old["status"]):
                return old  # a final error (404, corrupt ...) stays final
            return None
        if not self.disk_reuse:
            return None
        source = self.writer.stored_source(task.item_id)  # left by a run killed in this shard
        if source is not None:
            cover = process_cover(source)
            kept = cover.data == source if isinstance(source, bytes) else cover.file == source
            if cover.status == "ok" and kept:
                return ok_row(task.item_id, cover)  # the killed run's request count is lost
        return None

    def kept_rows(self) -> dict[str, dict]:
        """item_id -> row of every cover of this shard whose row tells what is stored: all of
        them once the shard is done; before, those of a format that stores each cover in place
        as it comes (a shard format's covers wait in a spool until the shard is written)."""
        done = self.finished
        return {row["item_id"]: row for row in self.rows if row is not None
                and (done or row["status"] != "ok" or self.writer.in_place)}

    async def _fetch(self, task: CoverTask) -> dict:
        async def keep(item_id, body, complete):
            return await self.threads.run(store_cover, self.writer, item_id, body, complete,
                                          self.resize, inline=body.path is None)
        row, downloaded = await fetch_and_store(self.fetcher, task.url, task.item_id, keep)
        if row["status"] != "ok" and self.writer.holds(task.item_id):
            # a cover is stored only for an 'ok' row (a stale one from an earlier run goes)
            await self.threads.run(self.writer.remove, task.item_id, inline=False)
        self.stats.add(row, fetched=True, attempts=row["attempts"], downloaded=downloaded)
        return row


class _NoBar:
    def __init__(self, **_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass
