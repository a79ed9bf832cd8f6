"""A real aiohttp server on 127.0.0.1 in a background thread, shared by the downloader and mirror
tests, and the cover-server app that misbehaves on purpose (404, 500-then-OK, slow, truncated,
corrupt). The tests in this file check the server itself."""
from __future__ import annotations

import asyncio
import io
import threading
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


def cover_app(images: dict[str, bytes], *, fail_first: int = 2, slow_s: float = 3.0):
    """Routes: /img/<name> serves images[name]; /missing/<x> 404; /flaky/<name> 500 for the first
    `fail_first` requests then the image; /slow/<name> waits slow_s; /truncated/<name> always cuts
    the body short; /truncated-once/<name> cuts it short once; /corrupt/<x> 200 with non-image
    bytes; /busy/<name> answers 429 (Retry-After 0.2) once. app[HITS] counts requests per path."""
    hits: Counter = Counter()

    async def count(request):
        hits[request.path] += 1
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

    async def slow(request):
        await count(request)
        await asyncio.sleep(slow_s)
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

    app = web.Application()
    app.router.add_get("/img/{name}", img)
    app.router.add_get("/missing/{name}", missing)
    app.router.add_get("/flaky/{name}", flaky)
    app.router.add_get("/slow/{name}", slow)
    app.router.add_get("/busy/{name}", busy)
    app.router.add_get("/truncated/{name}", truncated)
    app.router.add_get("/truncated-once/{name}", truncated_once)
    app.router.add_get("/corrupt/{name}", corrupt)
    app[HITS] = hits
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
