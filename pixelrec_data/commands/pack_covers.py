"""`pixelrec pack-covers`: the covers converted between storage formats (parquet by default: the
items config's Image column)."""
from __future__ import annotations

from pathlib import Path

import click

from pixelrec_data.covers.store import FORMATS


@click.command("pack-covers")
@click.option("--release", required=True, type=click.Path(), help="a release folder with covers")
@click.option("--to", "to", default="parquet", show_default=True, type=click.Choice(list(FORMATS)),
              help="the format to write: parquet (shards of the items with a datasets.Image "
                   "column), webdataset (tar shards) or files (one file per cover)")
@click.option("--shard-mb", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="close a shard once it holds this many MB of images")
def pack_covers(release, to, shard_mb):
    """Store the covers of RELEASE in another format, from the one it has (files first). The
    default, parquet, writes every items column plus an `image` column in the Hugging Face Image
    encoding and points the dataset card's <name>_items config at them, so plain
    datasets.load_dataset(<folder>, "<name>_items") yields PIL images and the release can be
    pushed to a hub as it is. The covers it had are kept. Rerunning packs again."""
    from pipelines.covers import pack_covers as run

    summary = run(release, to=to, shard_bytes=shard_mb * 1024 * 1024)
    folder = Path(release) / FORMATS[to].folder
    if summary["manifest_updated"]:
        click.echo(f"updated {Path(release) / 'manifest.json'} (covers listed)")
    click.echo(f"{release}: {summary['with_image']:,} of {summary['items']:,} items with a cover, "
               f"{summary['image_bytes'] / 1e6:,.1f} MB of images in {len(summary['shards'])} "
               f"shard(s) under {folder}/")
