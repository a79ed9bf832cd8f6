"""Crawl state under raw/state/: who is crawling, what is finished, what was discovered.

Each crawler process is a *worker* with a small integer id, held through an exclusive lock on
raw/state/workers/w<id>.lock (the OS drops the lock when the process dies, even by SIGKILL). A
worker appends to its own journal raw/state/journal-w<id>.jsonl; a line is one record, written with
one write() and fsync'd, and a torn last line (the process died mid-write) is ignored.

Shards are named part-w<id>-<seq>.parquet and a "commit" record with that seq is the moment their
videos count as done: shards written before a commit that never happened are orphans and are
deleted when a worker takes over a dead worker's id. So a video's events are written once or not
at all, whatever moment the crawl is killed at.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_SHARD = re.compile(r"^part-(w\d+)-(\d+)\.parquet$")
_JOURNAL = re.compile(r"^journal-(w\d+)\.jsonl$")


@dataclass
class Known:
    """Everything the journals say, over all workers."""
    done: set = field(default_factory=set)          # aids finished (kept or rejected)
    kept: set = field(default_factory=set)          # aids kept (in committed shards)
    discovered: set = field(default_factory=set)    # aids found by listings or the related walk
    listing_pages: dict = field(default_factory=dict)   # rid -> set of pn done
    listing_counts: dict = field(default_factory=dict)  # rid -> data.page.count
    committed_seq: dict = field(default_factory=dict)   # worker -> last committed seq (-1: none)
    events: int = 0                                     # events in committed shards

    def pending_videos(self) -> list:
        return sorted(self.discovered - self.done)


def read_journal(path: Path) -> list[dict]:
    records = []
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # torn last line: that record never happened
            try:
                records.append(json.loads(line))
            except ValueError:
                break
    return records


def load_known(state_dir: Path) -> Known:
    known = Known()
    if not state_dir.is_dir():
        return known
    for path in sorted(state_dir.iterdir()):
        match = _JOURNAL.match(path.name)
        if not match:
            continue
        known.committed_seq.setdefault(match.group(1), -1)
        for record in read_journal(path):
            _apply(known, match.group(1), record)
    return known


def _apply(known: Known, worker: str, record: dict) -> None:
    if record.get("t") == "listing":
        rid = int(record["rid"])
        known.listing_pages.setdefault(rid, set()).add(int(record["pn"]))
        known.listing_counts[rid] = int(record["count"])
        known.discovered.update(record["found"])
    elif record.get("t") == "commit":
        known.done.update(record["kept"])
        known.done.update(record["rejected"])
        known.kept.update(record["kept"])
        known.discovered.update(record["related"])
        known.events += int(record.get("events", 0))
        if record.get("seq") is not None:
            known.committed_seq[worker] = max(known.committed_seq.get(worker, -1), record["seq"])


class Worker:
    """This process's worker id, its lock and its journal."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.state_dir = self.out_dir / "state"
        (self.state_dir / "workers").mkdir(parents=True, exist_ok=True)
        self.name, self._lock = self._claim_id()
        self.journal_path = self.state_dir / f"journal-{self.name}.jsonl"
        self.next_seq = 0

    def _claim_id(self):
        for number in range(10_000):
            name = f"w{number:04d}"
            handle = open(self.state_dir / "workers" / f"{name}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue  # a live worker holds it
            return name, handle
        raise RuntimeError(f"{self.state_dir}: no free worker id")

    def recover(self, known: Known) -> None:
        """Delete this id's uncommitted shards (from a killed run) and continue its numbering."""
        last = known.committed_seq.get(self.name, -1)
        self.next_seq = last + 1
        for folder in (self.out_dir / "videos", self.out_dir / "interactions"):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                match = _SHARD.match(path.name)
                if match and match.group(1) == self.name and int(match.group(2)) > last:
                    path.unlink()
                elif path.name.startswith(".part-") and f"-{self.name}-" in path.name:
                    path.unlink()  # a temporary file of a write that never finished

    def live_workers(self) -> set:
        """Worker ids whose lock is held by a running process (this one included)."""
        live = {self.name}
        for path in (self.state_dir / "workers").glob("w*.lock"):
            if path.stem == self.name:
                continue
            with open(path, "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    live.add(path.stem)
                else:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        return live

    def shard_name(self, seq: int) -> str:
        return f"part-{self.name}-{seq:05d}.parquet"

    def append(self, record: dict, durable: bool = True) -> None:
        """One record, one write(). durable=False skips the fsync: for records that only save work
        on resume (a listing page), whose loss in a power cut means re-reading that page; a kill of
        the process loses no written line either way, and the next durable record syncs them."""
        line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
