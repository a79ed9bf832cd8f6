"""Stats logger: counts per shard (statuses, bytes, retries, speed) and the run's summary."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from .limits import ORIGINAL


@dataclass
class ShardStats:
    shard: int
    items: int
    digest: str
    cover_format: str = ORIGINAL  # how this shard's files are stored (see run.FetchOptions)
    statuses: Counter = field(default_factory=Counter)
    fetched: int = 0  # covers requested over the network in this run
    reused: int = 0  # rows kept from an earlier run (stored file verified, or a final error)
    attempts: int = 0
    bytes_downloaded: int = 0
    bytes_stored: int = 0
    started: float = field(default_factory=time.time)
    _clock: float = field(default_factory=time.perf_counter)

    def add(self, row: dict, *, fetched: bool, attempts: int = 0, downloaded: int = 0) -> None:
        self.statuses[row["status"]] += 1
        if fetched:
            self.fetched += 1
            self.attempts += attempts
            self.bytes_downloaded += downloaded
        else:
            self.reused += 1
        if row["status"] == "ok":
            self.bytes_stored += row["bytes"] or 0

    def as_dict(self) -> dict:
        elapsed = time.perf_counter() - self._clock
        return {
            "shard": self.shard,
            "items": self.items,
            "items_digest": self.digest,
            "cover_format": self.cover_format,
            "status_counts": dict(sorted(self.statuses.items())),
            "ok": self.statuses.get("ok", 0),
            "failed": self.items - self.statuses.get("ok", 0),
            "fetched": self.fetched,
            "reused": self.reused,
            "retries": max(0, self.attempts - self.fetched),
            "bytes_downloaded": self.bytes_downloaded,
            "bytes_stored": self.bytes_stored,
            "started_at": round(self.started, 3),
            "elapsed_s": round(elapsed, 3),
            "fetched_per_s": round(self.fetched / elapsed, 2) if elapsed > 0 else None,
        }


def summarize(shard_stats: list[dict], rows: list[dict], near_duplicates: dict,
              elapsed_s: float | None = None) -> dict:
    statuses = Counter(row["status"] for row in rows)
    fetched = sum(s.get("fetched", 0) for s in shard_stats)
    return {
        "shards": len(shard_stats),
        "items": len(rows),
        "status_counts": dict(sorted(statuses.items())),
        "ok": statuses.get("ok", 0),
        "failed": len(rows) - statuses.get("ok", 0),
        "bytes_stored": sum(row["bytes"] or 0 for row in rows if row["status"] == "ok"),
        "fetched_this_run": fetched,
        "elapsed_s": round(elapsed_s, 3) if elapsed_s is not None else None,
        "images_per_s": round(fetched / elapsed_s, 1) if fetched and elapsed_s else None,
        "near_duplicates": near_duplicates,
    }


def summary_line(summary: dict) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items() if k != "ok")
    line = (f"covers: {summary['ok']}/{summary['items']} ok"
            + (f" (failed: {errors})" if errors else "")
            + f", {summary['bytes_stored'] / 1e6:.1f} MB stored"
            + f", {summary['fetched_this_run']} fetched this run")
    if summary.get("images_per_s"):
        line += f" ({summary['images_per_s']:g} images/s)"
    groups = summary["near_duplicates"]["groups"]
    if groups is not None:  # None: a --shard run, which sees only some of the covers
        line += (f", {len(groups)} near-duplicate group(s) at phash distance <= "
                 f"{summary['near_duplicates']['threshold']}")
    return line
