"""`pixelrec simulate`: ground-truth dump round trip, foreground serving, clean shutdown, bad input."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from pixelrec_data.simulator import start_simulator
from pixelrec_data.synthetic import generate_world
from schemas.io import read_table
from schemas.tables import RAW_VIDEOS
from test_simulator_world import get_json

PIXELREC = [sys.executable, "-m", "pixelrec_data.cli"]
ENV = {**os.environ, "PIXELREC_QUIET": "1"}


def run(*args, timeout=120):
    return subprocess.run([*PIXELREC, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def test_dump_truth_round_trip(tmp_path):
    args = ["--seed", "7", "--users", "300", "--videos", "90"]
    done = run("simulate", "--dump-truth", str(tmp_path / "truth"), *args)
    assert done.returncode == 0, done.stderr
    videos = read_table(tmp_path / "truth" / "videos.parquet", "raw_videos")
    events = pq.read_table(tmp_path / "truth" / "events.parquet")
    status = pq.read_table(tmp_path / "truth" / "status.parquet")
    assert videos.schema.names == RAW_VIDEOS.names and videos.num_rows == 90
    assert events.schema.names == ["platform_video_id", "mid", "mid_hash", "timestamp", "source"]
    assert set(videos.column("crawled_at").to_pylist()) == {0}
    assert max(videos.column("duration_s").to_pylist()) >= 600  # long videos are in the truth too
    assert not [f for f in os.listdir(tmp_path / "truth") if f.startswith(".")]  # no temp files left
    # what the server answers for the same seed and sizes is what the dump says
    world = generate_world(seed=7, users=300, videos=90)
    assert events.equals(world.events.select(events.schema.names))
    url, stop = start_simulator(seed=7, world=world)
    try:
        removed = dict(zip(status.column("platform_video_id").to_pylist(), status.column("removed").to_pylist()))
        for row in videos.to_pylist():
            body = get_json(f"{url}/x/web-interface/view?bvid={row['platform_video_id']}")[1]
            if removed[row["platform_video_id"]]:
                assert body["code"] in (-404, 62002)
                continue
            data = body["data"]
            assert row["cover_url"] == "http://127.0.0.1/bfs/archive/" + data["pic"].rsplit("/", 1)[1]
            assert (data["aid"], data["title"], data["stat"]["view"], data["duration"]) == (
                row["aid"], row["title"], row["view_number"], row["duration_s"])
    finally:
        stop()


def test_foreground_serves_until_sigterm():
    proc = subprocess.Popen([*PIXELREC, "simulate", "--port", "0", "--seed", "5", "--users", "3000",
                             "--videos", "2000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        start = time.perf_counter()
        line = proc.stdout.readline().strip()
        startup = time.perf_counter() - start
        assert line.startswith("serving http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[-1]
        status, body = get_json(f"{url}/x/web-interface/dynamic/region?rid=0&ps=1&pn=1")
        assert status == 200 and body["data"]["page"]["count"] == 2000
        assert startup < 30, startup  # a few seconds on an idle machine
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "stopped (requests 1)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args, message", [
    (["--users", "0"], "--users"),
    (["--faults", "boom=0.1"], "unknown fault"),
    (["--rate", "-1"], "--rate"),
    (["--knob", "nope=1", "--users", "10", "--videos", "5"], "unknown world knob"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    done = run("simulate", "--port", "0", *args, timeout=60)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "pixelrec_data.simulator", "--help"], capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert done.returncode == 0 and "--dump-truth" in done.stdout
