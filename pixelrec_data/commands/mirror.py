"""`pixelrec publish` (write a mirror folder) and `pixelrec download` (fetch a release from one)."""
from __future__ import annotations

from pathlib import Path

import click

from pixelrec_data.commands.release import COUNTS_HELP
from schemas.official_subsets import COUNT_MODES


@click.command("publish")
@click.option("--data", "data_dir", default="data", show_default=True, type=click.Path(path_type=Path),
              help="Folder holding the releases (data/<release>/manifest.json).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Mirror folder to write (serve it over HTTP as it is).")
@click.option("--release", "releases", multiple=True,
              help="Release to publish (repeatable). Default: every release under --data.")
@click.option("--copy", is_flag=True, help="Copy files instead of hard-linking them.")
def publish(data_dir, out_dir, releases, copy):
    """Write MIRROR/index.json and MIRROR/<release>/ (files checked against each manifest)."""
    from pixelrec_data.mirror import publish as publish_mirror
    from pixelrec_data.progress import bar

    index = publish_mirror(data_dir, out_dir, list(releases) or None, copy=copy, progress=bar)
    for name in (releases or sorted(index["releases"])):
        entry = index["releases"][name]
        click.echo(f"published {name}: {entry['files']} files, {entry['bytes']} bytes")
    click.echo(f"mirror index: {Path(out_dir) / 'index.json'}")


@click.command("download")
@click.option("--subset", required=True, help="Release to download, e.g. pixel200k.")
@click.option("--mirror", default=None,
              help="Mirror: http(s):// URL, file:// URL or folder. Default: $PIXELREC_MIRROR, else "
                   "mirror = \"URL\" in $PIXELREC_CONFIG or ~/.config/pixelrec/config.toml.")
@click.option("--out", "--root", "out_dir", default="data", show_default=True,
              type=click.Path(path_type=Path), help="Data folder; the release lands in <out>/<subset>.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(min=1),
              help="Files downloaded at once.")
@click.option("--retries", default=3, show_default=True, type=click.IntRange(min=0),
              help="Extra tries per file after a network error (each resumes with HTTP Range).")
@click.option("--counts", default="auto", show_default=True,
              type=click.Choice(COUNT_MODES), help=COUNTS_HELP)
@click.option("--with-covers", is_flag=True,
              help="Then fetch the release's cover images from their URLs (fetch-covers with its "
                   "defaults; rerun `pixelrec fetch-covers --release DIR` for other settings).")
def download(subset, mirror, out_dir, concurrency, retries, counts, with_covers):
    """Download a release from a mirror, verifying every file's size and sha256.

    Resumable: rerun the same command after an interruption. The release folder appears only once
    every file is verified and, as in `pixelrec verify`, a release claiming to be official data has
    the paper's counts (checked in its manifest before fetching, then in its files).
    """
    from pipelines.published import check_published_counts
    from pixelrec_data.mirror import default_mirror, download as download_release
    from pixelrec_data.progress import bar, quiet

    lines = []

    def check_counts(folder, label):  # before the release is renamed into place
        log = None if quiet() else click.echo
        lines.append(check_published_counts(folder, counts, where=label, log=log))

    folder = download_release(subset, mirror or default_mirror(), out_dir, concurrency=concurrency,
                              progress=bar, retries=retries, counts=counts, check_release=check_counts)
    from pixelrec_data.commands.release import card_is_ours_or_absent
    from pixelrec_data.card import has_splits, write_cards, write_release_card
    if not (folder / "README.md").exists():  # cards are written locally, after the manifest
        if has_splits(folder):
            from pipelines.sequences import build_sequences
            build_sequences(folder)  # kept as they are when the download brought them
        write_release_card(folder)
    if card_is_ours_or_absent(folder.parent / "README.md"):
        write_cards(folder.parent, releases_too=False)
    click.echo(f"downloaded {subset} to {folder} (every file verified against manifest.json)")
    for line in filter(None, lines):
        click.echo(line)
    if with_covers:
        from pixelrec_data.commands.covers import run_fetch
        from pixelrec_data.downloader import FetchOptions

        run_fetch(folder, FetchOptions())
