"""Benchmark of `write_raw` (the generate-raw command): wall time and peak RSS.

    .venv/bin/python bench/generate_raw.py [--runs 3] [--full auto|yes|no] [--tmp DIR]

1. Pixel200K scale (200,000 users, 96,000 videos, ~3.97M interactions): `--runs` runs, median.
2. Full PixelRec scale (29,845,039 users, 408,374 videos, 195,755,320 interactions), once, into a
   temporary folder deleted afterwards. With --full auto it runs only before 06:00 local time
   (the machine is shared), and it then counts videos over the 6,500-user cap with DuckDB.
Each run is a separate process, so its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from schemas.official_subsets import OFFICIAL_SUBSETS  # noqa: E402

# the published sizes (schemas/official_subsets.py); Pixel200K videos: the 96,000 this bench has
# always generated
_P200K, _FULL = OFFICIAL_SUBSETS["pixel200k"], OFFICIAL_SUBSETS["pixelrec"]
PIXEL200K = dict(users=_P200K.users, videos=96_000, interactions=_P200K.interactions)
FULL = dict(users=_FULL.users, videos=_FULL.items, interactions=_FULL.interactions)

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from pixelrec_data.synthetic import write_raw
start = time.perf_counter()
counts = write_raw({out!r}, seed=1, key=b"bench-key-0123456789abcdef012345", **{sizes!r})
counts["wall_s"] = time.perf_counter() - start
counts["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(json.dumps(counts))
"""


def run_once(sizes: dict, tmp_root: Path) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-raw-", dir=tmp_root))
    out = tmp / "raw"
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD.format(root=str(ROOT), out=str(out), sizes=sizes)],
                              capture_output=True, text=True, env={"PIXELREC_QUIET": "1", "PATH": "/usr/bin:/bin"})
        if proc.returncode != 0:
            raise SystemExit(f"run failed: {proc.stderr.strip().splitlines()[-1:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["bytes_on_disk"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        result.update(count_over_cap(out))
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def count_over_cap(raw: Path) -> dict:
    import duckdb
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET memory_limit='8GB'; SET preserve_insertion_order=false")
    glob = str(raw / "interactions" / "*.parquet")
    over, top = con.execute(
        f"SELECT count(*) FILTER (WHERE n > 6500), max(n) FROM (SELECT platform_video_id, "
        f"count(DISTINCT user_key) AS n FROM read_parquet('{glob}') GROUP BY 1)").fetchone()
    return {"videos_over_6500_user_keys": over, "max_user_keys_per_video": top,
            "over_cap_query_s": time.perf_counter() - start}


def fmt(r: dict) -> str:
    return (f"wall {r['wall_s']:.1f}s, peak RSS {r['peak_rss_gb']:.2f} GB, "
            f"{r['interactions_written']:,} interactions, {r['videos_written']:,} videos, "
            f"{r['bytes_on_disk'] / 1e9:.2f} GB on disk; most user keys on a video "
            f"{r['max_user_keys_per_video']:,}, videos over 6,500: {r['videos_over_6500_user_keys']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--full", choices=["auto", "yes", "no"], default="auto")
    ap.add_argument("--tmp", default=str(ROOT / "work" / "tmp"),
                    help="where the raw crawls are written (default: work/tmp in the repository, ignored by git)")
    args = ap.parse_args()
    tmp_root = Path(args.tmp)
    tmp_root.mkdir(parents=True, exist_ok=True)
    runs = []
    for i in range(args.runs):
        runs.append(run_once(PIXEL200K, tmp_root))
        print(f"pixel200k run {i + 1}: {fmt(runs[-1])}", flush=True)
    if runs:
        print(f"pixel200k median: wall {statistics.median(r['wall_s'] for r in runs):.1f}s, "
              f"peak RSS {statistics.median(r['peak_rss_gb'] for r in runs):.2f} GB", flush=True)
    full = args.full == "yes" or (args.full == "auto" and dt.datetime.now().hour < 6)
    if not full:
        print("full scale: skipped (runs only before 06:00 with --full auto, or with --full yes)")
        return
    r = run_once(FULL, tmp_root)
    print(f"full scale: {fmt(r)} (cap query {r['over_cap_query_s']:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
