"""`pixelrec pack-covers`: the covers inside Parquet shards, as the items config's Image column."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("pack-covers")
@click.option("--release", required=True, type=click.Path(), help="a release folder with covers/")
@click.option("--shard-mb", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="close a shard once it holds this many MB of images")
def pack_covers(release, shard_mb):
    """Store the covers in RELEASE/cover_shards/items-NNNNN.parquet (every items column plus an
    `image` column in the Hugging Face Image encoding) and point the dataset card's <name>_items
    config at them, so plain datasets.load_dataset(<folder>, "<name>_items") yields PIL images and
    the release can be pushed to a hub as it is. covers/ is kept. Rerunning packs again."""
    from pixelrec_data.cover_shards import pack_covers as run

    summary = run(release, shard_bytes=shard_mb * 1024 * 1024)
    if summary["manifest_updated"]:
        click.echo(f"updated {Path(release) / 'manifest.json'} (cover shards listed)")
    click.echo(f"{release}: {summary['with_image']:,} of {summary['items']:,} items with a cover, "
               f"{summary['image_bytes'] / 1e6:,.1f} MB of images in {len(summary['shards'])} shard(s) "
               f"under {release}/cover_shards/")
