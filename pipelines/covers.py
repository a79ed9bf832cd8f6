"""The covers of a release as changes of it: the covers room (pixelrec_data.covers) writes them,
pipelines.finish finishes the release (manifest, card), under its lock.

Without the manifest update, `pixelrec verify` would see the covers as unlisted files and
`pixelrec publish` (which serves what the manifest vouches for) would leave them out.
"""
from __future__ import annotations

from pathlib import Path

from pixelrec_data.covers import store

from .finish import change_release
from .manifest import MANIFEST


def fetch_covers(release, options, progress=None) -> dict:
    """Covers of `release` (covers.fetch.fetch_release_covers, in `options.format`), then its
    manifest and card. Covers are stored in the release as they arrive, so a killed run keeps
    them. A `--shard` run leaves the manifest to the final run without --shard. Returns the
    summary, with `manifest_updated` added."""
    from pixelrec_data.covers.fetch import fetch_release_covers

    def change(folder: Path, _overlay: Path):
        summary = fetch_release_covers(folder, options, progress=progress)
        summary["manifest_updated"] = options.shard is None and (folder / MANIFEST).is_file()
        if not summary["manifest_updated"]:
            return summary, None, None
        # only what this command wrote is described afresh: every other file must still be what
        # the manifest vouched for
        return summary, store.written_by(options.format), {"covers": summary["ok"]}

    return change_release(release, "fetch-covers", change)


def pack_covers(release, to: str = "parquet", shard_bytes: int | None = None) -> dict:
    """The covers of `release` converted to format `to` (covers.pack), moved into the release,
    listed in its manifest (verify and publish vouch for them), its card refreshed; returns a
    summary with `manifest_updated`."""
    from pixelrec_data.covers.pack import DEFAULT_SHARD_BYTES, pack

    def change(folder: Path, overlay: Path):
        summary = pack(folder, overlay, to, shard_bytes or DEFAULT_SHARD_BYTES)
        summary["manifest_updated"] = (folder / MANIFEST).is_file()
        return summary, summary.pop("rewritten"), None

    return change_release(release, "pack-covers", change)
