"""fetch-covers end to end against a real local aiohttp server: statuses, retries, resume,
near-duplicates, covers.parquet; plus the reader, validator and near-duplicate parts alone."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pixelrec_data.covers.fetch import FetchOptions, fetch_release_covers, run, work
from pixelrec_data.covers.fetch.client import HostRateLimiter
from pixelrec_data.covers.fetch.images import process_cover
from pixelrec_data.covers.fetch.neardup import near_duplicate_groups
from pixelrec_data.covers.fetch.reader import normalize_cover_url, read_cover_tasks, shard_tasks
from pixelrec_data.covers.fetch.resize import ResizeSpec
from pixelrec_data.covers.fetch.work import BACKLOG, CoverThreads, store_cover
from schemas.io import read_table, write_table
from schemas.tables import ITEMS
from test_downloader_server import HITS, LocalServer, cover_app, make_image

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--retries", "2", "--backoff", "0.01", "--timeout", "1", "--rate", "0",
        "--allow-private-hosts"]  # the test server is on 127.0.0.1


def write_items(release: Path, urls: dict[str, str | None]) -> None:
    rows = [{"item_id": item_id, "cover_url": url} for item_id, url in urls.items()]
    write_table(pa.Table.from_pylist(rows, schema=ITEMS), release / "items.parquet", "items")


def pixelrec(*args):
    code = "import sys; from pixelrec_data.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def covers_by_id(release: Path) -> dict[str, dict]:
    return {row["item_id"]: row for row in read_table(release / "covers.parquet", "covers").to_pylist()}


# --- parts alone ------------------------------------------------------------------------------
def test_normalize_cover_url():
    h = "//i0.hdslb.com/bfs/archive/" + "a" * 40 + ".jpg"
    assert normalize_cover_url(h + "@160w_100h_1c.webp") == "https:" + h
    assert normalize_cover_url("http:" + h) == "https:" + h  # the CDN is https
    assert normalize_cover_url("http://127.0.0.1:8/img/x.png@1e_1c.jpg") == "http://127.0.0.1:8/img/x.png"
    assert normalize_cover_url("http://u@host/a.jpg") == "http://u@host/a.jpg"
    assert normalize_cover_url("ftp://host/a.jpg") is None
    assert normalize_cover_url("  ") is None and normalize_cover_url(None) is None


def test_reader_orders_shards_and_refuses_unsafe_ids(tmp_path):
    write_items(tmp_path, {f"i{n}": f"http://h/{n}.jpg" for n in (5, 1, 9, 3, 7)})
    shards = shard_tasks(read_cover_tasks(tmp_path), 2)
    assert [[t.item_id for t in s.tasks] for s in shards] == [["i5", "i1"], ["i9", "i3"], ["i7"]]
    assert shards[0].digest != shards[1].digest and shards[2].name == "shard-00002"
    write_items(tmp_path, {"i1": "http://h/1.jpg", "../../etc/x": "http://h/2.jpg"})
    with pytest.raises(Exception, match="not of the form i<digits>"):
        read_cover_tasks(tmp_path)


def test_validator_keeps_jpeg_reencodes_png_and_flags_bad_bytes():
    jpeg, png = make_image(1), make_image(2, fmt="PNG", mode="RGBA")
    kept = process_cover(jpeg)
    assert kept.status == "ok" and kept.data == jpeg
    assert kept.sha256 == hashlib.sha256(jpeg).hexdigest() and (kept.width, kept.height) == (48, 32)
    converted = process_cover(png)
    assert converted.status == "ok" and Image.open(io.BytesIO(converted.data)).format == "JPEG"
    assert process_cover(b"<html>blocked</html>").status == "not_image"
    assert process_cover(jpeg[: len(jpeg) // 2]).status == "truncated"


def test_near_duplicate_groups_agree_with_brute_force():
    rng = np.random.default_rng(0)
    base = [int(v) for v in rng.integers(0, 2**63, size=60, dtype=np.uint64)]
    values = list(base)
    for b in base[:20]:  # near copies, and chains (each copy 2 bits from the one before)
        bits = rng.choice(64, size=4, replace=False)
        values += [b ^ (1 << int(bits[0])) ^ (1 << int(bits[1])),
                   b ^ (1 << int(bits[0])) ^ (1 << int(bits[1])) ^ (1 << int(bits[2])) ^ (1 << int(bits[3]))]
    values += [base[5], base[5]]  # exact duplicates
    hashes = [f"{v:016x}" for v in values]
    items = [f"i{n}" for n in range(len(hashes))]
    position = {item: n for n, item in enumerate(items)}

    def distance(a, b):
        return bin(values[a] ^ values[b]).count("1")

    groups = near_duplicate_groups(items, hashes, 4)
    grouped = [position[i] for g in groups for i in g["items"]]
    assert len(grouped) == len(set(grouped)) and len(groups) >= 20
    for g in groups:
        members = [position[i] for i in g["items"]]
        assert members == sorted(members)
        assert max(distance(members[0], m) for m in members) == g["max_distance"] <= 4
    loose = sorted(set(range(len(values))) - set(grouped))
    assert all(distance(a, b) > 4 for a in loose for b in loose if a < b)  # nothing left to group
    assert set(members_of(groups, position, "i5")) == {5, 70, 71, 100, 101}  # copies and duplicates


def members_of(groups, position, item):
    return next([position[i] for i in g["items"]] for g in groups if item in g["items"])


def test_rate_limiter_spaces_requests_per_host():
    async def five(limiter, host):
        start = time.perf_counter()
        await asyncio.gather(*(limiter.wait(host) for _ in range(5)))
        return time.perf_counter() - start

    assert asyncio.run(five(HostRateLimiter(20.0), "example.org")) >= 0.19
    assert asyncio.run(five(HostRateLimiter(None), "127.0.0.1")) < 0.1  # loopback: no default limit
    assert HostRateLimiter(None).interval("i0.hdslb.com") > 0

    async def after_cool_down():
        limiter = HostRateLimiter(0)
        limiter.cool_down("h", 0.2)
        return await five(limiter, "h")

    assert asyncio.run(after_cool_down()) >= 0.19  # a 429/412 pauses the host even with no rate


# --- end to end -------------------------------------------------------------------------------
@pytest.fixture
def served():
    images = {f"{n}.jpg": make_image(n) for n in range(10)}
    images["png.png"] = make_image(20, fmt="PNG")
    images["twin.png"] = make_image(3, fmt="PNG", shift=3)  # near-duplicate of 3.jpg
    app = cover_app(images, fail_first=2, slow_s=4.0)
    with LocalServer(app) as server:
        yield server, app[HITS], images


def release_with_every_case(tmp_path: Path, url: str) -> Path:
    release = tmp_path / "rel"
    release.mkdir()
    write_items(release, {
        "i0": f"{url}/img/0.jpg", "i1": f"{url}/img/1.jpg@160w_100h.webp", "i2": f"{url}/img/png.png",
        "i3": f"{url}/img/3.jpg", "i4": f"{url}/img/twin.png", "i5": f"{url}/missing/5.jpg",
        "i6": f"{url}/flaky/6.jpg", "i7": f"{url}/slow/7.jpg", "i8": f"{url}/truncated/8.jpg",
        "i9": f"{url}/truncated-once/9.jpg", "i10": f"{url}/corrupt/10.jpg", "i11": None,
        "i12": f"{url}/busy/2.jpg",
    })
    return release


def test_fetch_covers_statuses_retries_and_near_duplicates(tmp_path, served):
    server, hits, images = served
    release = release_with_every_case(tmp_path, server.url)
    proc = pixelrec("fetch-covers", "--release", release, "--shard-size", "5", *FAST)
    assert proc.returncode == 0, proc.stderr
    rows = covers_by_id(release)
    assert {k: r["status"] for k, r in rows.items()} == {
        "i0": "ok", "i1": "ok", "i2": "ok", "i3": "ok", "i4": "ok", "i5": "http_404", "i6": "ok",
        "i7": "timeout", "i8": "truncated", "i9": "ok", "i10": "not_image", "i11": "bad_url",
        "i12": "ok"}
    assert {k: r["attempts"] for k, r in rows.items()} == {
        "i0": 1, "i1": 1, "i2": 1, "i3": 1, "i4": 1, "i5": 1, "i6": 3, "i7": 3, "i8": 3, "i9": 2,
        "i10": 1, "i11": 0, "i12": 2}
    assert list(rows) == [f"i{n}" for n in range(13)]  # item order
    assert hits["/busy/2.jpg"] == 2  # 429 honoured, then fetched
    assert hits["/img/1.jpg"] == 1  # the '@' resize suffix was stripped
    assert hits["/missing/5.jpg"] == 1  # no retry on 404
    assert hits["/flaky/6.jpg"] == 3 and hits["/truncated-once/9.jpg"] == 2  # retries recovered
    assert hits["/slow/7.jpg"] == 3 and hits["/truncated/8.jpg"] >= 3  # retried, then given up
    for item_id, row in rows.items():
        path = release / "covers" / f"{item_id}.jpg"
        assert path.exists() == (row["status"] == "ok")
        if row["status"] == "ok":
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["bytes"]
            assert Image.open(io.BytesIO(data)).format == "JPEG"
        else:
            assert row["error"]
    assert (release / "covers/i0.jpg").read_bytes() == images["0.jpg"]  # JPEG kept byte for byte
    summary = json.loads((release / "covers/_stats/summary.json").read_text())
    assert {"i3", "i4"} in [set(g["items"]) for g in summary["near_duplicates"]["groups"]]
    shards = sorted((release / "covers/_stats").glob("shard-*.json"))
    assert [p.name for p in shards] == ["shard-00000.json", "shard-00001.json", "shard-00002.json"]
    first = json.loads(shards[0].read_text())
    assert first["items"] == 5 and first["ok"] == 5 and first["fetched"] == 5
    assert "near-duplicate group" in proc.stdout and "Traceback" not in proc.stderr


def test_rerun_skips_done_work_and_refetches_only_what_needs_it(tmp_path, served):
    server, hits, images = served
    release = release_with_every_case(tmp_path, server.url)
    options = FetchOptions(rate=0, retries=2, backoff=0.01, timeout=1.0, shard_size=5,
                           allow_private_hosts=True)
    fetch_release_covers(release, options)  # in-process: the CLI itself is tested above
    first_table = (release / "covers.parquet").read_bytes()
    before = dict(hits)
    (release / "covers/i0.jpg").unlink()  # lost file
    (release / "covers/i2.jpg").write_bytes(b"tampered")  # changed file
    (release / "covers/_stats/shard-00001.json").unlink()  # shard cut short by a kill
    fetch_release_covers(release, options)
    new = {path: n - before.get(path, 0) for path, n in hits.items() if n != before.get(path, 0)}
    # i0, i2 re-fetched; the timeout (i7) and truncated (i8) retried; in the killed shard (i5..i9)
    # stored covers are re-read from disk and only the 404 (its row was lost) is asked again;
    # the not_image i10 stays final.
    assert set(new) == {"/img/0.jpg", "/img/png.png", "/slow/7.jpg", "/truncated/8.jpg",
                        "/missing/5.jpg"}
    # same result (deterministic), but the re-validated covers of the killed shard (i6, i9) lost
    # the attempt counts of the run that fetched them
    table = read_table(release / "covers.parquet", "covers")
    assert table.drop(["attempts"]).equals(pq.read_table(io.BytesIO(first_table)).drop(["attempts"]))
    assert [table["attempts"][n].as_py() for n in (6, 9)] == [None, None]
    assert hashlib.sha256((release / "covers/i2.jpg").read_bytes()).hexdigest() == \
        covers_by_id(release)["i2"]["sha256"]
    before = dict(hits)  # a third run: only the transient failures are tried again
    summary = (release / "covers/_stats/summary.json").read_bytes()
    assert fetch_release_covers(release, options)["fetched_this_run"] == 2
    assert (release / "covers/_stats/summary.json").read_bytes() == summary
    assert {p for p, n in hits.items() if n != before.get(p, 0)} == {"/slow/7.jpg", "/truncated/8.jpg"}


def test_bad_item_id_is_one_line_exit_2(tmp_path):
    write_items(tmp_path, {"i1": "http://127.0.0.1:9/a.jpg", "i2/../../x": "http://127.0.0.1:9/b.jpg"})
    proc = pixelrec("fetch-covers", "--release", tmp_path, *FAST)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "i<digits>" in proc.stderr
    assert not (tmp_path / "covers.parquet").exists()


def test_numpy_is_loaded_with_one_blas_thread(tmp_path):
    """The covers are spread over fetch-covers' own threads: OpenBLAS's would only busy-wait
    beside them. Its thread count is read when numpy is loaded: the command must set it first."""
    write_items(tmp_path, {"i1": "http://127.0.0.1:9/a.jpg"})
    code = ("import importlib.abc, os, sys\n"
            "class Spy(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'numpy':\n"
            "            sys.stderr.write('numpy with %s\\n' % os.environ.get('OPENBLAS_NUM_THREADS'))\n"
            "            sys.meta_path.remove(self)\n"
            "sys.meta_path.insert(0, Spy())\n"
            "from pixelrec_data.cli import main; main(sys.argv[1:])")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", code, "fetch-covers", "--release", str(tmp_path),
                           "--retries", "0", "--timeout", "1", "--rate", "0", "--allow-private-hosts"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "numpy with 1\n" in proc.stderr, proc.stderr[-2000:]


def test_parts_split_the_shards_and_a_final_run_joins_them(tmp_path, served):
    server, hits, _ = served
    release = tmp_path / "rel"
    release.mkdir()
    write_items(release, {f"i{n}": f"{server.url}/img/{n}.jpg" for n in range(7)})
    options = dict(rate=0, retries=0, timeout=5.0, shard_size=2, allow_private_hosts=True)
    first = fetch_release_covers(release, FetchOptions(**options, shard=(0, 2)))
    proc = pixelrec("fetch-covers", "--release", release, "--shard-size", 2, "--shard", "1/2",
                    "--rate", 0, "--retries", 0, "--allow-private-hosts")
    assert proc.returncode == 0, proc.stderr
    second = json.loads(max((release / "covers/_stats").glob("shard-*.json")).read_text())
    assert first["items"] == 4 and first["shards"] == 2  # shards 0, 2 and shards 1, 3 (i6)
    assert second["shard"] == 3 and second["items"] == 1 and "shard done" in proc.stdout
    assert not (release / "covers.parquet").exists()
    before = sum(hits.values())
    final = fetch_release_covers(release, FetchOptions(**options))
    assert final["fetched_this_run"] == 0 and sum(hits.values()) == before
    assert [r["status"] for r in covers_by_id(release).values()] == ["ok"] * 7
    proc = pixelrec("fetch-covers", "--release", release, "--shard", "2/2")
    assert proc.returncode == 2 and "--shard" in proc.stderr
    proc = pixelrec("fetch-covers", "--release", release, "--part", "1/2", "--allow-private-hosts")  # the old name works
    assert proc.returncode == 0 and "--part" not in pixelrec("fetch-covers", "--help").stdout


def test_cover_threads_leave_one_core_to_the_event_loop_when_it_lends_a_hand():
    cores = (1, 2, 3, 4, 16)
    assert [CoverThreads(n, 2 * BACKLOG).threads for n in cores] == [1, 1, 2, 3, 3]
    assert [CoverThreads(n, 2 * BACKLOG - 1).threads for n in cores] == [2, 2, 3, 4, 4]


@pytest.mark.parametrize("concurrency", [2 * BACKLOG, 2 * BACKLOG - 1])
def test_the_loop_takes_a_cover_itself_only_when_the_pool_is_backed_up(concurrency):
    async def where_each_runs():
        loop_thread, gate = threading.current_thread(), threading.Event()

        def held():
            gate.wait(30)
            return threading.current_thread()

        with CoverThreads(cores=2, concurrency=concurrency) as threads:
            queued = [asyncio.ensure_future(threads.run(held))
                      for _ in range(threads.threads + BACKLOG)]
            await asyncio.sleep(0)  # each is handed to the pool now
            backed_up = asyncio.ensure_future(threads.run(threading.current_thread))
            not_inline = asyncio.ensure_future(threads.run(threading.current_thread, inline=False))
            await asyncio.sleep(0.1)
            gate.set()
            pooled = await asyncio.gather(*queued, not_inline)
            after = await threads.run(threading.current_thread)
        return loop_thread, await backed_up, pooled, after

    loop_thread, backed_up, pooled, after = asyncio.run(where_each_runs())
    # too few requests in flight to keep a backlog: the loop's thread never decodes
    assert (backed_up is loop_thread) == (concurrency >= 2 * BACKLOG)
    assert loop_thread not in pooled and after is not loop_thread


def test_covers_decoded_on_the_loop_thread_are_stored_alike(tmp_path, served, monkeypatch):
    """With no backlog allowed the loop's thread takes every cover the pool has no thread for;
    with an endless one it takes none: the same files and rows either way."""
    server, _, _ = served

    def fetched(folder: Path, backlog: int):
        on_loop = []

        def spied(*args):
            on_loop.append(threading.current_thread() is threading.main_thread())
            if backlog == 0 and not on_loop[-1]:
                time.sleep(0.5)  # a pool thread is busy a while: the covers pile up behind it
            return store_cover(*args)

        monkeypatch.setattr(work, "BACKLOG", backlog)
        monkeypatch.setattr(run, "store_cover", spied)
        folder.mkdir()
        write_items(folder, {f"i{n}": f"{server.url}/img/{n}.jpg" for n in range(7)})
        options = FetchOptions(rate=0, retries=0, timeout=5.0, concurrency=8,
                               allow_private_hosts=True, resize=ResizeSpec(32))
        assert fetch_release_covers(folder, options)["ok"] == 7
        files = {p.name: p.read_bytes() for p in sorted((folder / "covers").glob("*.jpg"))}
        return on_loop, files, covers_by_id(folder)

    on_loop, files, rows = fetched(tmp_path / "inline", 0)
    assert any(on_loop) and len(on_loop) == 7
    on_loop, *stored = fetched(tmp_path / "pooled", 10_000)
    assert not any(on_loop) and len(on_loop) == 7
    assert stored == [files, rows] and len(files) == 7
