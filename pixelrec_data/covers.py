"""Fetch a release's covers and list them in its manifest: what `fetch-covers` and
`download --with-covers` do, under the release's lock."""
from __future__ import annotations

from pathlib import Path

from pipelines.finish import update_release
from schemas.lifecycle import release_lock


def fetch_and_list_covers(release_dir: str | Path, options, progress=None) -> dict:
    """Covers of `release_dir` (downloader.fetch_release_covers), then its manifest and card.

    Without the manifest update, `pixelrec verify` would see the covers as unlisted files and
    `pixelrec publish` (which serves what the manifest vouches for) would leave them out. A
    `--shard` run leaves the manifest to the final run without --shard. Returns the summary, with
    `manifest_updated` added.
    """
    from pixelrec_data.downloader import fetch_release_covers

    release_dir = Path(release_dir)
    with release_lock(release_dir, "fetch-covers"):
        summary = fetch_release_covers(release_dir, options, progress=progress)
        updated = options.shard is None and (release_dir / "manifest.json").is_file()
        if updated:
            # only what this command wrote is described afresh: every other file must still be
            # what the manifest vouched for
            update_release(release_dir, ("covers.parquet", "covers/"), {"covers": summary["ok"]})
    return {**summary, "manifest_updated": updated}
