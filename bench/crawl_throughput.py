"""Crawler throughput against a local simulator, next to the simulator's own ceiling.

    .venv/bin/python bench/crawl_throughput.py [--videos 1600] [--users 8000] [--runs 5]

The crawler runs with politeness relaxed (concurrency 16, no delay, loopback only). A plain
concurrent aiohttp client first walks the API as the crawler does (every page of the 23 channel
listings, then view, tags, every comment page and nested-reply page, danmaku and related for every
micro-video: the same endpoints and the same count, printed), parsing each page to find the next.
The ceiling is that walk's URL list replayed by the same client with 16 requests in flight, reading
every body and parsing none: the simulator's CPU share is printed, and at 100% the simulator, not the
client, is the limit (the walking client itself is printed too; it tops out below the simulator).
The simulator, the plain client (this process) and the crawler (a subprocess) each run in their own
process; the sides alternate run by run against one warmed-up simulator, so a change of load on the
machine hits them alike, and the crawler/ceiling ratio is printed run by run too. A last side, the
Scrapy floor, is a bare spider (bench/_scrapy_floor.py: no parsing, no items, no robots.txt) fetching
the same URL list with the crawler's loopback settings (its download handler included): what Scrapy
itself costs per request here, an upper bound of any Scrapy crawler. Medians over --runs runs.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pixelrec_data.net.addresses import free_port  # noqa: E402

PIXELREC = [sys.executable, "-c", "from pixelrec_data.cli import main; main()"]
ENV = dict(os.environ, PIXELREC_QUIET="1", PYTHONPATH=str(ROOT))
CONCURRENCY = 16


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


urls: list[str] = []  # the plain client's last walk, for the Scrapy floor


async def plain_client(base: str) -> tuple[int, float, dict]:
    """Make the crawler's requests (same endpoints, same count) with CONCURRENCY in flight.

    The walk mirrors the spider: every page of the 23 channel listings, one view per listed
    micro-video, then for each kept video tags, danmaku, related and comment page 1 side by side,
    and once page 1 gave the count the other comment pages at once (and one past the last page
    when the last page was full). Each comment page is followed by the reply/reply pages of its
    roots whose preview does not show all their replies: root after root, page after page, before
    that page's next comment page. Returns (requests, seconds, requests per endpoint).
    """
    from crawler.spiders.bilibili import CHANNEL_RIDS, LISTING_PS, REPLY_PS

    count = 0
    urls.clear()
    per_path: dict = {}
    limit = asyncio.Semaphore(CONCURRENCY)
    seen: set = set()

    async def get(session, path, **params):
        nonlocal count
        async with limit:
            async with session.get(base + path, params=params) as response:
                body = await response.read()
                count += 1
                urls.append(str(response.url))
                per_path[path] = per_path.get(path, 0) + 1
        return json.loads(body) if path != "/x/v1/dm/list.so" else body

    def micro(refs) -> list:
        return [a["aid"] for a in refs if a.get("duration") in (None, "") or a["duration"] < 600]

    async def threads(session, aid, doc) -> bool:
        """The reply/reply pages of a comment page's roots with replies beyond their preview (the
        spider's parse_replies.nested), sequential; False when one failed: the spider then drops
        the rest of that page's branch."""
        replies = (doc.get("data") or {}).get("replies") or []
        for root in [r["rpid"] for r in replies if (r.get("rcount") or 0) > len(r.get("replies") or [])]:
            pn = 1
            while True:
                sub = await get(session, "/x/v2/reply/reply", type=1, oid=aid, root=root, ps=REPLY_PS,
                                pn=pn)
                if sub["code"] != 0:
                    return False
                data = sub["data"]
                if not data.get("replies") or data["page"]["num"] * max(data["page"]["size"], 1) >= \
                        data["page"]["count"]:
                    break
                pn += 1
        return True

    async def reply_pages(session, aid):
        first = await get(session, "/x/v2/reply", type=1, oid=aid, sort=0, ps=REPLY_PS, pn=1)
        data = first.get("data") or {}
        if first["code"] != 0 or not data.get("replies"):
            return
        pages = -(-data["page"]["count"] // REPLY_PS)

        async def page(pn):
            doc = await get(session, "/x/v2/reply", type=1, oid=aid, sort=0, ps=REPLY_PS, pn=pn)
            replies = (doc.get("data") or {}).get("replies") or []
            if doc["code"] == 0 and await threads(session, aid, doc) and pn >= pages and \
                    len(replies) >= REPLY_PS:
                await page(pn + 1)
        await asyncio.gather(threads(session, aid, first), *[page(pn) for pn in range(2, pages + 1)])

    async def video(session, aid):
        if aid in seen:
            return
        seen.add(aid)
        view = await get(session, "/x/web-interface/view", aid=aid)
        if view["code"] != 0 or view["data"]["duration"] >= 600:
            return
        cid = view["data"]["cid"]
        _, _, related, _ = await asyncio.gather(
            get(session, "/x/web-interface/view/detail/tag", aid=aid, cid=cid),
            get(session, "/x/v1/dm/list.so", oid=cid),
            get(session, "/x/web-interface/archive/related", aid=aid), reply_pages(session, aid))
        if related["code"] == 0:  # the spider follows 1-3 of these; new ones are crawled too
            await asyncio.gather(*[video(session, a) for a in micro(related["data"] or [])
                                   if a not in seen])

    async def channel(session, rid):
        region = "/x/web-interface/dynamic/region"
        first = await get(session, region, rid=rid, ps=LISTING_PS, pn=1)
        pages = -(-first["data"]["page"]["count"] // LISTING_PS)
        rest = await asyncio.gather(*[get(session, region, rid=rid, ps=LISTING_PS, pn=pn)
                                      for pn in range(2, pages + 1)])
        return [a for doc in [first, *rest] for a in micro(doc["data"]["archives"])]

    start = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        listed = await asyncio.gather(*[channel(session, rid) for rid in CHANNEL_RIDS])
        aids = sorted({aid for found in listed for aid in found})
        await asyncio.gather(*[video(session, aid) for aid in aids])
    return count, time.perf_counter() - start, per_path


async def replay_client(url_list: list[str]) -> tuple[int, float]:
    """Fetch a URL list (the walk's) with CONCURRENCY in flight, reading each body but parsing
    nothing: the simulator's capacity as a client with no work per response sees it."""
    queue = iter(url_list)

    async def worker(session):
        for url in queue:
            async with session.get(url) as response:
                await response.read()

    start = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*[worker(session) for _ in range(CONCURRENCY)])
    return len(url_list), time.perf_counter() - start


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


def floor_run(work: Path) -> float:
    """requests/s of a bare Scrapy spider fetching the plain client's URL list (bench/_scrapy_floor.py)."""
    url_file = work / "urls.txt"
    url_file.write_text("\n".join(urls))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "_scrapy_floor.py"), str(url_file),
                          str(CONCURRENCY)], env=ENV, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["requests_s"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, action):
    """Run action(); return its result and the simulator's CPU share (busy seconds / wall seconds)."""
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    result = action()
    return result, (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1600)
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    proc, base = start_simulator(args.seed, args.users, args.videos)
    walk, ceiling, runs, floor = [], [], [], []
    sim_cpu = {"walk": [], "ceiling": [], "crawler": []}
    try:
        asyncio.run(plain_client(base))  # warm-up, not measured: the simulator's first pass is slower
        with tempfile.TemporaryDirectory() as tmp:
            # alternate the two sides so that a change of load on the machine hits both alike
            for i in range(args.runs):
                (count, elapsed, per_path), share = measured(
                    proc.pid, lambda: asyncio.run(plain_client(base)))
                walk.append(count / elapsed)
                sim_cpu["walk"].append(share)
                (count, elapsed), share = measured(proc.pid, lambda: asyncio.run(replay_client(urls)))
                ceiling.append(count / elapsed)
                sim_cpu["ceiling"].append(share)
                run, share = measured(proc.pid, lambda: crawler_run(base, Path(tmp), i))
                runs.append(run)
                sim_cpu["crawler"].append(share)
                floor.append(floor_run(Path(tmp)))
    finally:
        proc.terminate()
        proc.wait(10)
    report(args, walk, ceiling, count, per_path, runs, sim_cpu, floor)


def report(args, walk, ceiling, count, per_path, runs, sim_cpu, floor) -> None:
    crawl_rps = statistics.median(r["requests_s"] for r in runs)
    crawl_eps = statistics.median(r["events_s"] for r in runs)
    ceiling_rps = statistics.median(ceiling)
    print(f"world: seed {args.seed}, {args.users} users, {args.videos} videos; crawler: "
          f"{runs[0]['requests']} requests (robots.txt included), {runs[0]['events']} events per "
          f"crawl; plain client: {count} requests")
    print("plain client per endpoint: " + ", ".join(f"{k.split('/x/', 1)[1]} {v}"
                                                    for k, v in sorted(per_path.items())))
    print(f"plain client walking the API (aiohttp, parses every page): "
          f"{statistics.median(walk):8.1f} requests/s (simulator CPU "
          f"{statistics.median(sim_cpu['walk']):.0%})")
    print(f"simulator ceiling (the walk's URLs replayed, {CONCURRENCY} in flight, no parsing): "
          f"{ceiling_rps:8.1f} requests/s (runs: {', '.join(f'{c:.1f}' for c in ceiling)}; "
          f"simulator CPU {statistics.median(sim_cpu['ceiling']):.0%})")
    crawl_runs = ", ".join(f"{r['requests_s']:.1f}" for r in runs)
    print(f"crawler (concurrency {CONCURRENCY}, no delay):       {crawl_rps:8.1f} requests/s, "
          f"{crawl_eps:8.1f} events/s (runs: {crawl_runs})")
    total_rps = statistics.median(r["requests_s_total"] for r in runs)
    print(f"crawler incl. start-up and close:            {total_rps:8.1f} requests/s "
          f"(simulator CPU over the whole command {statistics.median(sim_cpu['crawler']):.0%})")
    floor_rps = statistics.median(floor)
    print(f"Scrapy floor (bare spider, same {count} URLs): {floor_rps:8.1f} requests/s "
          f"(runs: {', '.join(f'{f:.1f}' for f in floor)}; {floor_rps / ceiling_rps:.2f} of the ceiling)")
    per_run = ", ".join(f"{r['requests_s'] / c:.2f}" for r, c in zip(runs, ceiling))
    print(f"crawler / ceiling: {crawl_rps / ceiling_rps:.2f} (run by run: {per_run});  "
          f"crawler / Scrapy floor: {crawl_rps / floor_rps:.2f}")


if __name__ == "__main__":
    main()
