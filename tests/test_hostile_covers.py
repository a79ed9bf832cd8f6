"""fetch-covers against a hostile cover host (real aiohttp servers on 127.0.0.1): a gzip bomb, a
redirect to an internal port, an oversized body, loopback names, many huge or endless bodies at
once. Each ends as a per-item status, the command stays under 300 MB whatever the bodies' sizes and
the concurrency, writes nothing outside the release folder, and stores none of the internal
service's bytes."""
from __future__ import annotations

import asyncio
import zlib

import pytest
from aiohttp import web

from hostile_helpers import SECRET, assert_no_secret, assert_small, outside, run_measured
from pixelrec_data.net.addresses import AddressRefused, host_refusal, public_only_resolver, url_refusal
from test_downloader import covers_by_id, write_items
from test_downloader_server import LocalServer, make_image

BOMB_UNPACKED = 300 << 20  # 300 MB of zeros, about 300 KB gzipped
MB = 1 << 20


def gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    zeros = bytes(MB)
    return b"".join([*(packer.compress(zeros) for _ in range(BOMB_UNPACKED // MB)), packer.flush()])


def internal_app(hits: list):
    async def secret(request):
        hits.append(request.path)
        return web.Response(body=SECRET * 4, content_type="image/jpeg")
    app = web.Application()
    app.router.add_get("/{tail:.*}", secret)
    return app


def hostile_app(internal_url: str, bomb: bytes):
    async def bomb_route(request):
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip",
                                                "Content-Type": "image/jpeg"})

    async def to_internal(request):
        raise web.HTTPFound(f"{internal_url}/admin/token.jpg")

    async def oversized(request):  # 50 MB, no Content-Length
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await resp.prepare(request)
        try:
            for _ in range(50):
                await resp.write(bytes(MB))
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def good(request):
        return web.Response(body=make_image(1), content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/bomb.jpg", bomb_route)
    app.router.add_get("/redirect.jpg", to_internal)
    app.router.add_get("/oversized.jpg", oversized)
    app.router.add_get("/good.jpg", good)
    return app


@pytest.fixture(scope="module")
def servers():
    hits: list = []
    with LocalServer(internal_app(hits)) as internal:
        with LocalServer(hostile_app(internal.url, gzip_bomb())) as hostile:
            yield hostile, internal, hits


def hostile_release(tmp_path, hostile, internal):
    release = tmp_path / "rel"
    release.mkdir()
    h = hostile.url
    write_items(release, {
        "i0": f"{h}/good.jpg", "i1": f"{h}/bomb.jpg", "i2": f"{h}/redirect.jpg",
        "i3": f"{h}/oversized.jpg", "i4": f"{internal.url}/direct.jpg",
        "i5": f"http://localhost:{internal.port}/name.jpg",
        "i6": f"http://[::ffff:127.0.0.1]:{internal.port}/mapped.jpg",
    })
    return release


FAST = ["--retries", "0", "--timeout", "5", "--rate", "0", "--max-bytes", str(4 * MB)]


def test_without_the_switch_no_private_address_is_fetched(tmp_path, servers):
    hostile, internal, hits = servers
    release = hostile_release(tmp_path, hostile, internal)
    before = outside(tmp_path, release)
    result = run_measured("fetch-covers", "--release", release, *FAST)
    assert result.returncode == 0, result.stderr
    statuses = {k: r["status"] for k, r in covers_by_id(release).items()}
    assert set(statuses.values()) == {"blocked_host"}, statuses
    assert hits == []  # the internal service never saw a request
    assert "allow-private-hosts" in covers_by_id(release)["i4"]["error"]
    assert outside(tmp_path, release) == before  # nothing outside the release folder
    assert_small(result)


def test_with_the_switch_every_hostile_answer_is_a_bounded_status(tmp_path, servers):
    hostile, internal, hits = servers
    release = hostile_release(tmp_path, hostile, internal)
    before = outside(tmp_path, release)
    result = run_measured("fetch-covers", "--release", release, *FAST, "--allow-private-hosts")
    assert result.returncode == 0, result.stderr
    rows = covers_by_id(release)
    assert {k: r["status"] for k, r in rows.items()} == {
        "i0": "ok", "i1": "bad_encoding", "i2": "not_image", "i3": "too_large", "i4": "not_image",
        "i5": "not_image", "i6": "not_image"}
    assert_small(result)  # the 300 MB bomb was never unpacked
    # the internal answer was fetched (the user allowed it) but none of its bytes was kept
    assert hits and all(SECRET.decode() not in (r["error"] or "") for r in rows.values())
    assert_no_secret(release)
    assert SECRET.decode() not in result.stdout + result.stderr
    assert outside(tmp_path, release) == before


def test_the_policy_itself():
    for url in ("http://127.0.0.1/x", "http://localhost:8/x", "http://10.1.2.3/", "http://[::1]/",
                "http://169.254.169.254/latest/meta-data", "http://[::ffff:10.0.0.1]/",
                "http://100.64.0.1/", "http://0.0.0.0/", "http://LOCALHOST./"):
        assert url_refusal(url, False) is not None, url
        assert url_refusal(url, True) is None
    assert url_refusal("http://93.184.216.34/a.jpg", False) is None
    assert url_refusal("https://i0.hdslb.com/bfs/a.jpg", False) is None  # a name: checked on resolve
    assert url_refusal("file:///etc/passwd", True) == "not an http(s) URL"
    assert host_refusal("8.8.8.8", False) is None

    async def resolve(name):
        return await public_only_resolver(False).resolve(name, 80)

    with pytest.raises(AddressRefused):  # a name that resolves to loopback only is refused
        asyncio.run(resolve("localhost"))


HUGE = 31 * MB
CONCURRENT = 16  # with the whole bodies in memory: 16 x 31 MB, far over the 300 MB limit


def flood_app(cover: bytes):
    padded = cover + bytes(HUGE - len(cover))  # a real cover, then zeros up to 31 MB

    async def huge(request):
        return web.Response(body=padded, content_type="image/jpeg")

    async def large(request):
        return web.Response(body=padded[:LARGE], content_type="image/jpeg")

    async def endless(request):  # no Content-Length, and no end
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await resp.prepare(request)
        try:
            await resp.write(cover)
            while True:
                await resp.write(bytes(MB))
        except (ConnectionError, RuntimeError):
            pass
        return resp

    app = web.Application()
    app.router.add_get("/huge/{n}.jpg", huge)
    app.router.add_get("/large/{n}.jpg", large)
    app.router.add_get("/endless/{n}.jpg", endless)
    return app


@pytest.fixture(scope="module")
def flood():
    with LocalServer(flood_app(make_image(3, size=(64, 48)))) as server:
        yield server


@pytest.mark.parametrize("kind", ["huge", "endless"])
def test_huge_and_endless_bodies_at_once_stay_out_of_memory(tmp_path, flood, kind):
    release = tmp_path / "rel"
    release.mkdir()
    write_items(release, {f"i{n}": f"{flood.url}/{kind}/{n}.jpg" for n in range(2 * CONCURRENT)})
    result = run_measured("fetch-covers", "--release", release, "--concurrency", CONCURRENT,
                          "--resize", 32, "--allow-private-hosts", "--retries", "0",
                          "--rate", "0", "--timeout", "60", timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    statuses = {row["status"] for row in covers_by_id(release).values()}
    # a padded cover is a cover (its decoder stops at its end); an endless body passes the cap
    assert statuses == ({"ok"} if kind == "huge" else {"too_large"}), statuses
    assert_small(result)
    assert not list(release.rglob(".*.tmp-*"))  # every body's temporary file is gone


LARGE = 12 * MB
SHARD_COVERS = 28  # 28 x 12 MB: a shard of 336 MB, over the limit if it were held whole


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_a_shard_of_large_covers_is_written_a_cover_at_a_time(tmp_path, flood, fmt):
    """Stored as they came (no --resize), 28 covers of 12 MB make one shard of 336 MB, written
    reading a cover (a tar member, or a parquet row group: one such cover) at a time, so the
    command stays under the limit (holding the shard, as before, took 1.9 GB for 12 x 31 MB)."""
    from pixelrec_data.covers import store

    release = tmp_path / "rel"
    release.mkdir()
    write_items(release, {f"i{n}": f"{flood.url}/large/{n}.jpg" for n in range(SHARD_COVERS)})
    result = run_measured("fetch-covers", "--release", release, "--format", fmt, "--concurrency", 4,
                          "--allow-private-hosts", "--retries", "0", "--rate", "0", "--timeout", "60",
                          timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {row["status"] for row in covers_by_id(release).values()} == {"ok"}
    found = store.locate(release, sorted(covers_by_id(release)), fmt)
    assert [len(store.read(cover.location) or b"") for cover in found] == [LARGE] * SHARD_COVERS
    assert_small(result)
