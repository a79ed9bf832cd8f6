"""Check a release that claims to be an official PixelRec subset against the paper's counts.

The manifest's counts are compared first (cheap); then the files themselves: interactions rows
(Parquet metadata), distinct user and item ids of the interactions (DuckDB, out of core, so the
full PixelRec's 196M rows fit), and the item catalog's rows. Which releases are held to the
counts: see schemas.official_subsets (COUNT_MODES).
"""
from __future__ import annotations

from pathlib import Path

from schemas.errors import InputError
from schemas.official_subsets import check_manifest_counts, subset_to_check, why_required

from .engine import as_input_error, parquet_rows, session, sql_path
from .manifest import read_manifest


def check_published_counts(release: str | Path, mode: str = "auto", where: str | None = None,
                           log=None, manifest: dict | None = None) -> str:
    """Raise a one-line InputError naming the first count that differs from the published one.

    Returns the line to print: a note when the release need not match, a confirmation when it
    matches, '' for names that are not official subsets. `where` names the release in messages;
    log(message) is told before the files are counted (minutes for the full PixelRec). manifest:
    the name, build and counts of a release staged before its manifest is written.
    """
    release = Path(release)
    where = where or str(release)
    manifest = manifest if manifest is not None else read_manifest(release)
    subset, note = subset_to_check(manifest, mode)
    if subset is None:
        return note
    check_manifest_counts(manifest, subset, where, mode)
    if log:
        log(f"counting the users and items of {where}/interactions.parquet ...")
    found = file_counts(release)
    for name, what in (("interactions", "rows"), ("users", "distinct users"),
                       ("items", "distinct items")):
        published = getattr(subset, name)
        if found[name] != published:
            raise InputError(f"{where}/interactions.parquet: {found[name]:,} {what}, the published "
                             f"{subset.title} count is {published:,} ({why_required(manifest, mode)})")
    if found["catalog"] < subset.items:
        raise InputError(f"{where}/items.parquet: {found['catalog']:,} rows, fewer than the published "
                         f"{subset.title} items {subset.items:,} ({why_required(manifest, mode)})")
    return f"published {subset.describe()}: match"


def file_counts(release: Path) -> dict[str, int]:
    """Rows, distinct users and distinct items of interactions.parquet; rows of items.parquet."""
    path = release / "interactions.parquet"
    with session() as con, as_input_error(str(path)):
        users, items = con.execute(f"SELECT count(DISTINCT user_id), count(DISTINCT item_id) "
                                   f"FROM read_parquet({sql_path(path)})").fetchone()
    return {"interactions": parquet_rows(path), "users": int(users), "items": int(items),
            "catalog": parquet_rows(release / "items.parquet")}


__all__ = ["check_published_counts", "file_counts"]
