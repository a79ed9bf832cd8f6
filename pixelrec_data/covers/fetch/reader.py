"""Reader: a release's items.parquet -> an ordered list of cover tasks, cut into shards.

Shards are consecutive runs of items in items.parquet order, so the same items file and shard size
always give the same shards (and the same shard file names) on every machine and every rerun.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow.parquet as pq

from schemas.errors import InputError
from schemas.io import check_schema

ITEM_ID = re.compile(r"i[0-9]+")  # used with fullmatch: no newline, no unicode digits
# The image CDN of the platform: always fetched over https (DESIGN fixtures README, "Cover URLs").
HTTPS_ONLY_SUFFIXES = (".hdslb.com",)


@dataclass(frozen=True)
class CoverTask:
    index: int  # position in items.parquet
    item_id: str
    url: str | None  # normalised; None when the item has no usable URL
    problem: str = ""  # why url is None


@dataclass(frozen=True)
class Shard:
    number: int
    tasks: tuple[CoverTask, ...]

    @property
    def digest(self) -> str:
        """Identifies the shard's content: a shard file is reused only for the same items and URLs."""
        h = hashlib.sha256()
        for task in self.tasks:
            h.update(f"{task.item_id}\t{task.url or ''}\n".encode())
        return h.hexdigest()

    @property
    def name(self) -> str:
        return f"shard-{self.number:05d}"


def normalize_cover_url(url: str | None) -> str | None:
    """The URL of the original image: https for protocol-relative and CDN URLs, no '@' resize suffix.

    '//i0.hdslb.com/bfs/archive/x.jpg@160w_100h.jpg' -> 'https://i0.hdslb.com/bfs/archive/x.jpg'.
    Returns None when the URL is empty or not http(s).
    """
    if url is None:
        return None
    url = url.strip()
    if not url:
        return None
    if url.startswith("//"):
        url = "https:" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    scheme = parts.scheme
    if parts.hostname.endswith(HTTPS_ONLY_SUFFIXES):
        scheme = "https"
    path = parts.path
    head, _, last = path.rpartition("/")
    if "@" in last:  # the resize suffix lives in the last path segment only
        path = f"{head}/{last.split('@', 1)[0]}"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def read_cover_tasks(release_dir: str | Path, limit: int | None = None) -> list[CoverTask]:
    """One task per item of release_dir/items.parquet, in file order (the first `limit` only)."""
    path = Path(release_dir) / "items.parquet"
    check_schema(path, "items")
    try:
        table = pq.ParquetFile(path).read(columns=["item_id", "cover_url"])  # no pandas import
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None
    if limit is not None:
        table = table.slice(0, limit)
    tasks, seen = [], set()
    for index, (item_id, raw_url) in enumerate(zip(table.column("item_id").to_pylist(),
                                                   table.column("cover_url").to_pylist())):
        _check_item_id(item_id, path, index, seen)
        url = normalize_cover_url(raw_url)
        problem = "" if url else ("no cover_url" if not raw_url else f"not an http(s) URL: {raw_url!r:.80}")
        tasks.append(CoverTask(index, item_id, url, problem))
    return tasks


def _check_item_id(item_id, path: Path, index: int, seen: set) -> None:
    # Item ids become file names: anything but i<digits> could escape covers/ or clash.
    if not isinstance(item_id, str) or not ITEM_ID.fullmatch(item_id):
        raise InputError(f"{path}: row {index}: item_id {item_id!r:.60} is not of the form i<digits>")
    if item_id in seen:
        raise InputError(f"{path}: row {index}: item_id {item_id} appears twice")
    seen.add(item_id)


def shard_tasks(tasks: list[CoverTask], shard_size: int) -> list[Shard]:
    if shard_size < 1:
        raise InputError(f"--shard-size must be at least 1, got {shard_size}")
    return [Shard(n, tuple(tasks[start:start + shard_size]))
            for n, start in enumerate(range(0, len(tasks), shard_size))]
