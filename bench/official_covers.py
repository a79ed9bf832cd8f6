"""Benchmark: an official covers archive -> verified covers + the 224 px training cache.

    python bench/official_covers.py [--count 96282] [--work work/bench-official-covers]

Input, generated once and kept in --work (git-ignored): a zip of COUNT synthetic 1280x720 JPEG
covers (covers/i<n>.jpg, stored, about 100 KB each; 512 distinct pictures, seeded) and the
interactions and item-information CSVs in the official layout, as a user downloads them by hand.

Ours (a child process): `pixelrec download --subset pixel200k --from DIR --image-cache 224
--counts off`: import, each cover streamed out of the zip and decoded once at the scale the cache
needs (JPEG scaled decoding: the check that it decodes, its phash and its 224 px row come from that
one decode; two threads), covers.parquet, the manifest (sha256 of every cover) and the card.
The official way, in the same run (a child process on one core, as its generate_lmdb.py): unzip the
archive, then per image PIL open, full decode, convert RGB, resize to 224x224 bilinear, into an array.
Printed: wall and CPU seconds and peak RSS of each, the speed-up, and the PSNR of our cache rows
against the official way's (a sample of 1,000 rows). At Pixel200K's size each side writes ~25 GB;
ours is removed (its sample rows kept) before the official way runs.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SIZE = 224
DISTINCT = 512


def generate(work: Path, count: int) -> Path:
    """work/input-<count>/ with the covers zip and the two CSVs (made once)."""
    from prepare_images import synthetic_cover

    folder = work / f"input-{count}"
    if (folder / "done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pictures = []
    for _ in range(min(DISTINCT, count)):
        out = io.BytesIO()
        synthetic_cover(rng, 1280, 720).save(out, "JPEG", quality=85)
        pictures.append(out.getvalue())
    with zipfile.ZipFile(folder / "covers.zip", "w", zipfile.ZIP_STORED) as archive:
        for n in range(count):
            archive.writestr(f"covers/i{n}.jpg", pictures[n % len(pictures)])
    users = (count + 4) // 5
    with open(folder / "Pixel200K.csv", "w") as f:  # user u: items 5u .. 5u+4 (every item used)
        f.write("item_id,user_id,timestamp\n")
        for u in range(users):
            for k in range(5):
                f.write(f"i{(5 * u + k) % count},u{u},{1_600_000_000 + u + k}\n")
    with open(folder / "item_info.csv", "w") as f:
        f.write("item_id,view_number,comment_number,thumbup_number,share_number,coin_number,"
                "favorite_number,barrage_number,title_en,title,description,tag\n")
        for n in range(count):
            f.write(f"i{n},{n},1,2,3,4,5,6,title {n},标题 {n},desc,tag\n")
    (folder / "done").touch()
    return folder


def run_child(args: list[str], env: dict) -> dict:
    """Run this script in a child mode; returns its wall time and its own rusage."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    usage = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **usage}


def _usage() -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
            "peak_rss_mib": max(own.ru_maxrss, kids.ru_maxrss) / 1024}


def child_ours(source: str, root: str) -> None:
    from pixelrec_data.cli import main

    try:
        main(["download", "--subset", "pixel200k", "--root", root, "--from", source,
              "--image-cache", str(SIZE), "--counts", "off"])
    except SystemExit as exc:
        if exc.code:
            raise
    print(json.dumps(_usage()))


def child_official(archive: str, out: str) -> None:
    """The official code's way: the covers as files, then per image open, full decode, resize."""
    from PIL import Image

    out = Path(out)
    covers = out / "covers"
    with zipfile.ZipFile(archive) as z:
        z.extractall(covers)
    paths = sorted((covers / "covers").iterdir(), key=lambda p: int(p.stem[1:]))
    array = np.lib.format.open_memmap(out / "official.npy", mode="w+", dtype=np.uint8,
                                      shape=(len(paths), SIZE, SIZE, 3))
    for row, path in enumerate(paths):
        image = Image.open(path).convert("RGB")
        array[row] = np.asarray(image.resize((SIZE, SIZE), Image.BILINEAR))
    array.flush()
    print(json.dumps(_usage()))


def sample_rows(count: int, sample: int = 1000) -> np.ndarray:
    return np.linspace(0, count - 1, min(sample, count)).astype(int)


def psnr(ours: np.ndarray, official: np.ndarray) -> float:
    diff = ours.astype(np.float64) - official.astype(np.float64)
    mse = float(np.mean(diff ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=96_282, help="covers (Pixel200K has 96,282)")
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "bench-official-covers")
    parser.add_argument("--keep", action="store_true", help="keep the outputs (not only the input)")
    args = parser.parse_args()
    source = generate(args.work, args.count)
    env = {**os.environ, "PIXELREC_QUIET": "1", "PYTHONPATH": str(ROOT)}
    out = args.work / f"run-{args.count}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    load = os.getloadavg()[0]
    ours = run_child(["--child-ours", str(source), str(out / "data")], env)
    rows = sample_rows(args.count)
    ours_sample = np.array(np.load(out / "data" / "pixel200k" / "images" / f"images_{SIZE}_squash.npy",
                                   mmap_mode="r")[rows])
    if not args.keep:  # at Pixel200K's size each side's output is ~25 GB: one at a time on disk
        shutil.rmtree(out / "data")
    official = run_child(["--child-official", str(source / "covers.zip"), str(out / "official")], env)
    official_sample = np.load(out / "official" / "official.npy", mmap_mode="r")[rows]
    quality = psnr(ours_sample, official_sample)
    report = {"count": args.count, "load_average_before": round(load, 2),
              "ours": {k: round(v, 2) for k, v in ours.items()},
              "official_way": {k: round(v, 2) for k, v in official.items()},
              "speedup_wall": round(official["wall_s"] / ours["wall_s"], 2),
              "speedup_cpu": round(official["cpu_s"] / ours["cpu_s"], 2),
              "psnr_db_vs_full_decode": round(quality, 2),
              "load_average_after": round(os.getloadavg()[0], 2)}
    print(json.dumps(report, indent=1))
    print(f"{args.count:,} covers: ours {ours['wall_s']:.1f} s wall ({ours['cpu_s']:.1f} CPU s, peak "
          f"{ours['peak_rss_mib']:.0f} MiB) vs the official way {official['wall_s']:.1f} s "
          f"({official['cpu_s']:.1f} CPU s, {official['peak_rss_mib']:.0f} MiB): "
          f"{report['speedup_wall']}x wall, {report['speedup_cpu']}x CPU; "
          f"PSNR {quality:.1f} dB against the full decode")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-ours":
        child_ours(*sys.argv[2:4])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-official":
        child_official(*sys.argv[2:4])
    else:
        main()
