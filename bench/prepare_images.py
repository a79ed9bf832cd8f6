"""Benchmark `prepare-images`: images/s on 2 cores and size on disk, on synthetic JPEG covers.

    .venv/bin/python bench/prepare_images.py [--n 400] [--runs 3] [--sizes 640x400,1280x720]

Covers are generated (seeded) as smooth gradients with shapes and mild noise, so their JPEG sizes and
decode costs are like real video covers rather than like pure noise. Each configuration is built
`--runs` times from scratch (force) and the median is reported, both as wall-clock images/s and as
images per CPU-second (user + system time of the process and its workers), which stays meaningful
when other jobs share the cores; the load average before and after is printed too.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("PIXELREC_QUIET", "1")

from pixelrec_data.covers.cache_reader import ImageCache  # noqa: E402
from pixelrec_data.covers.cache import prepare_images  # noqa: E402
from schemas.io import write_table  # noqa: E402
from schemas.official_subsets import OFFICIAL_SUBSETS  # noqa: E402
from schemas.tables import COUNT_COLUMNS  # noqa: E402

PIXEL200K_ITEMS = OFFICIAL_SUBSETS["pixel200k"].items


def synthetic_cover(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, 3)
    slope = rng.uniform(-0.2, 0.2, (2, 3))
    pixels = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    pixels += rng.normal(0, 6, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        box = [x0, y0, x0 + rng.integers(10, width // 3), y0 + rng.integers(10, height // 3)]
        draw.rectangle(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def make_release(root: Path, n: int, width: int, height: int) -> Path:
    rel = root / f"bench_{width}x{height}"
    (rel / "covers").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        synthetic_cover(rng, width, height).save(rel / "covers" / f"i{i}.jpg", "JPEG", quality=85)
    cols = {"item_id": [f"i{i}" for i in range(n)], **{c: [0] * n for c in COUNT_COLUMNS},
            "title": [""] * n, "tag": [""] * n, "description": [""] * n, "cover_url": [""] * n,
            "release_time": [0] * n, "channel": [""] * n, "duration_s": pa.array([0] * n, pa.int32())}
    write_table(pa.table(cols), rel / "items.parquet", "items")
    return rel


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(rel: Path, size: int, mode: str, workers: int, runs: int) -> dict:
    """Wall-clock images/s, and images per CPU-second (robust when other jobs share the cores)."""
    rates, per_cpu_s = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), _cpu_seconds()
        report = prepare_images(rel, size=size, mode=mode, workers=workers, force=True)
        rates.append(report["items"] / (time.perf_counter() - start))
        per_cpu_s.append(report["items"] / (_cpu_seconds() - cpu))
    return {"images_per_s_median": round(statistics.median(rates), 1),
            "runs": [round(r, 1) for r in rates],
            "images_per_cpu_s_median": round(statistics.median(per_cpu_s), 1),
            "bytes_on_disk": report["bytes_on_disk"]}


def gather(rel: Path, size: int, batch: int = 352, reps: int = 10) -> dict:
    """A PixelNet step's images (16 users x 22 slots) from the warm cache, normalised, in ms."""
    cache = ImageCache(rel, size, "squash")
    rng = np.random.default_rng(0)
    times = {}
    for normalize in (None, "official"):
        runs = []
        for _ in range(reps):
            rows = rng.integers(-1, len(cache), batch)
            start = time.perf_counter()
            cache.tensor(rows, normalize=normalize)
            runs.append((time.perf_counter() - start) * 1000)
        times[f"batch{batch}_{normalize or 'uint8'}_ms_median"] = round(statistics.median(runs), 1)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="640x400,1280x720")
    parser.add_argument("--out-size", type=int, default=224)
    args = parser.parse_args(argv)
    results = {"cpu_count": os.cpu_count(), "loadavg_before": os.getloadavg(), "n": args.n, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sizes.split(","):
            width, height = map(int, spec.split("x"))
            rel = make_release(Path(tmp), args.n, width, height)
            jpeg_kib = sum(p.stat().st_size for p in (rel / "covers").iterdir()) / args.n / 1024
            for mode, workers in (("squash", 1), ("squash", 2), ("center_crop", 2)):
                row = {"cover": spec, "jpeg_kib": round(jpeg_kib, 1), "mode": mode, "workers": workers,
                       **measure(rel, args.out_size, mode, workers, args.runs)}
                per_image = row["bytes_on_disk"] / args.n
                row["pixel200k_gib"] = round(per_image * PIXEL200K_ITEMS / 2**30, 2)
                row["pixel200k_minutes"] = round(PIXEL200K_ITEMS / row["images_per_s_median"] / 60, 1)
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
            results["gather"] = gather(rel, args.out_size)
            print(json.dumps({"cover": spec, **results["gather"]}), flush=True)
    results["loadavg_after"] = os.getloadavg()
    print(json.dumps({k: v for k, v in results.items() if k != "rows"}))


if __name__ == "__main__":
    main()
