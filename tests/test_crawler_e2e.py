"""`pixelrec crawl` end to end against a real simulator process (and a real redis-server).

Each test crawls a small seeded world and compares raw/ with the world's ground truth
(`pixelrec simulate --dump-truth`), hashed with the same key the crawl used.
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pixelrec_data.net.addresses import free_port
from schemas.keys import user_key_for_mid, user_key_for_midhash
from schemas.protocol import ITEM_USER_CAP

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
PIXELREC = [sys.executable, "-c", "from pixelrec_data.cli import main; main()"]
WORLD = ["--seed", "5", "--users", "300", "--videos", "150"]
SMALL_WORLD = ["--seed", "6", "--users", "120", "--videos", "40"]
ENV = dict(os.environ, PIXELREC_QUIET="1", PYTHONPATH=str(ROOT))


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class Simulator:
    def __init__(self, world, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen(PIXELREC + ["simulate", "--port", str(self.port), *world, *extra],
                                     env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + "/robots.txt")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("crawl")


@pytest.fixture(scope="module")
def sim():
    simulator = Simulator(WORLD)
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def truth(work):
    subprocess.run(PIXELREC + ["simulate", "--dump-truth", str(work / "truth"), *WORLD],
                   env=ENV, check=True, capture_output=True)
    return work / "truth"


def crawl_args(base_url, out, key, *extra):
    return PIXELREC + ["crawl", "--base-url", base_url, "--out", str(out), "--key-file", str(key),
                       *extra]


def crawl(base_url, out, key, *extra, check=True, timeout=120):
    result = subprocess.run(crawl_args(base_url, out, key, *extra), env=ENV, capture_output=True,
                            text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def read_raw(out: Path):
    """(videos without crawled_at, set of events, number of event rows) of a raw/ folder."""
    videos = [pq.read_table(p) for p in sorted(glob.glob(str(out / "videos" / "part-*.parquet")))]
    events = [pq.read_table(p) for p in sorted(glob.glob(str(out / "interactions" / "part-*.parquet")))]
    rows = pa.concat_tables(videos).to_pylist() if videos else []
    for row in rows:
        row.pop("crawled_at")
    ev = pa.concat_tables(events).to_pylist() if events else []
    event_set = {(e["platform_video_id"], e["user_key"], e["timestamp"], e["source"]) for e in ev}
    return sorted(rows, key=lambda r: r["platform_video_id"]), event_set, len(ev)


def expected(truth: Path, key: bytes, cap: int = ITEM_USER_CAP):
    """The ground truth as the crawl must see it: micro-videos that are not removed; comments unless
    closed; danmaku as list.so serves them; one event per (video, user), earliest; per-video cap."""
    videos = pq.read_table(truth / "videos.parquet").to_pylist()
    status = {r["platform_video_id"]: r for r in pq.read_table(truth / "status.parquet").to_pylist()}
    keep = {v["platform_video_id"] for v in videos
            if v["duration_s"] < 600 and not status[v["platform_video_id"]]["removed"]}
    best = {}
    for e in pq.read_table(truth / "events.parquet").to_pylist():
        video = e["platform_video_id"]
        if video not in keep or (e["source"] == "comment" and status[video]["comments_closed"]):
            continue
        user = (user_key_for_mid(key, e["mid"]) if e["source"] == "comment"
                else user_key_for_midhash(key, e["mid_hash"]))
        seen = best.get((video, user))
        if seen is None or (e["timestamp"], e["source"]) < seen:
            best[(video, user)] = (e["timestamp"], e["source"])
    per_video = {}
    for (video, user), (ts, source) in best.items():
        per_video.setdefault(video, []).append((ts, user, source))
    events = {(v, u, t, s) for v, rows in per_video.items() for t, u, s in sorted(rows)[:cap]}
    return [v for v in videos if v["platform_video_id"] in keep], events


def assert_same_raw(a: Path, b: Path):
    videos_a, events_a, n_a = read_raw(a)
    videos_b, events_b, n_b = read_raw(b)
    assert videos_a == videos_b
    assert events_a == events_b and n_a == len(events_a) and n_b == len(events_b)


@pytest.fixture(scope="module")
def reference(work, sim):
    """One uninterrupted crawl, the yardstick of the other tests."""
    crawl(sim.url, work / "ref", work / "key", "--rate", "0", "--concurrency", "8", "--seed", "1")
    return work / "ref"


def test_crawl_recovers_the_ground_truth(reference, truth, work, sim):
    key = (work / "key").read_bytes()
    assert len(key) == 32 and (os.stat(work / "key").st_mode & 0o777) == 0o600
    want_videos, want_events = expected(truth, key)
    videos, events, rows = read_raw(reference)
    assert len(videos) == len(want_videos) > 50 and rows == len(events)
    truth_by_id = {v["platform_video_id"]: v for v in want_videos}
    for row in videos:
        wanted = dict(truth_by_id[row["platform_video_id"]])
        wanted.pop("crawled_at")
        assert row["cover_url"].split("/bfs/")[1] == wanted.pop("cover_url").split("/bfs/")[1]
        assert re.match(r"^http://127\.0\.0\.1:\d+/bfs/archive/[0-9a-f]{40}\.jpg$", row.pop("cover_url"))
        assert row == wanted
    assert events == want_events and len(events) > 500
    stats = json.loads((reference / "crawl_stats.json").read_text())
    assert stats["videos"] == len(videos) and stats["events"] == len(events)
    assert stats["requests"] > len(videos) * 4 and stats["close_reason"] == "finished"
    assert stats["last_run"]["robots_txt_requests"] == 1 and stats["last_run"]["gave_up"] == 0
    served = json.loads(urllib.request.urlopen(sim.url + "/__simulator/stats", timeout=10).read())
    assert served["requests /x/v2/reply/reply"] > 0  # nested replies were followed past the previews


def test_nothing_identifying_is_written(reference, truth):
    events = pq.read_table(truth / "events.parquet").to_pylist()
    needles = set()
    for e in events:
        needles.add(str(e["mid"]).encode())
        needles.add(struct.pack("<q", e["mid"]))
        if len(e["mid_hash"]) >= 6:
            needles.add(e["mid_hash"].encode())
    texts = re.compile(rb"\[[cd][0-9a-f]+\]")  # the simulator's comment / danmaku placeholders
    files = [p for p in reference.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for path in files:
        data = path.read_bytes()
        assert not texts.search(data), path
        found = [n for n in needles if n in data]
        assert not found, (path, found[:3])


def test_sigkill_then_resume_equals_uninterrupted(reference, sim, work):
    out = work / "killed"
    proc = subprocess.Popen(crawl_args(sim.url, out, work / "key", "--rate", "150", "--concurrency",
                                       "4", "--seed", "1", "--shard-mb", "0.002"),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(glob.glob(str(out / "videos" / "part-*.parquet"))) >= 8:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the crawl ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial, _, _ = read_raw(out)
    assert 0 < len(partial) < len(read_raw(reference)[0])
    result = crawl(sim.url, out, work / "key", "--rate", "0", "--concurrency", "8", "--seed", "1",
                   "--shard-mb", "0.002")
    assert "closed: finished" in result.stdout
    assert_same_raw(out, reference)


def test_faults_and_rate_limit_full_coverage_within_rate(work):
    """5xx, slow and truncated responses plus the platform's own rate limit: every video is still
    crawled exactly, the crawler never goes over its own --rate, and it cools down on 412s."""
    key = work / "key"
    faulty = Simulator(SMALL_WORLD, "--faults", "5xx=0.05,slow=0.02,truncate=0.04,slow_s=0.3")
    limited = Simulator(SMALL_WORLD, "--rate", "60", "--abuse-limit", "40")
    try:  # both crawls at once: they mostly wait (on the rate, on cool-downs)
        procs = [subprocess.Popen(crawl_args(faulty.url, work / "faulty", key, "--rate", "50",
                                             "--concurrency", "4"), env=ENV, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE),
                 subprocess.Popen(crawl_args(limited.url, work / "limited", key, "--rate", "0",
                                             "--concurrency", "4"), env=ENV, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errors]
    finally:
        faulty.stop()
        limited.stop()
    subprocess.run(PIXELREC + ["simulate", "--dump-truth", str(work / "small"), *SMALL_WORLD],
                   env=ENV, check=True, capture_output=True)
    want_videos, want_events = expected(work / "small", key.read_bytes())
    stats = {}
    for name in ("faulty", "limited"):
        videos, events, rows = read_raw(work / name)
        assert {v["platform_video_id"] for v in videos} == {v["platform_video_id"] for v in want_videos}
        assert events == want_events and rows == len(events)
        stats[name] = json.loads((work / name / "crawl_stats.json").read_text())
    faulty_run = stats["faulty"]["last_run"]
    assert faulty_run["retries"] > 0 and any(k.startswith("http_5") for k in faulty_run["errors"])
    assert any(k.startswith("net_") or k == "broken_body" for k in faulty_run["errors"])
    assert 0 < faulty_run["peak_requests_per_s"] <= 50 + 1
    assert {"http_412", "code_-412"} & set(stats["limited"]["last_run"]["errors"])
    assert stats["limited"]["last_run"]["cooldowns"] > 0


def test_challenge_stops_cleanly_and_says_why(work):
    challenged = Simulator(SMALL_WORLD, "--faults", "challenge=0.02")
    try:
        result = crawl(challenged.url, work / "challenged", work / "key", "--rate", "0",
                       "--concurrency", "2", check=False)
    finally:
        challenged.stop()
    assert result.returncode == 3, result.stderr[-2000:]
    assert "stopped: challenge" in result.stderr and "-352" in result.stderr
    assert "Traceback" not in result.stderr
    stats = json.loads((work / "challenged" / "crawl_stats.json").read_text())
    assert stats["close_reason"].startswith("challenge")
    videos, events, rows = read_raw(work / "challenged")
    assert rows == len(events) and len(videos) < 35  # only whole videos were written


def test_bad_input_is_one_line(work, sim):
    result = crawl("https://example.org", work / "remote", work / "key", "--rate", "0", check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: --rate 0")
    result = crawl(sim.url, work / "inside", work / "inside" / "key", check=False)
    assert result.returncode == 2 and "outside the output folder" in result.stderr


def redis_server_path():
    path = shutil.which("redis-server")
    if path is None:
        subprocess.run(["apt-get", "install", "-y", "redis-server"], capture_output=True, timeout=300)
        path = shutil.which("redis-server")
    return path


def test_two_processes_on_one_redis_equal_one(reference, sim, work):
    server = redis_server_path()
    if server is None:
        pytest.skip("redis-server is not installed and could not be installed with apt-get")
    port = free_port()
    redis = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        args = crawl_args(sim.url, work / "shared", work / "key", "--rate", "0", "--concurrency", "4",
                          "--seed", "1", "--redis-url", f"redis://127.0.0.1:{port}/0")
        procs = [subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outputs]
    finally:
        redis.terminate()
        redis.wait(10)
    journals = sorted((work / "shared" / "state").glob("journal-w*.jsonl"))
    kept = [sum(len(r["kept"]) for r in map(json.loads, j.read_text().splitlines()) if r["t"] == "commit")
            for j in journals]
    assert len(journals) == 2 and sum(kept) == len(read_raw(reference)[0])
    assert_same_raw(work / "shared", reference)
