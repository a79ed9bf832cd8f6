"""Benchmark: `pixelrec download` from a mirror whose manifest lists N files.

The mirror (tests/manifest_flood.py: index.json and a manifest of N entries, its size and sha256
consistent in the index) is served by an aiohttp server on 127.0.0.1; its files are not, so a
download whose check of the manifest finishes ends at the first file it requests (HTTP 404). The
command runs in a child process that writes its own peak RSS (VmHWM) when it exits, as the
hostile tests measure it. Prints the wall and CPU seconds, the peak RSS and the command's error
line, for the index declaring N files and, with --declare M, M files.

    .venv/bin/python bench/mirror_manifest.py [--entries 1800000] [--declare 1000]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from aiohttp import web  # noqa: E402

from hostile_helpers import run_measured  # noqa: E402
from manifest_flood import NAME, write_flood_mirror  # noqa: E402
from test_downloader_server import LocalServer  # noqa: E402


def measure(mirror: Path, out: Path, label: str) -> None:
    app = web.Application()
    app.router.add_static("/", mirror)
    with LocalServer(app) as server:
        start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        result = run_measured("download", "--subset", NAME, "--mirror", server.url, "--out", out,
                              "--retries", "0", "--counts", "off", timeout=600)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    last = (result.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
    print(f"{label}: rc {result.returncode}, {seconds:.1f} s ({cpu:.1f} s CPU), peak RSS "
          f"{result.peak_rss_mb:.0f} MB\n    {last[:200]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_800_000)
    parser.add_argument("--declare", type=int, default=None,
                        help="also run with the index declaring this many files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        mirror = Path(scratch) / "mirror"
        start = time.perf_counter()
        manifest = write_flood_mirror(mirror, args.entries)
        print(f"manifest of {args.entries:,} entries, {manifest.stat().st_size:,} bytes "
              f"(written in {time.perf_counter() - start:.1f} s)", flush=True)
        measure(mirror, Path(scratch) / "out-a", f"index declares {args.entries:,}")
        if args.declare is not None:
            write_flood_mirror(mirror, args.entries, declare=args.declare)
            measure(mirror, Path(scratch) / "out-b", f"index declares {args.declare:,}")


if __name__ == "__main__":
    main()
