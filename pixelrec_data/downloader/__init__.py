"""The cover downloader (`pixelrec fetch-covers`), in small parts with one job each:

reader (items.parquet -> cover tasks and shards), fetch (aiohttp, rate, retries), images
(validate, resize, re-encode, hash), writer (atomic files and tables), stats (per shard, summary),
neardup (perceptual-hash groups), limits (constants), run (composes them); transfer (resumable
file downloads, used by the release mirror).
"""
__all__ = ["FetchOptions", "fetch_release_covers"]


def __getattr__(name):
    # Lazy, so that importing a light part (limits, for the command's help) loads no aiohttp/Pillow.
    if name in __all__:
        from . import run
        return getattr(run, name)
    raise AttributeError(name)
