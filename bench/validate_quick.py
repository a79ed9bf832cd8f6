"""Benchmark: `pixelrec validate-baselines --suite quick` on a small release built from the
synthetic world (CPU; the issue's bound is 10 minutes on a small release).

Builds the release the way the product does: `generate-raw` (the world's crawl) and
`build-release`, then renders each item's cover from the world's latent visual features
(pixelrec_data.simulator.covers, matched through the cover URL's hash), as `fetch-covers` would
have fetched them from the simulator. Then runs the quick suite in a fresh process, timing it.

    .venv/bin/python bench/validate_quick.py [--users 4000] [--videos 2500] [--work /tmp/pvb]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
PIXELREC = [sys.executable, "-m", "pixelrec_data.cli"]
COVER_SIZE = (128, 80)  # 16:10 like the platform's covers, small enough to render quickly


def run(args, **kw):
    return subprocess.run(args, cwd=ROOT, env={**os.environ, "PIXELREC_QUIET": "1"}, check=True, **kw)


def render_covers(release: Path, seed: int, users: int, videos: int, interactions: int) -> int:
    """covers/<item_id>.jpg for every item, from the visual features of its world video."""
    from pixelrec_data.simulator.covers import feature_dict, render
    from pixelrec_data.synthetic import generate_world

    world = generate_world(seed, users, videos, interactions=interactions)
    video_of_hash = {h: v for v, h in enumerate(world.videos.column("cover_url").to_pylist())}
    items = pq.read_table(release / "items.parquet", columns=["item_id", "cover_url"]).to_pylist()
    folder = release / "covers"
    folder.mkdir(exist_ok=True)
    for row in items:
        digest = row["cover_url"].rsplit("/", 1)[-1].split(".")[0]
        render(feature_dict(world.visual[video_of_hash[digest]]), COVER_SIZE).save(
            folder / f"{row['item_id']}.jpg", quality=90)
    return len(items)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--videos", type=int, default=2500)
    parser.add_argument("--interactions", type=int, default=60000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default="/tmp/pixelrec-validate-quick")
    parser.add_argument("--suite", default="quick")
    args = parser.parse_args()
    work = Path(args.work)
    release = work / "data" / "small"
    if not (release / "splits").is_dir():
        work.mkdir(parents=True, exist_ok=True)
        run([*PIXELREC, "generate-raw", "--out", str(work / "raw"), "--key-file", str(work / "key"),
             "--seed", str(args.seed), "--users", str(args.users), "--videos", str(args.videos),
             "--interactions", str(args.interactions), "--overwrite"])
        run([*PIXELREC, "build-release", "--raw", str(work / "raw"), "--out", str(work / "data"),
             "--key-file", str(work / "key"), "--subset", "small=all"], stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    n = render_covers(release, args.seed, args.users, args.videos, args.interactions)
    print(f"rendered {n} covers in {time.perf_counter() - started:.1f}s", flush=True)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run([*PIXELREC, "validate-baselines", "--release", str(release), "--suite",
                           args.suite, "--out", str(work / "runs")], cwd=ROOT,
                          env={**os.environ, "PIXELREC_QUIET": "1"}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
    print(f"validate-baselines --suite {args.suite}: exit {proc.returncode}, wall {wall:.1f}s "
          f"(load average before {load:.1f}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
