"""`pixelrec publish` (write a mirror folder) and `pixelrec download` (fetch a release from one)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from schemas.errors import InputError
from schemas.official_subsets import COUNT_MODES, COUNTS_HELP


@click.command("publish")
@click.option("--data", "data_dir", default="data", show_default=True, type=click.Path(path_type=Path),
              help="Folder holding the releases (data/<release>/manifest.json).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Mirror folder to write (serve it over HTTP as it is).")
@click.option("--release", "releases", multiple=True,
              help="Release to publish (repeatable). Default: every release under --data.")
@click.option("--copy", is_flag=True, help="Copy files instead of hard-linking them.")
@click.option("--i-am-the-publisher", "publisher", is_flag=True,
              help="Publish releases of the official PixelRec data too (manifest build.source "
                   "'official'): only its publisher may offer secondary downloads.")
def publish(data_dir, out_dir, releases, copy, publisher):
    """Write MIRROR/index.json and MIRROR/<release>/ (files checked against each manifest).

    Releases of the official PixelRec data are refused: its publisher forbids secondary downloads.
    """
    from pixelrec_data.mirror import publish as publish_mirror
    from pixelrec_data.progress import bar

    index = publish_mirror(data_dir, out_dir, list(releases) or None, copy=copy, progress=bar,
                           publisher=publisher)
    for name in (releases or sorted(index["releases"])):
        entry = index["releases"][name]
        click.echo(f"published {name}: {entry['files']} files, {entry['bytes']} bytes")
    click.echo(f"mirror index: {Path(out_dir) / 'index.json'}")


@click.command("download")
@click.option("--subset", required=True,
              help="Release to download: an official subset (pixel50k, pixel200k, pixel1m, pixel8m, "
                   "pixelrec) or a release of a mirror.")
@click.option("--mirror", default=None,
              help="Mirror of releases built here: http(s):// URL, file:// URL or folder. Default: "
                   "$PIXELREC_MIRROR, else mirror = \"URL\" in $PIXELREC_CONFIG or "
                   "~/.config/pixelrec/config.toml; with none of them, official subsets come from "
                   "their publisher.")
@click.option("--from", "from_dir", default=None, type=click.Path(path_type=Path),
              help="Folder of the official files downloaded by hand (CSVs, zips as served, the "
                   "covers archives: zip or tar, or folders of <item_id>.jpg; with --features, the "
                   "vectors files named after their kind), instead of fetching them.")
@click.option("--host-url", default=None,
              help="A reverse proxy in front of the official files' host (default: "
                   "$PIXELREC_OFFICIAL_HOST, else the host itself): files are asked as "
                   "URL/uc?export=download&id=ID and must come back whole; folder listings, the "
                   "confirmation and quota pages and cookies do not pass it. For a proxy that "
                   "tunnels, set HTTPS_PROXY instead.")
@click.option("--cookies", "cookies", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Official subsets: a cookies.txt exported from a browser signed in to Google "
                   "(Netscape format), sent to the host: the way past its \"too many users\" "
                   "quota page. Copied for the run, removed after it.")
@click.option("--features", "features", default=None, metavar="KINDS",
              help="Official subsets: also fetch the publisher's extracted vectors (image, text; "
                   "comma-separated) into <release>/features/official_<kind>.npy, in the release's "
                   "item order (train with --set features=official_image).")
@click.option("--no-covers", is_flag=True, help="Official subsets: skip the covers archive.")
@click.option("--image-cache", default=0, show_default=True, type=click.IntRange(min=0),
              metavar="SIZE",
              help="Official subsets: also write the SIZE px training cache (`prepare-images --size "
                   "SIZE`, squash) from the decode that checks each cover; 0: none.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Official subsets: threads that check the covers (and fill the image cache); "
                   "the output does not depend on it.")
@click.option("--overwrite", is_flag=True,
              help="Replace a release that is there: an official subset is built again, a mirror's "
                   "release replaces the local one even when its image cache or features are lost.")
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
@click.option("--manifest-sha256", default=None, metavar="HEX",
              help="Bind the mirror: the release's manifest.json must have this sha256 (checked "
                   "before any file is trusted).")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds to wait for a connection or for data; each attempt at a file may take "
                   "this plus its size / --min-rate.")
@click.option("--min-rate", default=32 * 1024, show_default=True, type=click.IntRange(min=1),
              help="Bytes per second below which an attempt at a file is cut off (and retried).")
@click.option("--allow-cross-host-redirects", is_flag=True,
              help="Follow mirror redirects to another host or port (default: refused).")
@click.option("--allow-private-hosts", is_flag=True,
              help="Let redirects and --with-covers cover URLs reach loopback, private or "
                   "link-local addresses (the --mirror URL itself is always used as given).")
def download(subset, mirror, out_dir, concurrency, retries, counts, with_covers, from_dir,
             host_url, cookies, features, no_covers, image_cache, workers, overwrite,
             manifest_sha256, timeout, min_rate, allow_cross_host_redirects, allow_private_hosts):
    """Download an official subset from its publisher, or a release from a mirror.

    Official subsets (no --mirror): the publisher's files, fetched (or taken from --from DIR),
    become DATA/<subset> with every official column, the covers of its items (from the covers
    archive, with their statuses) and the published counts checked. Mirrors: every file's
    size and sha256 verified. Resumable both ways: rerun the same command after an interruption.
    The release folder appears only once whole and, as in `pixelrec verify`, a release claiming to
    be official data has the paper's counts.
    """
    from pipelines.published import check_published_counts
    from pixelrec_data.mirror import (MirrorOptions, configured_mirror, default_mirror,
                                      download as download_release)
    from pixelrec_data.official import is_official_name
    from pixelrec_data.progress import bar, quiet

    if from_dir is not None and mirror is not None:
        raise InputError("--from and --mirror: give one (--from is for the official files)")
    if from_dir is not None or (mirror is None and configured_mirror() is None
                                and is_official_name(subset)):
        _download_official(subset, out_dir, from_dir, host_url, not no_covers, counts, retries,
                           overwrite, image_cache, workers, cookies, features)
        return
    if cookies is not None or features is not None:
        raise InputError("--cookies and --features are for official subsets (from their "
                         "publisher), not for a mirror's releases")
    lines = []

    def check(folder, label):  # before the release is put in place
        log = None if quiet() else click.echo
        lines.append(check_published_counts(folder, counts, where=label, log=log))

    options = MirrorOptions(concurrency=concurrency, retries=retries, timeout=timeout,
                            min_rate=min_rate, allow_private_hosts=allow_private_hosts,
                            allow_cross_host_redirects=allow_cross_host_redirects)
    folder = download_release(subset, mirror or default_mirror(), Path(out_dir), options,
                              progress=bar, counts=counts, check_release=check,
                              manifest_sha256=manifest_sha256, overwrite=overwrite)
    click.echo(f"downloaded {subset} to {folder} (every file verified against manifest.json)")
    for line in filter(None, lines):
        click.echo(line)
    if with_covers:
        from pipelines.covers import fetch_covers
        from pixelrec_data.covers.fetch import FetchOptions
        from pixelrec_data.covers.fetch.stats import summary_line

        summary = fetch_covers(folder, FetchOptions(allow_private_hosts=allow_private_hosts),
                               progress=bar)
        click.echo(summary_line(summary))
        if summary["manifest_updated"]:
            click.echo(f"updated {folder / 'manifest.json'} (covers listed)")


def _download_official(subset, out_dir, from_dir, host_url, covers, counts, retries, overwrite,
                       image_cache, workers, cookies, features):
    from pixelrec_data.official import get_official, parse_feature_kinds
    from pixelrec_data.progress import bar, quiet
    from schemas.official_sources import PUBLISHER_RULE

    # nothing is written outside the data root: matplotlib (the stats plots) would otherwise
    # create its font cache under ~/.cache and ~/.config
    if "MPLCONFIGDIR" not in os.environ:
        os.environ["MPLCONFIGDIR"] = str(Path(out_dir).absolute() / ".official" / "matplotlib")
    kinds = parse_feature_kinds(features)
    if cookies is not None and not Path(cookies).is_file():
        raise InputError(f"--cookies {cookies}: no such file")
    log = (lambda message: None) if quiet() else click.echo
    folder = get_official(subset, out_dir, from_dir=from_dir, host=host_url, covers=covers,
                          counts=counts, retries=max(retries, 1), overwrite=overwrite,
                          image_cache=image_cache, workers=workers, log=log, progress=bar,
                          cookies=cookies, features=kinds)
    click.echo(f"official {subset} in {folder} (build.source 'official'; the publisher's rule: "
               f"\"{PUBLISHER_RULE}\")")
