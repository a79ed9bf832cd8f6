"""The cover downloader (`pixelrec fetch-covers`), in small parts with one job each:

reader (items.parquet -> cover tasks and shards), fetch (aiohttp, rate, retries), images
(validate, re-encode, hash), writer (atomic files and tables), stats (per shard, summary),
neardup (perceptual-hash groups), run (composes them); transfer (resumable file downloads,
used by the release mirror).
"""
from .run import FetchOptions, fetch_release_covers

__all__ = ["FetchOptions", "fetch_release_covers"]
