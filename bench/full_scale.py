"""Benchmark: the full PixelRec scale (29,845,039 users, 408,374 videos, ~195.8M raw interactions).

Generates raw/ with `pixelrec generate-raw` (once), then runs build-release with the paper's
subsets (pixel8m=all, pixel1m=1000000, pixel200k=200000; each with its splits, stats, sequences,
manifest and dataset card) under /usr/bin/time -v and prints wall time, peak RSS, the load average
of the machine and the build report's per-stage table (seconds and peak RSS of each stage). Long:
run it alone, on an otherwise idle machine. `--scale 0.1` is the quick variant (a few minutes) for
comparisons before and after a change; `--runs 3` prints the median too. `--floor` also times,
after each build, one DuckDB pass over the same raw/ that deduplicates, numbers users and items and
writes one sorted Parquet file (bench/duckdb_floor.py), and prints the build's time in such passes:
a ratio that holds across machines and loads, where the seconds do not.

    .venv/bin/python bench/full_scale.py [--work /tmp/pixelrec-bench-full] [--scale 0.1] [--runs 3]
                                         [--memory-limit 4GB] [--floor]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_release import PIXELREC, generate, timed  # noqa: E402

from schemas.official_subsets import OFFICIAL_SUBSETS  # noqa: E402

_FULL = OFFICIAL_SUBSETS["pixelrec"]
USERS, VIDEOS, INTERACTIONS = _FULL.users, _FULL.items, _FULL.interactions


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/pixelrec-bench-full"))
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (0.1: a few minutes)")
    parser.add_argument("--runs", type=int, default=1, help="build this many times; the median is printed too")
    parser.add_argument("--memory-limit", default=None, help="passed to build-release --memory-limit")
    parser.add_argument("--floor", action="store_true",
                        help="time the one-pass DuckDB floor after each build and print the ratio")
    args = parser.parse_args()
    raw, key, data = args.work / "raw", args.work / "key", args.work / "data"
    generate(raw, key, int(USERS * args.scale), max(1000, int(VIDEOS * args.scale)),
             int(INTERACTIONS * args.scale))
    subsets = ["pixel8m=all", f"pixel1m={int(1_000_000 * args.scale)}", f"pixel200k={int(200_000 * args.scale)}"]
    command = [*PIXELREC, "build-release", "--raw", str(raw), "--out", str(data), "--key-file", str(key),
               "--seed", "1", *[a for s in subsets for a in ("--subset", s)]]
    if args.memory_limit:
        command += ["--memory-limit", args.memory_limit]
    floor = [sys.executable, str(Path(__file__).resolve().parent / "duckdb_floor.py"), str(raw),
             str(args.work / "floor")]
    if args.memory_limit:
        floor += ["--memory-limit", args.memory_limit]
    results, floors = [], []
    for run in range(args.runs):
        shutil.rmtree(data, ignore_errors=True)
        before = load_average()
        wall, rss, out = timed(command)
        results.append((wall, rss))
        if run == 0:
            print(out.strip())
        print(f"run {run + 1}: build-release (all four releases + splits + stats + sequences + cards): "
              f"{wall:.1f} s wall, peak RSS {rss / 1024:.0f} MiB ({rss / 1024 / 1024:.2f} GiB); "
              f"load average before {before}, after {load_average()}", flush=True)
        if args.floor:
            floors.append(_floor(floor, args.work / "floor", wall))
    if args.runs > 1:
        print(f"median of {args.runs}: {statistics.median(w for w, _ in results):.1f} s wall, peak RSS "
              f"{statistics.median(r for _, r in results) / 1024 / 1024:.2f} GiB")
        if floors:
            print(f"median of {args.runs}: floor {statistics.median(f for f, _ in floors):.1f} s, "
                  f"build {statistics.median(r for _, r in floors):.2f} floor passes")


def _floor(command: list[str], folder: Path, build_wall: float) -> tuple[float, float]:
    """Time the floor pass once; return (its seconds, the build's time in floor passes)."""
    shutil.rmtree(folder, ignore_errors=True)
    before = load_average()
    wall, rss, _ = timed(command)
    shutil.rmtree(folder, ignore_errors=True)
    ratio = build_wall / wall
    print(f"      floor (one DuckDB pass: dedup, dense ids, one sorted Parquet file): {wall:.1f} s wall, "
          f"peak RSS {rss / 1024:.0f} MiB; load average before {before}, after {load_average()}; "
          f"build = {ratio:.2f} floor passes", flush=True)
    return wall, ratio


if __name__ == "__main__":
    main()
