"""`pixelrec generate-raw`: write raw/ from the synthetic world, as a crawl of it would."""
from __future__ import annotations

from pathlib import Path

import click

from schemas.errors import InputError
from schemas.keys import load_or_create_key


@click.command("generate-raw")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="raw/ folder to write")
@click.option("--key-file", required=True, type=click.Path(path_type=Path),
              help="keyed-hash key (created with 32 random bytes when absent); keep it outside RAW")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--users", required=True, type=click.IntRange(min=1))
@click.option("--videos", required=True, type=click.IntRange(min=2))
@click.option("--interactions", default=None, type=click.IntRange(min=1),
              help="about this many raw interaction rows (default: 6.6 choices per user)")
@click.option("--hot-videos", default=0, show_default=True, type=click.IntRange(min=0),
              help="force this many videos above the 6,500-user cap (needs about 7,000+ users)")
@click.option("--chunk-users", default=1_000_000, show_default=True, type=click.IntRange(min=1),
              help="users generated and written per shard (bounds memory)")
@click.option("--join-danmaku", is_flag=True,
              help="key commenters through crc32(mid), as danmaku senders are, so both sources meet")
@click.option("--overwrite", is_flag=True, help="replace a non-empty OUT")
def generate_raw(out, key_file, seed, users, videos, interactions, hot_videos, chunk_users, join_danmaku,
                 overwrite):
    """Generate raw/ (videos + interactions shards) of a synthetic world."""
    from pixelrec_data.synthetic import write_raw

    out, key_file = out.absolute(), key_file.absolute()
    if key_file == out or out in key_file.parents:
        raise InputError(f"{key_file}: the key file must live outside {out}")
    key = load_or_create_key(key_file)
    counts = write_raw(out, seed=seed, users=users, videos=videos, interactions=interactions, key=key,
                       chunk_users=chunk_users, overwrite=overwrite, join_danmaku=join_danmaku,
                       hot_videos=hot_videos)
    click.echo(f"wrote {out}: {counts['videos_written']:,} videos, "
               f"{counts['interactions_written']:,} interactions ({counts['comment_rows']:,} comments, "
               f"{counts['danmaku_rows']:,} danmaku) in {counts['interaction_shards']} shards")
