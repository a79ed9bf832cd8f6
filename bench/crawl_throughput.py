"""Crawler throughput against a local simulator, next to the simulator's own ceiling.

    .venv/bin/python bench/crawl_throughput.py [--videos 400] [--users 2000] [--runs 3]

The crawler runs with politeness relaxed (concurrency 16, no delay, loopback only); the ceiling is a
plain concurrent aiohttp client making the same requests (listing, view, tags, every comment page,
danmaku, related for every video) with 16 requests in flight. Medians over --runs runs.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PIXELREC = [sys.executable, "-c", "from pixelrec_data.cli import main; main()"]
ENV = dict(os.environ, PIXELREC_QUIET="1", PYTHONPATH=str(ROOT))
CONCURRENCY = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(seed: int, users: int, videos: int):
    port = free_port()
    proc = subprocess.Popen(PIXELREC + ["simulate", "--port", str(port), "--seed", str(seed),
                                        "--users", str(users), "--videos", str(videos)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/robots.txt", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("simulator did not start")


async def plain_client(base: str) -> tuple[int, float]:
    """Walk the same endpoints as the crawler with CONCURRENCY requests in flight."""
    count = 0
    limit = asyncio.Semaphore(CONCURRENCY)

    async def get(session, path, **params):
        nonlocal count
        async with limit:
            async with session.get(base + path, params=params) as response:
                body = await response.read()
                count += 1
        return json.loads(body) if path != "/x/v1/dm/list.so" else body

    async def video(session, aid):
        view = await get(session, "/x/web-interface/view", aid=aid)
        if view["code"] != 0 or view["data"]["duration"] >= 600:
            return
        cid = view["data"]["cid"]
        await asyncio.gather(get(session, "/x/web-interface/view/detail/tag", aid=aid, cid=cid),
                             get(session, "/x/v1/dm/list.so", oid=cid),
                             get(session, "/x/web-interface/archive/related", aid=aid))
        pn = 1
        while True:
            page = await get(session, "/x/v2/reply", type=1, oid=aid, sort=0, ps=20, pn=pn)
            data = page.get("data") or {}
            if page["code"] != 0 or not data.get("replies") or pn * 20 >= data["page"]["count"]:
                break
            pn += 1

    start = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        first = await get(session, "/x/web-interface/dynamic/region", rid=0, ps=50, pn=1)
        pages = -(-first["data"]["page"]["count"] // 50)
        listings = [first] + list(await asyncio.gather(*[
            get(session, "/x/web-interface/dynamic/region", rid=0, ps=50, pn=pn)
            for pn in range(2, pages + 1)]))
        aids = [a["aid"] for doc in listings for a in doc["data"]["archives"]]
        await asyncio.gather(*[video(session, aid) for aid in aids])
    return count, time.perf_counter() - start


def crawler_run(base: str, work: Path, run: int) -> dict:
    out = work / f"raw{run}"
    subprocess.run(PIXELREC + ["crawl", "--base-url", base, "--out", str(out), "--key-file",
                               str(work / "key"), "--rate", "0", "--concurrency", str(CONCURRENCY)],
                   env=ENV, check=True, capture_output=True)
    stats = json.loads((out / "crawl_stats.json").read_text())
    elapsed = stats["last_run"]["elapsed_s"]        # spider open -> close
    active = stats["last_run"]["active_s"] or elapsed  # first -> last request sent
    return {"requests_s": stats["requests"] / active, "events_s": stats["events"] / active,
            "requests_s_total": stats["requests"] / elapsed, "requests": stats["requests"],
            "events": stats["events"], "elapsed_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=400)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    proc, base = start_simulator(args.seed, args.users, args.videos)
    try:
        ceiling = []
        for _ in range(args.runs):
            count, elapsed = asyncio.run(plain_client(base))
            ceiling.append(count / elapsed)
        with tempfile.TemporaryDirectory() as tmp:
            runs = [crawler_run(base, Path(tmp), i) for i in range(args.runs)]
    finally:
        proc.terminate()
        proc.wait(10)
    crawl_rps = statistics.median(r["requests_s"] for r in runs)
    crawl_eps = statistics.median(r["events_s"] for r in runs)
    ceiling_rps = statistics.median(ceiling)
    print(f"world: seed {args.seed}, {args.users} users, {args.videos} videos; "
          f"{runs[0]['requests']} requests, {runs[0]['events']} events per crawl")
    print(f"simulator ceiling (aiohttp, {CONCURRENCY} in flight): {ceiling_rps:8.1f} requests/s "
          f"(runs: {', '.join(f'{c:.1f}' for c in ceiling)})")
    crawl_runs = ", ".join(f"{r['requests_s']:.1f}" for r in runs)
    print(f"crawler (concurrency {CONCURRENCY}, no delay):       {crawl_rps:8.1f} requests/s, "
          f"{crawl_eps:8.1f} events/s (runs: {crawl_runs})")
    total_rps = statistics.median(r["requests_s_total"] for r in runs)
    print(f"crawler incl. start-up and close:            {total_rps:8.1f} requests/s")
    print(f"crawler / ceiling: {crawl_rps / ceiling_rps:.2f}")


if __name__ == "__main__":
    main()
