"""Benchmark: the full PixelRec scale (29,845,039 users, 408,374 videos, ~195.8M raw interactions).

Generates raw/ with `pixelrec generate-raw` (once), then runs build-release with the paper's
subsets (pixel8m=all, pixel1m=1000000, pixel200k=200000; each with its splits) under
/usr/bin/time -v and prints wall time and peak RSS. Long: run it alone, on an otherwise idle machine.

    .venv/bin/python bench/full_scale.py [--work /tmp/pixelrec-bench-full]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_release import PIXELREC, generate, timed  # noqa: E402

from schemas.official_subsets import OFFICIAL_SUBSETS  # noqa: E402

_FULL = OFFICIAL_SUBSETS["pixelrec"]
USERS, VIDEOS, INTERACTIONS = _FULL.users, _FULL.items, _FULL.interactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/pixelrec-bench-full"))
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (for a dry run)")
    args = parser.parse_args()
    raw, key, data = args.work / "raw", args.work / "key", args.work / "data"
    generate(raw, key, int(USERS * args.scale), max(1000, int(VIDEOS * args.scale)),
             int(INTERACTIONS * args.scale))
    shutil.rmtree(data, ignore_errors=True)
    subsets = ["pixel8m=all", f"pixel1m={int(1_000_000 * args.scale)}", f"pixel200k={int(200_000 * args.scale)}"]
    wall, rss, out = timed([*PIXELREC, "build-release", "--raw", str(raw), "--out", str(data),
                            "--key-file", str(key), "--seed", "1", *[a for s in subsets for a in ("--subset", s)]])
    print(out.strip())
    print(f"build-release (all four releases + splits + stats): {wall:.1f} s wall, "
          f"peak RSS {rss / 1024:.0f} MiB ({rss / 1024 / 1024:.2f} GiB)")


if __name__ == "__main__":
    main()
