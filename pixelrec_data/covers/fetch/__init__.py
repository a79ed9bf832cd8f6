"""The cover fetcher (`pixelrec fetch-covers`), in small parts with one job each:

reader (items.parquet -> cover tasks and shards), client (rate, retries; each request a guarded GET
of pixelrec_data.net), images (validate, resize, re-encode, hash), work (one cover from URL to
stored cover and row), records (per-shard records and the status table), stats (per shard,
summary), neardup (perceptual-hash groups), reuse (rows of an earlier run), limits (constants),
options (FetchOptions), run (composes them). The covers are stored by the writer of the chosen
format (covers/formats.py).
"""
__all__ = ["FetchOptions", "fetch_release_covers"]


def __getattr__(name):
    # Lazy, so that importing a light part (limits, for the command's help) loads no aiohttp/Pillow.
    if name == "FetchOptions":
        from .options import FetchOptions
        return FetchOptions
    if name == "fetch_release_covers":
        from .run import fetch_release_covers
        return fetch_release_covers
    raise AttributeError(name)
