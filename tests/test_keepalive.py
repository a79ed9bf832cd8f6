"""crawler/transport/ (keepalive.py + http11.py), the crawler's HTTP/1.1 handler, against a real scripted server.

The server (asyncio streams in a thread, 127.0.0.1) answers each path with hand-written bytes: every
body framing (Content-Length, chunked with extensions and trailers, read-to-close), bodiless answers,
1xx, truncation, stalls, oversize bodies, broken heads, and a connection that drops a second request.
The handler runs inside a real Scrapy crawl (tests/keepalive_probe.py, one process per case list).
"""
import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pixelrec_data.net.addresses import free_port

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "keepalive_probe.py"


def _answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


class ScriptedServer:
    """Counts connections; answers by path; keeps connections alive unless the path says not."""

    def __init__(self):
        self.port = free_port()
        self.connections = 0
        self.heads: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port))
        ready.set()
        self.loop.run_forever()
        server.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader, writer):
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                method, path = head.split(b" ")[:2]
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                body = await reader.readexactly(length[0]) if length else b""
                served += 1
                if not await self._respond(method, path.decode(), body, served, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def _respond(self, method, path, body, served, writer) -> bool:
        """Write the answer; False: close the connection afterwards."""
        if path.startswith("/dropreused") and served > 1:
            return False  # a server that closed the idle connection just as it was reused
        if path.startswith("/cl/"):
            writer.write(_answer(b"x" * int(path[4:])))
        elif path == "/conn":
            writer.write(_answer(f"{self.connections} {served}".encode()))
        elif path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n")
        elif path == "/close":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            await writer.drain()
            return False
        elif path == "/head":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")  # HEAD: no body
        elif path in ("/204", "/304"):
            writer.write(f"HTTP/1.1 {path[1:]} X\r\n\r\n".encode())
        elif path == "/continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + _answer(b"after 100"))
        elif path == "/truncate":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 50)
            await writer.drain()
            return False
        elif path == "/slow":
            await asyncio.sleep(3)
            writer.write(_answer(b"late"))
        elif path == "/bigchunked":
            chunk = b"%x\r\n" % 1000 + b"z" * 1000 + b"\r\n"
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3 +
                         b"0\r\n\r\n")
        elif path == "/garbage":
            writer.write(b"SOMETHING ELSE\r\n\r\n")
        elif path == "/echo":
            writer.write(_answer(method + b" " + str(len(body)).encode() + b" " + body,
                                 extra="X-Multi: a\r\nX-Multi: b\r\n"))
        else:
            writer.write(_answer(b"missing", "404 Not Found"))
        await writer.drain()
        return True

    def stop(self):
        async def cancel_all():
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def server():
    s = ScriptedServer()
    yield s
    s.stop()


def probe(requests, concurrency=1, settings=None) -> list[dict]:
    spec = {"requests": requests, "concurrency": concurrency, "settings": settings or {}}
    out = subprocess.run([sys.executable, str(PROBE), json.dumps(spec)], cwd=ROOT, timeout=60,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_every_body_framing_and_bodiless_answers(server):
    got = probe([{"url": server.url("/cl/0")}, {"url": server.url("/cl/70000")},
                 {"url": server.url("/chunked")}, {"url": server.url("/close")},
                 {"url": server.url("/head"), "method": "HEAD"}, {"url": server.url("/204")},
                 {"url": server.url("/304")}, {"url": server.url("/continue")},
                 {"url": server.url("/nothing")}])
    assert [(r["status"], r["error"]) for r in got] == [
        (200, None), (200, None), (200, None), (200, None), (200, None), (204, None), (304, None),
        (200, None), (404, None)]
    assert [r["body"] for r in got] == ["", "x" * 70000, "hello, world", "until the end", "", "",
                                        "", "after 100", "missing"]


def test_connections_are_reused_and_requests_carry_their_headers_and_body(server):
    before = server.connections
    got = probe([{"url": server.url("/cl/5")} for _ in range(20)] + [{"url": server.url("/conn")}])
    assert all(r["status"] == 200 for r in got)
    assert server.connections - before == 1          # 21 requests, one connection
    assert got[-1]["body"].split()[1] == "21"
    got = probe([{"url": server.url("/echo"), "method": "POST", "body": "payload"}])
    assert got[0]["body"] == "POST 7 payload"
    assert got[0]["headers"]["X-Multi"] == "a"        # the first of a repeated header
    head = server.heads[-1].decode()
    assert head.startswith("POST /echo HTTP/1.1\r\n") and f"Host: 127.0.0.1:{server.port}" in head


def test_parallel_requests_open_parallel_connections(server):
    got = probe([{"url": server.url(f"/cl/{n}")} for n in range(200)], concurrency=8)
    assert [len(r["body"]) for r in got] == list(range(200))


def test_failures_become_scrapy_download_errors(server):
    dead = f"http://127.0.0.1:{free_port()}/x"
    got = probe([{"url": server.url("/truncate")},
                 {"url": server.url("/truncate"), "meta": {"download_fail_on_dataloss": False}},
                 {"url": server.url("/slow"), "meta": {"download_timeout": 0.5}},
                 {"url": server.url("/cl/5000"), "meta": {"download_maxsize": 1000}},
                 {"url": server.url("/bigchunked"), "meta": {"download_maxsize": 1500}},
                 {"url": server.url("/garbage")}, {"url": dead},
                 {"url": server.url("/cl/3")}])
    assert [r["error"] for r in got] == [
        "ResponseDataLossError", None, "DownloadTimeoutError", "DownloadCancelledError",
        "DownloadCancelledError", "DownloadFailedError", "DownloadConnectionRefusedError", None]
    assert got[1]["body"] == "y" * 50 and got[1]["flags"] == ["dataloss"]
    assert got[-1]["body"] == "xxx"                   # the handler still works after all that


def test_a_reused_connection_closed_by_the_server_is_retried_once_on_a_fresh_one(server):
    before = server.connections
    got = probe([{"url": server.url("/dropreused/1")}, {"url": server.url("/dropreused/2")},
                 {"url": server.url("/dropreused/3")}])
    assert [r["status"] for r in got] == [404, 404, 404]  # answered (path unknown), none lost
    assert server.connections - before == 3
