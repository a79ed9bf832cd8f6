"""The official PixelRec subsets and the counts the paper publishes for them (its Table 2).

One place for these figures: `pixelrec verify` and `pixelrec download` check a release that claims
to be the official data against them; benches and toy data take their shapes from them.

What the figures mean (the paper's definitions): users and items are the distinct user and item
ids that occur in the interactions, interactions the number of (user, item) rows. An item catalog
(items.parquet) may list more items than occur in the interactions, never fewer.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

COUNT_NAMES = ("users", "items", "interactions")
# `--counts`: auto holds a release to the published counts unless this toolkit built it from a
# crawl (build.source 'raw': `build-release` and `make demo` name their synthetic subsets pixel200k
# etc. too); strict holds every release with an official name to them; off checks nothing.
COUNT_MODES = ("auto", "strict", "off")
COUNTS_HELP = ("Published counts (users, items, interactions of pixel200k, pixel1m, pixel8m, "
               "pixelrec): auto requires them unless manifest build.source is 'raw' (built from "
               "raw/ by this toolkit); strict requires them always; off skips them.")
TOOLKIT_SOURCES = ("raw",)


@dataclass(frozen=True)
class OfficialSubset:
    name: str      # release (folder) name: lower case
    title: str     # the paper's spelling
    users: int
    items: int
    interactions: int

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNT_NAMES}

    def describe(self) -> str:
        return (f"{self.title}: {self.users:,} users, {self.items:,} items, "
                f"{self.interactions:,} interactions")


OFFICIAL_SUBSETS: dict[str, OfficialSubset] = {s.name: s for s in (
    # the publisher's sample (its README): not in the paper's table, not nested in the others
    OfficialSubset("pixel50k", "PixelRec50K", 50_000, 82_865, 989_494),
    OfficialSubset("pixel200k", "Pixel200K", 200_000, 96_282, 3_965_656),
    OfficialSubset("pixel1m", "Pixel1M", 1_001_822, 100_541, 19_886_579),
    OfficialSubset("pixel8m", "Pixel8M", 8_886_078, 407_082, 158_488_652),
    OfficialSubset("pixelrec", "PixelRec", 29_845_039, 408_374, 195_755_320),
)}


def official_subset(release_name: str) -> OfficialSubset | None:
    """The official subset a release name stands for (case-insensitive), or None for other names."""
    return OFFICIAL_SUBSETS.get(release_name.lower())


def subset_to_check(manifest: dict, mode: str = "auto") -> tuple[OfficialSubset | None, str]:
    """The official subset whose published counts `manifest`'s release must match (None when it
    need not), and a note to print when it need not although it bears an official name."""
    if mode not in COUNT_MODES:
        raise InputError(f"--counts: {mode!r} is not one of {', '.join(COUNT_MODES)}")
    subset = official_subset(str(manifest.get("name", "")))
    if subset is None:
        return None, ""
    if mode == "off":
        return None, f"note: published {subset.title} counts not checked (--counts off)"
    source = manifest.get("build", {}).get("source")
    if mode == "auto" and source in TOOLKIT_SOURCES:
        counts = manifest.get("counts", {})
        have = ", ".join(f"{counts[n]:,} {n}" if isinstance(counts.get(n), int)
                         else f"? {n}" for n in COUNT_NAMES)
        return None, (f"note: built from raw/ by this toolkit: published counts not required; "
                      f"{have} (published {subset.describe()}; --counts strict to require them)")
    return subset, ""


def why_required(manifest: dict, mode: str) -> str:
    """Why a release is held to the published counts (ends the one-line count errors)."""
    if mode == "strict":
        return "required by --counts strict"
    source = manifest.get("build", {}).get("source")
    said = f"build.source is {source!r}" if source is not None else "build.source is absent"
    return (f"{said}, so it claims to be the official data; --counts off skips this check")


def check_manifest_counts(manifest: dict, subset: OfficialSubset, where: str, mode: str) -> None:
    """Raise a one-line InputError when the manifest's counts contradict the published ones.

    counts.items is the item catalog (items.parquet rows), which may hold items without
    interactions: it must reach the published figure, not equal it.
    """
    counts = manifest.get("counts", {})
    for name in COUNT_NAMES:
        value, published = counts.get(name), getattr(subset, name)
        if not isinstance(value, int):
            raise InputError(f"{where}: manifest.json has no counts.{name}; the published "
                             f"{subset.title} count is {published:,} ({why_required(manifest, mode)})")
        if name == "items" and value < published:
            raise InputError(f"{where}: manifest.json counts items = {value:,} (the catalog), fewer "
                             f"than the published {subset.title} count {published:,} "
                             f"({why_required(manifest, mode)})")
        if name != "items" and value != published:
            raise InputError(f"{where}: manifest.json counts {name} = {value:,}, the published "
                             f"{subset.title} count is {published:,} ({why_required(manifest, mode)})")


__all__ = ["COUNT_MODES", "COUNT_NAMES", "OfficialSubset", "OFFICIAL_SUBSETS", "TOOLKIT_SOURCES",
           "official_subset", "subset_to_check", "why_required", "check_manifest_counts"]
