"""`pixelrec fetch-covers`: download a release's cover images, stored in the format chosen."""
from __future__ import annotations

import os
from pathlib import Path

import click

from pixelrec_data.covers.fetch.limits import JPEG_QUALITY, MAX_COVER_BYTES, RESIZE_MODES
from pixelrec_data.covers.store import DEFAULT_FORMAT, FORMATS, STATUS_TABLE, stats_dir
from schemas.errors import InputError

ALLOW_PRIVATE_HELP = ("Also fetch cover URLs (and redirects) that reach loopback, private or "
                      "link-local addresses (a local simulator or mirror). Default: public only.")


@click.command("fetch-covers")
@click.option("--release", "release_dir", required=True, type=click.Path(path_type=Path),
              help="Release folder holding items.parquet (e.g. data/pixel200k).")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1),
              help="Requests in flight at once.")
@click.option("--per-host", default=None, type=click.IntRange(min=1),
              help="Connections in flight to one host. Default: the --concurrency value.")
@click.option("--rate", default=None, type=click.FloatRange(min=0),
              help="Requests per second per host (0 = no limit). Default: 5/s for remote hosts, "
                   "no limit for 127.0.0.1/localhost.")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(min=0),
              help="Extra tries after a 5xx, 429, timeout, truncated body or connection error "
                   "(never after a 404, 403, 410, a redirect loop or a too large body).")
@click.option("--timeout", default=20.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds for one request, body included (connecting: at most 10 of them).")
@click.option("--backoff", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="First retry delay in seconds; doubles on each retry.")
@click.option("--resize", "resize_size", default=None, type=click.IntRange(min=1), metavar="S",
              help="Store each cover resized and re-encoded as JPEG (default: the original bytes).")
@click.option("--resize-mode", default="keep_ratio", show_default=True,
              type=click.Choice(RESIZE_MODES),
              help="With --resize: keep_ratio = smaller side S, aspect kept; center_crop = the same, "
                   "then the centre SxS; squash = SxS, aspect ignored. Small covers are enlarged.")
@click.option("--jpeg-quality", default=JPEG_QUALITY, show_default=True,
              type=click.IntRange(1, 100), help="JPEG quality of re-encoded covers.")
@click.option("--max-bytes", default=MAX_COVER_BYTES, show_default=True,
              type=click.IntRange(min=1), help="A body over this many bytes is cut off: too_large.")
@click.option("--shard-size", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Items per shard (shards are consecutive items; the unit of resume and stats).")
@click.option("--limit", default=None, type=click.IntRange(min=0),
              help="Only the first N items (for trials).")
@click.option("--dup-threshold", default=4, show_default=True, type=click.IntRange(0, 32),
              help="Report covers whose perceptual hashes differ in at most this many bits.")
@click.option("--format", "fmt", default=DEFAULT_FORMAT, show_default=True,
              type=click.Choice(list(FORMATS)),
              help="How the covers are stored: files (covers/<item_id>.jpg), parquet (shards of "
                   "the items with a datasets.Image column, as pack-covers writes) or webdataset "
                   "(tar shards of <item_id>.jpg + <item_id>.json).")
@click.option("--shard", default=None, metavar="I/N",
              help="Fetch only shards I, I+N, I+2N, ... (machine I of N, sharing the release "
                   f"folder); then run once without --shard to write {STATUS_TABLE}.")
@click.option("--part", default=None, hidden=True, help="Old name of --shard.")
@click.option("--allow-private-hosts", is_flag=True, help=ALLOW_PRIVATE_HELP)
def fetch_covers(release_dir, concurrency, per_host, rate, retries, timeout, backoff, resize_size,
                 resize_mode, jpeg_quality, max_bytes, shard_size, limit, dup_threshold, fmt, shard,
                 part, allow_private_hosts):
    """Download every cover of a release into the chosen format, with a status table (one row per
    item) and per-shard records.

    Every cover is decoded to check it. Status: ok, http_<code>, timeout,
    connection, truncated, not_image, corrupt, bomb (over 40M pixels), too_large, bad_url,
    too_many_redirects, blocked_host (a loopback/private address), bad_encoding (a compressed
    answer), not_fetched (a write failed first, e.g. a full disk). Rerunning skips covers already stored and verified, whatever the --shard-size, and
    retries only transient failures.
    """
    # The covers are spread over this command's own threads: numpy's BLAS threads would only
    # busy-wait beside them (2.5% of the command's CPU on 2 cores). Set before numpy is loaded.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from pixelrec_data.covers.fetch import FetchOptions
    from pixelrec_data.covers.fetch.resize import ResizeSpec

    if shard is not None and part is not None:
        raise InputError("--part is the old name of --shard: give one of them")
    resize = ResizeSpec(resize_size, resize_mode, jpeg_quality) if resize_size else None
    options = FetchOptions(concurrency=concurrency, per_host=per_host, rate=rate, retries=retries,
                           timeout=timeout, backoff=backoff, shard_size=shard_size, limit=limit,
                           dup_threshold=dup_threshold, resize=resize, max_bytes=max_bytes,
                           allow_private_hosts=allow_private_hosts, format=fmt,
                           shard=_parse_shard(shard if part is None else part,
                                              "--shard" if part is None else "--part"))
    run_fetch(Path(release_dir), options)


def run_fetch(release_dir: Path, options) -> dict:
    from pipelines.covers import fetch_covers as fetch
    from pixelrec_data.covers.fetch.stats import summary_line
    from pixelrec_data.progress import bar

    summary = fetch(release_dir, options, progress=bar)
    click.echo(summary_line(summary))
    if options.shard is not None:
        click.echo("shard done; when every machine is done, run fetch-covers once without "
                   f"--shard to write {STATUS_TABLE}")
        return summary
    click.echo(f"wrote {release_dir / STATUS_TABLE} and "
               f"{stats_dir(release_dir) / 'summary.json'}")
    if summary["manifest_updated"]:
        click.echo(f"updated {release_dir / 'manifest.json'} (covers listed)")
    return summary


def _parse_shard(text: str | None, flag: str) -> tuple[int, int] | None:
    if text is None:
        return None
    i, sep, n = text.partition("/")
    if not (sep and i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise InputError(f"{flag}: expected I/N with 0 <= I < N, got {text!r}")
    return int(i), int(n)
