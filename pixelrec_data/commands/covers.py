"""`pixelrec fetch-covers`: download a release's cover images into <release>/covers/."""
from __future__ import annotations

from pathlib import Path

import click

from schemas.errors import InputError


@click.command("fetch-covers")
@click.option("--release", "release_dir", required=True, type=click.Path(path_type=Path),
              help="Release folder holding items.parquet (e.g. data/pixel200k).")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1),
              help="Requests in flight at once.")
@click.option("--rate", default=None, type=click.FloatRange(min=0),
              help="Requests per second per host (0 = no limit). Default: 5/s for remote hosts, "
                   "no limit for 127.0.0.1/localhost.")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(min=0),
              help="Extra tries after a 5xx, 429, timeout, truncated body or connection error.")
@click.option("--timeout", default=20.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds for one request, body included.")
@click.option("--backoff", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="First retry delay in seconds; doubles on each retry.")
@click.option("--shard-size", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Items per shard (shards are consecutive items; the unit of resume and stats).")
@click.option("--limit", default=None, type=click.IntRange(min=0),
              help="Only the first N items (for trials).")
@click.option("--dup-threshold", default=4, show_default=True, type=click.IntRange(0, 32),
              help="Report covers whose perceptual hashes differ in at most this many bits.")
@click.option("--part", default=None, metavar="K/N",
              help="Fetch only shards K, K+N, K+2N, ... (machine K of N, sharing the release "
                   "folder); then run once without --part to write covers.parquet.")
def fetch_covers(release_dir, concurrency, rate, retries, timeout, backoff, shard_size, limit,
                 dup_threshold, part):
    """Download every cover of a release: covers/<item_id>.jpg, covers.parquet, covers/_stats/.

    Rerunning skips covers already stored and verified, and retries only transient failures.
    """
    from pixelrec_data.downloader import FetchOptions, fetch_release_covers
    from pixelrec_data.downloader.stats import summary_line
    from pixelrec_data.progress import bar

    options = FetchOptions(concurrency=concurrency, rate=rate, retries=retries, timeout=timeout,
                           backoff=backoff, shard_size=shard_size, limit=limit,
                           dup_threshold=dup_threshold, part=_parse_part(part))
    summary = fetch_release_covers(release_dir, options, progress=bar)
    click.echo(summary_line(summary))
    if options.part is not None:
        click.echo("part done; when every part is done, run fetch-covers once without --part "
                   "to write covers.parquet")
        return
    click.echo(f"wrote {Path(release_dir) / 'covers.parquet'} and "
               f"{Path(release_dir) / 'covers' / '_stats' / 'summary.json'}")
    if _refresh_manifest(Path(release_dir), summary["ok"]):
        click.echo(f"updated {Path(release_dir) / 'manifest.json'} (covers listed)")


def _parse_part(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise InputError(f"--part: expected K/N with 0 <= K < N, got {text!r}")
    return int(k), int(n)


def _refresh_manifest(release_dir: Path, covers_ok: int) -> bool:
    """List the new cover files in the release's manifest.json, when the release has one.

    Without this, `pixelrec verify` would see the covers as unlisted files and `pixelrec publish`
    (which serves what the manifest vouches for) would leave them out of the mirror.
    """
    if not (release_dir / "manifest.json").is_file():
        return False
    from pipelines.manifest import read_manifest, refresh_manifest

    manifest = read_manifest(release_dir)
    # Re-describe only what this command wrote: every other file must still be what it vouched for.
    from pixelrec_data.downloader.transfer import file_matches
    for entry in manifest["files"]:
        ours = entry["path"] == "covers.parquet" or entry["path"].startswith("covers/")
        if not ours and not file_matches(release_dir / entry["path"], entry["bytes"], entry["sha256"]):
            raise InputError(f"{release_dir / entry['path']}: changed since manifest.json was "
                             "written; covers were fetched, but the manifest was left as it was")
    refresh_manifest(release_dir, {"covers": covers_ok})
    return True
