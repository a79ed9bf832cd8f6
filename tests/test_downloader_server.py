"""A real aiohttp server on 127.0.0.1 in a background thread, shared by the downloader and mirror
tests, and the cover-server app that misbehaves on purpose (404, 500-then-OK, 429, slow, stalled,
truncated, not an image, broken pixels, a decompression bomb, 50 MB bodies, redirect loops). The
tests in this file check the server itself."""
from __future__ import annotations

import asyncio
import functools
import io
import socket
import struct
import threading
import time
import zlib
import urllib.error
import urllib.request
from collections import Counter

import numpy as np
import pytest
from aiohttp import web
from PIL import Image


class LocalServer:
    """Runs an aiohttp app on 127.0.0.1:<free port> in a thread; use as a context manager."""

    def __init__(self, app: web.Application):
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def __enter__(self) -> "LocalServer":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self.runner.cleanup()
        # handlers still sleeping (slow routes) would be destroyed pending: end them here
        others = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def make_image(seed: int, size=(48, 32), fmt="JPEG", shift: int = 0, mode="RGB") -> bytes:
    """A distinct test picture per seed (smooth blobs, so perceptual hashes differ by seed);
    `shift` brightens it slightly, giving a near-duplicate of the same seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(small, "RGB").resize(size, Image.BICUBIC)
    if shift:
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + shift, 0, 255)
                                .astype(np.uint8), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


HITS = web.AppKey("hits", Counter)
HIT_TIMES = web.AppKey("hit_times", dict)  # path -> [time.monotonic() of each request]
SENT = web.AppKey("sent", Counter)
IN_FLIGHT = web.AppKey("in_flight", dict)  # requests being answered by /slow/: now and max  # path -> body bytes the server managed to write
HUGE_BYTES = 50 * 1024 * 1024
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Access denied</title></head><body>no</body></html>"


def bomb_jpeg(width: int = 60000, height: int = 60000) -> bytes:
    """A small, valid JPEG whose frame header (SOF0) declares width x height pixels."""
    data = bytearray(make_image(7, size=(16, 16)))
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def broken_png() -> bytes:
    """A PNG whose header is fine but whose pixel data (IDAT) is garbage: 'corrupt'."""
    data = bytearray(make_image(8, fmt="PNG"))
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8:start - 4])[0]
    garbage = bytes((n * 37) & 0xFF for n in range(length))
    data[start:start + length] = garbage
    crc = zlib.crc32(b"IDAT" + garbage)  # a valid checksum: only the compressed stream is bad
    data[start + length:start + length + 4] = struct.pack(">I", crc)
    return bytes(data)


def cover_app(images: dict[str, bytes], *, fail_first: int = 2, slow_s: float = 3.0):
    """Routes: /img/<name> serves images[name]; /missing/<x> 404; /flaky/<name> 500 for the first
    `fail_first` requests then the image; /slow/<name> waits slow_s; /truncated/<name> always cuts
    the body short; /truncated-once/<name> cuts it short once; /corrupt/<x> 200 with non-image
    bytes; /busy/<name> answers 429 (Retry-After 0.2) once. app[HITS] counts requests per path."""
    hits: Counter = Counter()
    hit_times: dict[str, list[float]] = {}
    sent: Counter = Counter()

    async def count(request):
        hits[request.path] += 1
        hit_times.setdefault(request.path, []).append(time.monotonic())
        return hits[request.path]

    async def img(request):
        await count(request)
        name = request.match_info["name"]
        if name not in images:
            raise web.HTTPNotFound()
        return web.Response(body=images[name], content_type="image/jpeg")

    async def missing(request):
        await count(request)
        raise web.HTTPNotFound()

    async def flaky(request):
        if await count(request) <= fail_first:
            raise web.HTTPInternalServerError()
        return web.Response(body=images[request.match_info["name"]], content_type="image/jpeg")

    async def busy(request):
        if await count(request) == 1:
            raise web.HTTPTooManyRequests(headers={"Retry-After": "0.2"})
        return web.Response(body=images[request.match_info["name"]], content_type="image/jpeg")

    in_flight = {"now": 0, "max": 0}

    async def slow(request):
        await count(request)
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        try:
            await asyncio.sleep(slow_s)
        finally:
            in_flight["now"] -= 1
        return web.Response(body=images[request.match_info["name"]], content_type="image/jpeg")

    async def truncated(request, always=True):
        n = await count(request)
        body = images[request.match_info["name"]]
        if not always and n > 1:
            return web.Response(body=body, content_type="image/jpeg")
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        request.transport.close()  # the connection drops mid-body
        return resp

    async def truncated_once(request):
        return await truncated(request, always=False)

    async def corrupt(request):
        await count(request)
        return web.Response(body=b"\xff\xd8\xff\xe0 this is not really a jpeg" * 20,
                            content_type="image/jpeg")

    async def busy_long(request):  # 429 with Retry-After: 1 once (the client must wait 1 s)
        if await count(request) == 1:
            raise web.HTTPTooManyRequests(headers={"Retry-After": "1"})
        return web.Response(body=images[request.match_info["name"]], content_type="image/jpeg")

    async def stall(request):  # headers and half the body, then nothing
        await count(request)
        body = images[request.match_info["name"]]
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        await asyncio.sleep(slow_s)
        return resp

    async def html(request):  # an HTML error page served as a JPEG
        await count(request)
        return web.Response(body=HTML_PAGE, content_type="image/jpeg")

    async def fixed(request, body: bytes):
        await count(request)
        return web.Response(body=body, content_type="image/jpeg")

    async def huge(request, declared: bool):  # a 50 MB body, with or without Content-Length
        await count(request)
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        if declared:
            resp.content_length = HUGE_BYTES
        # a small send buffer, so what the server has written is close to what the client took
        request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                              1 << 16)
        await resp.prepare(request)
        chunk = b"\0" * (1 << 20)
        try:
            for _ in range(HUGE_BYTES // len(chunk)):
                await resp.write(chunk)
                sent[request.path] += len(chunk)
        except (ConnectionError, RuntimeError):  # the client hung up: stop writing
            pass
        return resp

    async def loop(request):  # redirects to itself, forever
        await count(request)
        raise web.HTTPFound(request.path)

    async def to_file(request):
        await count(request)
        raise web.HTTPFound("file:///etc/passwd")

    bomb, broken = bomb_jpeg(), broken_png()
    app = web.Application()
    app.router.add_get("/busy-long/{name}", busy_long)
    app.router.add_get("/stall/{name}", stall)
    app.router.add_get("/html/{name}", html)
    app.router.add_get("/bomb/{name}", functools.partial(fixed, body=bomb))
    app.router.add_get("/broken/{name}", functools.partial(fixed, body=broken))
    app.router.add_get("/huge/{name}", functools.partial(huge, declared=False))
    app.router.add_get("/huge-declared/{name}", functools.partial(huge, declared=True))
    app.router.add_get("/loop/{name}", loop)
    app.router.add_get("/to-file/{name}", to_file)
    app.router.add_get("/img/{name}", img)
    app.router.add_get("/missing/{name}", missing)
    app.router.add_get("/flaky/{name}", flaky)
    app.router.add_get("/slow/{name}", slow)
    app.router.add_get("/busy/{name}", busy)
    app.router.add_get("/truncated/{name}", truncated)
    app.router.add_get("/truncated-once/{name}", truncated_once)
    app.router.add_get("/corrupt/{name}", corrupt)
    app[HITS] = hits
    app[HIT_TIMES] = hit_times
    app[SENT] = sent
    app[IN_FLIGHT] = in_flight
    return app


def test_local_server_serves_and_stops():
    images = {"a.jpg": make_image(1)}
    with LocalServer(cover_app(images)) as server:
        with urllib.request.urlopen(f"{server.url}/img/a.jpg", timeout=5) as resp:
            assert resp.read() == images["a.jpg"]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{server.url}/missing/x", timeout=5)
        assert err.value.code == 404
        url = server.url
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/img/a.jpg", timeout=2)


def test_test_images_differ_by_seed_and_decode():
    a, b = make_image(1), make_image(2)
    assert a != b
    assert Image.open(io.BytesIO(make_image(3, fmt="PNG"))).format == "PNG"
