"""`pixelrec prepare-images`: decode every cover once into a memory-mapped uint8 cache."""
from __future__ import annotations

from pathlib import Path

import click

from schemas.errors import InputError


@click.command("prepare-images")
@click.option("--release", "release", required=True, type=click.Path(path_type=Path),
              help="release folder (data/<release>/) with items.parquet and covers/")
@click.option("--size", default=224, show_default=True, type=int, help="output side S (S x S pixels)")
@click.option("--mode", default="squash", show_default=True,
              type=click.Choice(["squash", "center_crop"]),
              help="squash: resize to S x S ignoring aspect (the official code); "
                   "center_crop: resize the short side to S, then crop the centre")
@click.option("--workers", default=2, show_default=True, type=int, help="decoding processes")
@click.option("--force", is_flag=True, help="rebuild even when the cache is current")
@click.option("--full-decode", is_flag=True,
              help="decode every JPEG at full size (the official code's pixels exactly; slower) "
                   "instead of at 1/2, 1/4 or 1/8 scale (the smallest leaving both sides >= S; "
                   "for squash >= 3/4 S)")
def prepare_images(release: Path, size: int, mode: str, workers: int, force: bool,
                   full_decode: bool):
    """Decode every cover once into DIR/images/images_S_MODE.npy (N x S x S x 3 uint8) + an index.

    Missing or undecodable covers become mid-grey (128) and are listed in the report file.
    Rerunning continues an interrupted build, and rebuilds when items or covers changed.
    """
    from pipelines.finish import change_release
    from pixelrec_data.covers.cache import cache_files, prepare_images as build

    if not release.is_dir():
        raise InputError(f"{release}: no such release folder")
    if workers < 1:
        raise InputError(f"--workers {workers}: expected at least 1")

    def change(folder, _overlay):  # images/ is local (never in the manifest): kept as written
        return build(folder, size=size, mode=mode, workers=workers, force=force,
                     full_decode=full_decode), None, None
    report = change_release(release, "prepare-images", change)
    files = cache_files(release, size, mode)
    if report.get("up_to_date"):
        click.echo(f"{files['array']}: up to date ({report.get('items')} images)")
        return
    click.echo(f"{files['array']}: {report['items']} images ({report['ok']} ok, {report['missing']} "
               f"missing, {report['failed']} failed -> placeholder), {report['bytes_on_disk'] / 2**20:.1f} "
               f"MiB, {report['images_per_s']} images/s; report {files['report']}")
