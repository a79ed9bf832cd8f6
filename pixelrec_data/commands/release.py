"""Release commands: build-release, build-splits, stats, import-official, export, verify.

Thin wrappers: parse the options, call one pipelines function, print what it returns.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pixelrec_data.progress import quiet, step
from schemas.errors import InputError
from schemas.official_subsets import COUNT_MODES, COUNTS_HELP


def _echo(message: str) -> None:
    if not quiet():
        click.echo(message)


def _release_dir(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder}: release folder not found")
    return folder


@click.command("build-release")
@click.option("--raw", "raw", required=True, type=click.Path(), help="raw/ folder written by the crawler")
@click.option("--out", "out", required=True, type=click.Path(), help="data root: releases go to OUT/<name>")
@click.option("--key-file", required=True, type=click.Path(), help="the keyed-hash key (created if absent)")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1))
@click.option("--subset", "subsets", multiple=True, metavar="NAME=SIZE",
              help="nested subsets in order, SIZE a user count or 'all' "
                   "[default: pixel8m=all pixel1m=1000000 pixel200k=200000]")
@click.option("--overwrite", is_flag=True,
              help="Replace releases whose items change although they hold fetched covers, an "
                   "image cache or features (these are lost). Without it such a rebuild stops.")
@click.option("--memory-limit", default=None, metavar="SIZE",
              help="DuckDB's memory budget, e.g. 4GB; work beyond it spills to disk "
                   "[default: a quarter of this machine's memory, or $PIXELREC_DUCKDB_MEMORY]")
def build_release(raw, out, key_file, seed, subsets, overwrite, memory_limit):
    """Build DATA/pixelrec and the nested subsets (with splits, stats, sequences, manifest) from raw/."""
    from pipelines.build import build_release as run
    from pipelines.engine import check_memory_limit
    from pipelines.stages import StageClock
    from schemas.keys import load_or_create_key

    key_path = Path(key_file).absolute()
    for folder in (Path(raw).absolute(), Path(out).absolute()):
        if folder == key_path or folder in key_path.parents:
            raise InputError(f"{key_file}: the key file must live outside {folder} (it never ships)")
    if memory_limit is not None:
        memory_limit = check_memory_limit(memory_limit)
    key = load_or_create_key(key_file)
    start, clock = time.perf_counter(), StageClock()
    with step("build-release"):
        report = run(raw, out, key, seed=seed, subset_specs=subsets, overwrite=overwrite,
                     memory_limit=memory_limit, clock=clock,
                     log=lambda msg: _echo(f"[{time.perf_counter() - start:7.1f}s] {msg}"))
    click.echo(_format_report(report))


def _format_report(report: dict) -> str:
    lines = ["build report:"]
    for name in ("raw_videos", "unique_videos", "raw_interactions", "interactions_of_unknown_videos",
                 "duplicates_removed", "items_over_cap", "cap_removed", "items_dropped_no_interactions",
                 "items", "users", "eligible_users", "interactions"):
        lines.append(f"  {name:<32} {report[name]:,}")
    for name, counts in report["releases"].items():
        lines.append(f"  {name}: {counts['users']:,} users, {counts['items']:,} items, "
                     f"{counts['interactions']:,} interactions (train {counts['train']:,}, "
                     f"validation {counts['validation']:,}, test {counts['test']:,})")
    if report.get("stages"):
        from pipelines.stages import format_stages
        lines += ["stages (seconds, peak RSS of the stage):", *format_stages(report["stages"])]
    return "\n".join(lines)


@click.command("build-splits")
@click.option("--release", required=True, type=click.Path(), help="a release folder")
def build_splits(release):
    """Leave-one-out splits of a release folder into DIR/splits/ (updates the manifest)."""
    from pipelines.build import resplit_release

    counts = resplit_release(_release_dir(release))
    click.echo(", ".join(f"{name} {rows:,} rows" for name, rows in counts.items()))


@click.command("stats")
@click.option("--release", required=True, type=click.Path(), help="a release folder")
@click.option("--json", "as_json", is_flag=True, help="print stats.json instead of the table")
def stats(release, as_json):
    """The paper's Table 2/3 figures of a release, stats.json and stats/*.png."""
    from pipelines.build import restat_release
    from pipelines.stats import format_table

    folder = _release_dir(release)
    figures = restat_release(folder)
    click.echo(json.dumps(figures, indent=2, sort_keys=True) if as_json else format_table(figures, folder.name))


@click.command("import-official")
@click.option("--interactions", required=True, type=click.Path(), help="official interactions CSV")
@click.option("--items", required=True, type=click.Path(), help="official item-info CSV")
@click.option("--covers", type=click.Path(), default=None, help="folder of <item_id>.jpg covers")
@click.option("--out", required=True, type=click.Path(), help="the release folder to create")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing release at OUT even when its covers, image cache or "
                   "features would be lost.")
def import_official(interactions, items, covers, out, overwrite):
    """Turn the official PixelRec CSV files into a release folder (ids kept)."""
    from pipelines.official import import_official as run

    with step("import-official"):
        report = run(interactions, items, out, covers=covers, overwrite=overwrite)
    click.echo(f"{out}: {report['users']:,} users, {report['items']:,} items, "
               f"{report['interactions']:,} interactions; {report['items_missing_info']:,} items "
               f"without item info; {report['covers_copied']:,} covers copied")
    if report["items_missing_info"]:
        click.echo(f"items without item info (first ones): {', '.join(report['missing_examples'])}")
    if report.get("duplicates_dropped"):
        click.echo(f"{report['duplicates_dropped']:,} rows repeated a (user, item) pair: the "
                   f"earliest of each pair was kept")


@click.command("export")
@click.option("--release", required=True, type=click.Path(), help="a release folder")
@click.option("--format", "fmt", required=True, type=click.Choice(["pixelrec-csv", "recbole"]))
@click.option("--out", required=True, type=click.Path(), help="output folder")
def export(release, fmt, out):
    """Export a release as the official CSV layout or RecBole atomic files.

    pixelrec-csv: OUT/<name>.csv and OUT/<name>_items.csv. These are files people open in
    spreadsheets, so a text cell starting with =, +, -, @ (also after spaces or invisible
    characters such as a byte order mark, and in full-width form such as ＝), a tab or a
    carriage return gets a leading apostrophe (it would run as a formula otherwise), and NUL
    bytes are dropped.

    recbole: OUT/<name>/<name>.{train,valid,test}.inter, OUT/<name>/<name>.item and
    OUT/<name>/<name>.yaml (RecBole's atomic files, `field:type` headers; data_path is OUT), so
    run_recbole(dataset='<name>', config_file_list=['OUT/<name>/<name>.yaml']) loads them.
    """
    from pipelines.export import export_release

    files = export_release(_release_dir(release), fmt, out)
    click.echo("\n".join(str(f) for f in files))


@click.command("verify")
@click.option("--release", required=True, type=click.Path(), help="a release folder")
@click.option("--counts", default="auto", show_default=True,
              type=click.Choice(COUNT_MODES), help=COUNTS_HELP)
def verify(release, counts):
    """Check every file of a release against its manifest (bytes, sha256, rows, schema).

    A release named after an official subset that claims to be the official data (manifest
    build.source 'official', or no source) must also have the paper's counts: users and items
    (distinct ids in its interactions) and interactions, else exit 2. Releases this toolkit built
    from raw/ (build.source 'raw', e.g. `make demo`) get a note instead: their sizes are parameters.
    """
    from pipelines.manifest import verify_release
    from pipelines.published import check_published_counts

    summary = verify_release(release)
    line = check_published_counts(release, counts, log=_echo)
    click.echo(f"{release}: ok ({summary['files']} files match the manifest)")
    if line:
        click.echo(line)
    if summary["unlisted"]:
        click.echo(f"note: {len(summary['unlisted'])} files not in the manifest: "
                   f"{', '.join(summary['unlisted'][:5])}")
