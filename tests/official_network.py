"""Host names of the real internet served from 127.0.0.1, for tests that run the real client.

`NamedHosts` runs aiohttp apps over TLS on free loopback ports, each under a real host name
(drive.google.com, ...), with certificates from a throw-away certificate authority (trustme), and a
CONNECT proxy on 127.0.0.1 that tunnels a name it serves to its port and refuses every other name
without resolving it. A client reaches them as it would reach the internet through a proxy:
HTTPS_PROXY names the proxy and REQUESTS_CA_BUNDLE the test authority (`client_env()`), so the
code under test runs unchanged.

`refuse_non_loopback()` makes name resolution in this process fail for anything but loopback, so a
client that ignored the proxy would fail loudly instead of reaching the real host; `guard_dir()`
writes a sitecustomize.py doing the same in child processes.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import trustme
from aiohttp import web

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                   "SSL_CERT_FILE")


class NamedHosts:
    """apps: {host name: aiohttp app}; use as a context manager; `ca_file`, `proxy_url`."""

    def __init__(self, apps: dict[str, web.Application], folder: Path):
        self.apps = apps
        self.ca = trustme.CA()
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = folder / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.ports: dict[str, int] = {}
        self.refused: list[str] = []      # names the proxy was asked for and would not serve
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[web.AppRunner] = []
        self.proxy_port = 0

    def __enter__(self) -> "NamedHosts":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=20)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def client_env(self) -> dict[str, str]:
        """What a client needs in its environment to reach these hosts (and only these)."""
        return {"HTTPS_PROXY": self.proxy_url, "HTTP_PROXY": self.proxy_url,
                "NO_PROXY": "", "REQUESTS_CA_BUNDLE": str(self.ca_file)}

    async def _start(self) -> None:
        for name, app in self.apps.items():
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(name).configure_cert(context)
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            self.runners.append(runner)
            self.ports[name] = site._server.sockets[0].getsockname()[1]
        self.proxy = await asyncio.start_server(self._tunnel, "127.0.0.1", 0)
        self.proxy_port = self.proxy.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self.proxy.close()
        for runner in self.runners:
            await runner.cleanup()
        others = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _tunnel(self, reader, writer) -> None:
        """One CONNECT: a served name:443 is joined to its local port; anything else is refused."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        words = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        host, _, port = (words[1] if len(words) == 3 and words[0] == "CONNECT" else "").rpartition(":")
        if port != "443" or host not in self.ports:
            self.refused.append(" ".join(words[:2]))
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.ports[host])
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer),
                             return_exceptions=True)


async def _pipe(reader, writer) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def _is_loopback(host) -> bool:
    if host is None or host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_non_loopback(monkeypatch) -> None:
    """Name resolution in this process answers loopback names only (for the test's duration)."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not _is_loopback(name):
            raise socket.gaierror(f"loopback-only test: refusing to resolve {name!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


GUARD_SOURCE = '''\
import ipaddress, socket
_real = socket.getaddrinfo
def _guarded(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    try:
        ok = name is None or name == "localhost" or ipaddress.ip_address(str(name).strip("[]")).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise socket.gaierror("loopback-only test: refusing to resolve %r" % (name,))
    return _real(host, *args, **kwargs)
socket.getaddrinfo = _guarded
'''


def guard_dir(folder: Path) -> Path:
    """A folder holding a sitecustomize.py that refuses non-loopback names in a child process
    (put it first on the child's PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(GUARD_SOURCE)
    return folder
