"""`pixelrec crawl`: crawl the platform (or the bundled simulator) into raw/."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from pixelrec_data.progress import bar

EXIT_STOPPED = 3        # the platform challenged the crawler: stopped on purpose
EXIT_INCOMPLETE = 1     # some videos could not be finished: rerun to continue
EXIT_INTERRUPTED = 130


@click.command("crawl")
@click.option("--base-url", required=True, help="API root, e.g. http://127.0.0.1:8000 (the simulator).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="raw/ folder to write.")
@click.option("--key-file", required=True, type=click.Path(path_type=Path),
              help="Secret key of the user-id hash (created when absent); keep it outside --out.")
@click.option("--max-videos", type=int, default=None, help="Stop after this many kept videos.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the related-video walk.")
@click.option("--rate", type=float, default=None,
              help="Requests per second (0 = unlimited, loopback targets only). Default: 1 for a "
                   "remote site, 0 for a loopback target such as the simulator.")
@click.option("--concurrency", type=int, default=None,
              help="Requests in flight. Default: 1 for a remote site, 8 for a loopback target.")
@click.option("--redis-url", default=None, help="Share the queue and duplicate filter with other "
              "crawler processes through this Redis (scrapy-redis).")
@click.option("--join-danmaku", is_flag=True, help="Hash commenters through crc32(mid) so comment "
              "and danmaku users meet (approximate: CRC-32 collides).")
@click.option("--shard-mb", type=float, default=64.0, show_default=True,
              help="Roll Parquet shards at about this many MB of buffered rows.")
def crawl(base_url, out, key_file, max_videos, seed, rate, concurrency, redis_url, join_danmaku,
          shard_mb):
    """Crawl micro-videos, commenters and danmaku senders into raw/ (resumable: rerun to continue)."""
    from crawler.run import CrawlOptions, run_crawl, validate

    options = CrawlOptions(base_url=base_url, out=out, key_file=key_file, max_videos=max_videos,
                           seed=seed, rate=rate, concurrency=concurrency, redis_url=redis_url,
                           join_danmaku=join_danmaku, shard_mb=shard_mb)
    validate(options)
    # a total (and so an ETA) only where one is known: --max-videos; else the bar shows the rate
    with bar(total=max_videos, desc="videos", unit="video") as progress:
        def on_video(kept: bool, events: int) -> None:
            if kept:
                progress.update(1)
                progress.set_postfix(events=on_video.events, refresh=False)
                on_video.events += events
        on_video.events = 0
        result = run_crawl(options, progress=on_video)
    stats = result.stats
    click.echo(f"crawl: {stats['videos']} videos, {stats['events']} events, "
               f"{stats['requests']} requests in all ({stats['last_run']['requests']} this run), "
               f"closed: {result.reason}")
    if result.stopped_by_platform:
        click.echo(f"stopped: {result.reason}", err=True)
        sys.exit(EXIT_STOPPED)
    if result.reason == "shutdown":
        click.echo("interrupted: rerun the same command to continue", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if redis_url and stats["videos_pending"]:
        click.echo(f"{stats['videos_pending']} videos are still open (other workers may be on them)")
    elif stats["videos_pending"] and not (max_videos and stats["videos"] >= max_videos):
        click.echo(f"incomplete: {stats['videos_pending']} videos could not be finished; "
                   f"rerun the same command to continue", err=True)
        sys.exit(EXIT_INCOMPLETE)
