"""Benchmark: build-release + build-splits at Pixel200K scale (about 4M raw interactions).

Generates raw/ once with `pixelrec generate-raw`, then runs each command under /usr/bin/time -v
(a separate process per run) and prints wall time and peak RSS per run and the median.

    .venv/bin/python bench/build_release.py [--runs 3] [--work /tmp/pixelrec-bench]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIXELREC = [sys.executable, "-m", "pixelrec_data.cli"]


def timed(args: list[str]) -> tuple[float, int, str]:
    """Run a command under /usr/bin/time -v; return (wall seconds, peak RSS in kB, stdout)."""
    env = {**os.environ, "PIXELREC_QUIET": "1"}
    start = time.perf_counter()
    if Path("/usr/bin/time").exists():
        proc = subprocess.run(["/usr/bin/time", "-v", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    else:  # fall back to the children's rusage (max over all children so far)
        import resource
        proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr[-2000:]}")
    return wall, rss, proc.stdout


def generate(raw: Path, key: Path, users: int, videos: int, interactions: int, seed: int = 1) -> None:
    if (raw / "interactions").is_dir():
        return
    wall, rss, out = timed([*PIXELREC, "generate-raw", "--out", str(raw), "--key-file", str(key),
                            "--seed", str(seed), "--users", str(users), "--videos", str(videos),
                            "--interactions", str(interactions)])
    print(f"generate-raw: {wall:.1f} s wall, peak RSS {rss / 1024:.0f} MiB: {out.strip()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/pixelrec-bench-200k"))
    parser.add_argument("--users", type=int, default=300_000)
    parser.add_argument("--videos", type=int, default=96_000)
    parser.add_argument("--interactions", type=int, default=4_200_000)
    parser.add_argument("--subset", action="append", default=None,
                        help="passed to build-release (default: pixel8m=all pixel1m=250000 pixel200k=200000)")
    args = parser.parse_args()
    subsets = args.subset or ["pixel8m=all", "pixel1m=250000", "pixel200k=200000"]
    raw, key = args.work / "raw", args.work / "key"
    generate(raw, key, args.users, args.videos, args.interactions)
    results = []
    for run in range(args.runs):
        data = args.work / f"data-{run}"
        shutil.rmtree(data, ignore_errors=True)
        build = timed([*PIXELREC, "build-release", "--raw", str(raw), "--out", str(data), "--key-file", str(key),
                       "--seed", "1", *[a for s in subsets for a in ("--subset", s)]])
        last = subsets[-1].split("=")[0]
        splits = timed([*PIXELREC, "build-splits", "--release", str(data / last)])
        results.append((build[0], build[1], splits[0], splits[1]))
        print(f"run {run + 1}: build-release {build[0]:.1f} s (peak RSS {build[1] / 1024:.0f} MiB), "
              f"build-splits {last} {splits[0]:.1f} s (peak RSS {splits[1] / 1024:.0f} MiB)", flush=True)
        if run == 0:
            print(build[2].strip())
        if run:
            shutil.rmtree(data, ignore_errors=True)
    print(f"median of {args.runs}: build-release {statistics.median(r[0] for r in results):.1f} s, "
          f"peak RSS {statistics.median(r[1] for r in results) / 1024:.0f} MiB; build-splits "
          f"{statistics.median(r[2] for r in results):.1f} s, peak RSS "
          f"{statistics.median(r[3] for r in results) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
