"""fetch-covers against a hostile cover host (real aiohttp servers on 127.0.0.1): a gzip bomb, a
redirect to an internal port, an oversized body, loopback names. Each ends as a per-item status,
the command stays under 300 MB, writes nothing outside the release folder, and stores none of the
internal service's bytes."""
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
