"""build-release: raw/ -> DATA/pixelrec and nested subsets, each with splits, stats, sequences and
manifest.

The stages run in one DuckDB session (ingest -> dedup -> cap -> dense ids -> draws) inside a work
folder under DATA; every release is written there whole (tables, splits, stats, sequences, manifest,
card) and all of them are put in place together at the end (pipelines.finish). Every file is written
once and hashed as it is written, so the manifest reads nothing back.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.tables import COUNT_COLUMNS, ITEMS

from . import anonymize, dedup, ingest, subsets as subsets_mod
from .engine import BATCH_ROWS, session, write_query
from .finish import change_release, release_work
from .release_stream import ReleaseStream
from .splits import NotSorted, build_splits
from .stages import StageClock
from .stats import BackgroundPlots, save_stats, stats_from_histograms, write_stats


# interactions from which the stats PNGs are drawn in a process of their own (below, starting the
# process costs more than drawing them in place)
BACKGROUND_PLOTS_MIN = 1 << 20


def _quiet(_msg):
    return None


def build_release(raw: str | Path, out: str | Path, key: bytes, seed: int = 0, subset_specs=(),
                  cap: int = dedup.DEFAULT_CAP, min_interactions: int = subsets_mod.MIN_INTERACTIONS,
                  log=_quiet, overwrite: bool = False, memory_limit: str | None = None,
                  clock: StageClock | None = None) -> dict:
    """Build every release under `out`; return the build report (counts of each stage, and under
    "stages" the seconds and peak RSS of each stage).

    overwrite: replace releases whose covers, image cache or features the new build would drop.
    memory_limit: DuckDB's budget (e.g. '4GB'; default: engine.default_memory_limit()); every
    connection of the build is this one. clock: a StageClock to add to.
    """
    out = Path(out)
    clock = clock or StageClock()
    wanted = subsets_mod.parse_subsets(subset_specs)
    raw_input = ingest.find_raw(raw)
    names = [subsets_mod.FULL_RELEASE, *(s.name for s in wanted)]
    with release_work(out, names, "build-release", overwrite=overwrite) as staging:
        report = _build(raw_input, staging, key, seed, wanted, cap, min_interactions, log,
                        memory_limit, clock)
        log("putting the releases in place ...")
        with clock.stage("cards"):
            staging.commit()
    report["stages"] = clock.report()
    return report


def _build(raw_input, staging, key: bytes, seed: int, wanted, cap: int, min_interactions: int, log,
           memory_limit, clock: StageClock) -> dict:
    report: dict = {"seed": seed, "cap": cap, "min_interactions": min_interactions}
    with session(staging.work, memory_limit=memory_limit) as con:
        with clock.stage("ingest"):
            ingest.register_raw(con, raw_input)
            log("validating raw/ ...")
            report.update(ingest.validate_raw(con, raw_input))
        log("deduplicating videos and interactions ...")
        with clock.stage("dedup"):
            report["unique_videos"] = dedup.dedup_videos(con)
        with clock.stage("anonymize"):
            anonymize.number_videos(con, key)
        with clock.stage("dedup"):
            report.update(dedup.dedup_interactions(con))
            report["interactions_of_unknown_videos"] = (report["raw_interactions"]
                                                        - report.pop("interactions_of_known_videos"))
            report.update(dedup.apply_cap(con, cap))
        log("assigning dense ids ...")
        with clock.stage("anonymize"):
            report.update(anonymize.number_items(con))
            user_keys, counts = anonymize.number_users(con, key)
            report["users"] = len(counts)
        with clock.stage("subsets"):
            report["eligible_users"] = int((counts >= min_interactions).sum())
            subsets_mod.check_sizes(wanted, report["eligible_users"], min_interactions)
            positions = subsets_mod.draw_positions(counts, seed, min_interactions)
            del counts
            report["interactions"] = subsets_mod.attach_draw(con, user_keys, positions)
            del user_keys, positions
        base = {"source": "raw", "seed": seed, "item_user_cap": cap,
                "min_user_interactions": min_interactions,
                "subsets": [f"{s.name}={'all' if s.size is None else s.size}" for s in wanted]}
        releases, written, parent = {}, [], None
        with BackgroundPlots(background=report["interactions"] >= BACKGROUND_PLOTS_MIN) as plots:
            for subset in [None, *wanted]:
                name = subsets_mod.FULL_RELEASE if subset is None else subset.name
                log(f"writing {staging.root / name} ...")
                build = {**base, "release": name, "subset_of": parent,
                         "users_requested": None if subset is None else (subset.size or "all")}
                folder = staging.folder(name)
                releases[name] = _write_release(con, folder, subset, clock, plots)
                written.append((name, build, folder))
                parent = name
            # a manifest hashes its release's PNGs, so it waits for them; the later releases'
            # are drawn meanwhile
            for name, build, folder in written:
                with clock.stage("stats"):
                    plots.wait(folder / "stats")
                staging.complete(name, build, releases[name], con=con, clock=clock, sequences_written=True)
    report["releases"] = releases
    return report


def _write_release(con, tmp: Path, subset, clock: StageClock, plots: BackgroundPlots) -> dict:
    """Tables, splits, sequences and stats of one release into the (staged) folder `tmp` (its
    stats PNGs drawn by `plots`); return its counts."""
    with clock.stage("release files"):
        stream = _stream_release(con, tmp, subsets_mod.subset_filter(subset))
        catalog = _write_items(con, tmp, None if subset is None else stream.counts.items_used())
    with clock.stage("stats"):
        stats = stats_from_histograms(*stream.counts.histograms(), catalog)
        save_stats(stats, tmp, plots)
    return {"users": stats["users"], "items": stats["items_in_catalog"],
            "interactions": stats["interactions"], **stream.split_rows}


def _stream_release(con, folder: Path, users: str) -> ReleaseStream:
    """One pass over `releases`: interactions.parquet, the splits, the sequences and the counts.

    No ORDER BY: `releases` is stored in (user, timestamp, item) order and a filter keeps it; the
    split writer checks that order row by row, so a reordering engine would stop the build.
    """
    items = con.execute("SELECT count(*) FROM item_numbers").fetchall()[0][0]
    reader = con.sql(f"SELECT inum, unum, ts, src FROM releases WHERE {users}").to_arrow_reader(BATCH_ROWS)
    stream = ReleaseStream(folder, items)
    try:
        for batch in reader:
            stream.feed(batch)
        stream.close()
    except NotSorted:
        stream.abort()
        raise RuntimeError("releases table scanned out of order: the files would not be stable") from None
    except BaseException:
        stream.abort()
        raise
    return stream


def _write_items(con, folder: Path, used: np.ndarray | None) -> int:
    """items.parquet: every numbered item, or those of `used` (item numbers); return its rows."""
    item_columns = ", ".join([*(f"v.{c}" for c in COUNT_COLUMNS), "v.title", "v.tag", "v.description",
                              "v.cover_url", "v.release_time", "v.channel", "v.duration_s"])
    kept = ""
    if used is not None:
        con.register("used_items", pa.table({"inum": pa.array(used, pa.int32())}))
        kept = "SEMI JOIN used_items k ON k.inum = n.inum"
    try:
        return write_query(con, f"""
            SELECT 'i' || n.inum AS item_id, {item_columns}
            FROM item_numbers n {kept}
            JOIN video_numbers vn ON vn.vnum = n.vnum
            JOIN videos v ON v.platform_video_id = vn.platform_video_id
            ORDER BY n.inum""", folder / "items.parquet", "items", ITEMS)
    finally:
        if used is not None:
            con.unregister("used_items")


def splits_and_stats(folder: Path, extra_counts: dict | None = None, con=None) -> dict:
    """Splits and stats of a (staged) release folder whose tables are written; return its counts."""
    split_rows = build_splits(folder, con)
    stats = write_stats(folder, con)
    return {"users": stats["users"], "items": stats["items_in_catalog"],
            "interactions": stats["interactions"], **split_rows, **(extra_counts or {})}


def resplit_release(folder: str | Path) -> dict:
    """build-splits on a release folder, then (pipelines.finish) its sequences, manifest and card;
    return the split row counts. A folder without a manifest (tables placed by hand) gets one."""
    def change(release, overlay):
        split_rows = build_splits(release, out=overlay)
        return split_rows, ("splits/",), split_rows
    return change_release(folder, "build-splits", change, describe=True)


def restat_release(folder: str | Path) -> dict:
    """stats on a release folder (stats.json + PNGs), then its manifest and card; return the stats."""
    def change(release, overlay):
        stats = write_stats(release, out=overlay)
        counts = {"users": stats["users"], "items": stats["items_in_catalog"],
                  "interactions": stats["interactions"]}
        return stats, ("stats.json", "stats/"), counts
    return change_release(folder, "stats", change, describe=True)
