"""Benchmark: fetch-covers throughput (covers/s) against a local aiohttp server.

The server (a subprocess, so it does not share the client's GIL) serves N small JPEGs. Two clients
fetch all of them at concurrency 16:
  plain    - a bare aiohttp loop (GET + read, semaphore 16): the network-only ceiling;
  pixelrec - fetch_release_covers(): GET, decode/verify, phash, sha256, atomic file write per
             cover, shard stats and covers.parquet.
Each runs 3 times (alternating, fresh output folder each time); medians are reported.

    .venv/bin/python bench/fetch_covers.py [--covers 2000] [--concurrency 16] [--runs 3] [--workdir D]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_jpeg(n: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(n)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small, "RGB").resize((160, 100), Image.BICUBIC).save(out, "JPEG", quality=85)
    return out.getvalue()


def serve(port: int, count: int) -> None:
    from aiohttp import web

    images = {f"{n}.jpg": make_jpeg(n) for n in range(count)}

    async def img(request):
        return web.Response(body=images[request.match_info["name"]], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/img/{name}", img)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def plain_client(urls: list[str], concurrency: int) -> int:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(url):
            async with sem, session.get(url) as resp:
                return len(await resp.read()) if resp.status == 200 else 0
        sizes = await asyncio.gather(*(one(u) for u in urls))
    return sum(1 for s in sizes if s)


def run_plain(urls, concurrency) -> float:
    start = time.perf_counter()
    ok = asyncio.run(plain_client(urls, concurrency))
    elapsed = time.perf_counter() - start
    assert ok == len(urls), f"plain client got {ok} of {len(urls)}"
    return len(urls) / elapsed


def run_pixelrec(urls, concurrency, workdir: Path) -> float:
    import pyarrow as pa

    from pixelrec_data.downloader import FetchOptions, fetch_release_covers
    from schemas.io import write_table
    from schemas.tables import ITEMS

    release = Path(tempfile.mkdtemp(dir=workdir))
    rows = [{"item_id": f"i{n}", "cover_url": url} for n, url in enumerate(urls)]
    write_table(pa.Table.from_pylist(rows, schema=ITEMS), release / "items.parquet", "items")
    options = FetchOptions(concurrency=concurrency, rate=0, retries=1, timeout=30, shard_size=1000)
    start = time.perf_counter()
    summary = fetch_release_covers(release, options)
    elapsed = time.perf_counter() - start
    assert summary["ok"] == len(urls), summary["status_counts"]
    return len(urls) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covers", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", default=None,
                        help="where the covers are written (default: the system temp folder)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.covers)
    os.environ["PIXELREC_QUIET"] = "1"
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--covers",
                               str(args.covers)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        wait_for_port(port)
        urls = [f"http://127.0.0.1:{port}/img/{n}.jpg" for n in range(args.covers)]
        run_plain(urls[:50], args.concurrency)  # warm-up
        plain, ours = [], []
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            for _ in range(args.runs):
                plain.append(run_plain(urls, args.concurrency))
                ours.append(run_pixelrec(urls, args.concurrency, Path(tmp)))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{args.covers} covers, concurrency {args.concurrency}, {args.runs} runs, "
          f"{os.cpu_count()} CPUs, covers written under {args.workdir or tempfile.gettempdir()}")
    print(f"plain aiohttp loop : median {statistics.median(plain):8.1f} covers/s  "
          f"(runs: {', '.join(f'{x:.1f}' for x in plain)})")
    print(f"pixelrec fetch     : median {statistics.median(ours):8.1f} covers/s  "
          f"(runs: {', '.join(f'{x:.1f}' for x in ours)})")
    print(f"pixelrec / plain   : {statistics.median(ours) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
