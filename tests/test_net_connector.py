"""The guarded HTTP core checks the address of a connection before any byte of a request is sent
(net.guarded.GuardedConnector), for the cover fetcher's sessions (nothing trusted) and the mirror
client's (its own origin trusted, nothing else): a loopback service a request is aimed at hears
nothing, unless private addresses are allowed (then it hears the request: the probe works)."""
from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from blind_listener import BlindListener
from pixelrec_data.net.addresses import refused_address
from pixelrec_data.net.guarded import follow, open_session
from pixelrec_data.net.options import NetOptions
from test_downloader_server import LocalServer

NAME = "service.test"  # never resolves in real DNS: made to resolve to 127.0.0.1 here


@pytest.fixture
def loopback_name(monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real("127.0.0.1" if host == NAME else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def get(url: str, options: NetOptions, trusted: str | None = None):
    """(status, None) or (None, the refusal) of one guarded GET."""
    async with open_session(options, trusted=(trusted,) if trusted else ()) as session:
        try:
            async with await follow(session, url, options, trusted=trusted) as resp:
                return resp.status, None
        except aiohttp.ClientError as exc:
            return None, refused_address(exc)


def test_a_name_that_resolves_to_loopback_hears_nothing(loopback_name):
    options = NetOptions(timeout=3, retries=0)
    with BlindListener() as service:
        status, refusal = asyncio.run(get(f"http://{NAME}:{service.port}/a.jpg", options))
    assert status is None and refusal is not None and "loopback" in str(refusal)
    assert (service.connections, service.received) == (0, b"")


def test_a_trusted_origin_is_reached_and_its_name_on_another_port_is_not(loopback_name):
    async def index(request):
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_get("/index.json", index)
    options = NetOptions(timeout=3, retries=0, allow_cross_host_redirects=True)
    with LocalServer(app) as mirror, BlindListener() as service:
        home = f"http://{NAME}:{mirror.port}/"
        assert asyncio.run(get(home + "index.json", options, trusted=home)) == (200, None)
        status, refusal = asyncio.run(get(f"http://{NAME}:{service.port}/x", options,
                                          trusted=home))
    assert status is None and f"{NAME} is a loopback address" in str(refusal)
    assert (service.connections, service.received) == (0, b"")


def test_with_private_hosts_allowed_the_service_hears_the_request(loopback_name):
    options = NetOptions(timeout=1, retries=0, allow_private_hosts=True)
    with BlindListener() as service:
        with pytest.raises(asyncio.TimeoutError):  # it never answers
            asyncio.run(asyncio.wait_for(get(f"http://{NAME}:{service.port}/x", options), 1))
    assert service.connections == 1 and service.received.startswith(b"GET /x HTTP/1.1")
