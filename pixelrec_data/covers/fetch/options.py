"""The options of fetch-covers: the guarded HTTP core's (net.options.NetOptions) plus the cover
fetcher's own. No heavy import, so the command builds it without loading aiohttp or Pillow."""
from __future__ import annotations

from dataclasses import dataclass

from pixelrec_data.net.options import NetOptions

from .limits import MAX_COVER_BYTES, MAX_REDIRECTS, ORIGINAL


@dataclass
class FetchOptions(NetOptions):
    max_bytes: int = MAX_COVER_BYTES
    max_redirects: int = MAX_REDIRECTS
    concurrency: int = 16
    per_host: int | None = None  # connections in flight to one host; None = concurrency
    rate: float | None = None  # requests/s per host; None = polite default (see HostRateLimiter)
    shard_size: int = 10_000
    limit: int | None = None
    dup_threshold: int = 4
    shard: tuple[int, int] | None = None  # (i, n): only shards number % n == i (machine i of n)
    resize: "ResizeSpec | None" = None  # noqa: F821 (resize.ResizeSpec); None: the original bytes
    format: str = "files"  # how the covers are stored: a name of covers.store.FORMATS

    @property
    def cover_format(self) -> str:
        """How the stored covers are encoded: the original bytes, or a resize label."""
        return self.resize.label if self.resize is not None else ORIGINAL
