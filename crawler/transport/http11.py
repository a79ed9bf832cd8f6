"""One keep-alive HTTP/1.1 client connection: writes a request, parses its answer.

The status line, headers and body (Content-Length, chunked with extensions and trailers, or read
until the server closes) are parsed from one buffer; failures become Scrapy's download exceptions
(timeout, max size, data loss, a broken answer). keepalive.py pools these connections and
plugs them into Scrapy as a download handler.
"""
from __future__ import annotations

import logging
import time

from scrapy.exceptions import (DownloadCancelledError, DownloadFailedError,
                               ResponseDataLossError)
from scrapy.http import Headers
from scrapy.utils._download_handlers import make_response
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol

logger = logging.getLogger(__name__)

NO_BODY_STATUS = (204, 304)
SKIPPED_REQUEST_HEADERS = (b"host", b"content-length", b"connection", b"transfer-encoding")
MAX_HEAD_BYTES = 64 * 1024      # status line + headers; more is a broken or hostile server


class Exchange:
    """One request in flight: what to send, where, and what to do with the answer."""

    __slots__ = ("request", "url", "key", "payload", "head_only", "maxsize", "warnsize",
                 "fail_on_dataloss", "deferred", "started", "timer", "resent", "connection")

    def __init__(self, request, key, payload, maxsize, warnsize, fail_on_dataloss):
        self.request, self.url, self.key, self.payload = request, request.url, key, payload
        self.head_only = request.method == "HEAD"
        self.maxsize, self.warnsize = maxsize, warnsize
        self.fail_on_dataloss = fail_on_dataloss
        self.deferred = Deferred(self._cancel)
        self.started = time.monotonic()
        self.timer = None
        self.resent = False
        self.connection = None

    def _stop_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()

    def finish(self, result) -> None:
        """Fire the request's Deferred once (a response, or a Scrapy download exception)."""
        self._stop_timer()
        if self.deferred.called:
            return
        if isinstance(result, Exception):
            self.deferred.errback(result)
        else:
            self.deferred.callback(result)

    def _cancel(self, deferred) -> None:
        # Scrapy cancels downloads when the engine stops: drop the connection; the Deferred
        # then fails with CancelledError (Twisted does that when the canceller does not fire it)
        self._stop_timer()
        if self.connection is not None:
            self.connection.abandon()


class HTTP11Connection(Protocol):
    """One keep-alive connection; one exchange at a time (no pipelining)."""

    def __init__(self, pool, key):  # pool: keepalive.ConnectionPool (release, forget, connect)
        self.pool, self.key = pool, key
        self.exchange: Exchange | None = None
        self.reused = False
        self._reset()

    def _reset(self) -> None:
        self.buffer = bytearray()
        self.status = None
        self.headers = None
        self.length = None          # Content-Length; None: chunked or until the server closes
        self.chunked = False
        self.keep_alive = True
        self.body = bytearray()
        self.got_bytes = False

    def send(self, exchange: Exchange) -> None:
        self.exchange = exchange
        exchange.connection = self
        self._reset()
        self.transport.write(exchange.payload)

    # -- receiving -------------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self.exchange is None:
            self.keep_alive = False
            self.transport.loseConnection()  # bytes nobody asked for: the connection is unusable
            return
        self.got_bytes = True
        if self.status is None:
            self.buffer += data
            if not self._parse_head():
                return
            data, self.buffer = bytes(self.buffer), bytearray()
            if self.length == 0:
                self._done()
                return
        if self.chunked:
            self.buffer += data
            self._parse_chunks()
        else:
            self.body += data
            self._body_grew()

    def _parse_head(self) -> bool:
        """Status line and headers, once complete; False while more bytes are needed."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self._fail(DownloadFailedError(f"{self.exchange.url}: response head too large"))
                return False
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            del self.buffer[:end + 4]
            version, _, rest = lines[0].partition(b" ")
            code = rest[:3]
            if not (version.startswith(b"HTTP/1.") and code.isdigit()):
                self._fail(DownloadFailedError(f"{self.exchange.url}: not an HTTP/1.x response"))
                return False
            status = int(code)
            if 100 <= status < 200:  # 100 Continue and the like: the real answer follows
                continue
            headers: dict = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers.setdefault(name.strip().title(), []).append(value.strip())
            self.status, self.headers = status, headers
            self.exchange.request.meta["download_latency"] = time.monotonic() - self.exchange.started
            return self._framing(version, headers)

    def _framing(self, version: bytes, headers: dict) -> bool:
        """How the body ends (RFC 9112 6.3), and whether the connection can be reused."""
        connection = b",".join(headers.get(b"Connection", ())).lower()
        self.keep_alive = b"close" not in connection and (
            version == b"HTTP/1.1" or b"keep-alive" in connection)
        if self.exchange.head_only or self.status in NO_BODY_STATUS:
            self.length = 0
        elif b"chunked" in b",".join(headers.get(b"Transfer-Encoding", ())).lower():
            self.chunked = True
        elif b"Content-Length" in headers:
            try:
                self.length = int(headers[b"Content-Length"][0])
            except ValueError:
                self._fail(DownloadFailedError(f"{self.exchange.url}: bad Content-Length"))
                return False
        else:
            self.keep_alive = False  # read until the server closes
        maxsize = self.exchange.maxsize
        if maxsize and self.length is not None and self.length > maxsize:
            self._too_large(self.length, expected=True)
            return False
        return True

    def _parse_chunks(self) -> None:
        buffer = self.buffer
        while self.exchange is not None:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return
            try:
                size = int(bytes(buffer[:line_end]).split(b";", 1)[0].strip(), 16)
            except ValueError:
                self._fail(DownloadFailedError(f"{self.exchange.url}: bad chunk size"))
                return
            if size == 0:  # the last chunk, then optional trailer lines and an empty line
                if buffer.startswith(b"\r\n", line_end + 2) or \
                        buffer.find(b"\r\n\r\n", line_end) >= 0:
                    del buffer[:]
                    self._done()
                return
            if len(buffer) < line_end + 4 + size:
                return
            self.body += buffer[line_end + 2:line_end + 2 + size]
            del buffer[:line_end + 4 + size]
            if not self._body_grew(final=False):
                return

    def _body_grew(self, final: bool = True) -> bool:
        exchange = self.exchange
        if exchange.maxsize and len(self.body) > exchange.maxsize:
            self._too_large(len(self.body), expected=False)
            return False
        if exchange.warnsize and len(self.body) > exchange.warnsize:
            logger.warning("Received more bytes than download warn size (%d) in request %s.",
                           exchange.warnsize, exchange.request)
            exchange.warnsize = 0  # once per request
        if final and self.length is not None and len(self.body) >= self.length:
            if len(self.body) > self.length:  # more than announced: the connection is unusable
                del self.body[self.length:]
                self.keep_alive = False
            self._done()
            return False
        return True

    def _too_large(self, size: int, expected: bool) -> None:
        what = "Expected response size" if expected else "Received"
        self._fail(DownloadCancelledError(
            f"{what} ({size}) larger than download max size ({self.exchange.maxsize}) in request "
            f"{self.exchange.request}."))

    # -- endings ---------------------------------------------------------------------------------
    def _done(self, flags=None) -> None:
        exchange, self.exchange = self.exchange, None
        exchange.connection = None
        response = make_response(url=exchange.url, status=self.status,
                                 headers=Headers(self.headers), body=bytes(self.body),
                                 flags=flags, protocol="HTTP/1.1")
        if self.keep_alive and flags is None:
            self.reused = True
            self.pool.release(self)  # before the callback: the next request may take it at once
        else:
            self.pool.forget(self)
            self.transport.loseConnection()
        exchange.finish(response)

    def _fail(self, exc: Exception) -> None:
        exchange, self.exchange = self.exchange, None
        self.pool.forget(self)
        self.transport.abortConnection()
        if exchange is not None:
            exchange.connection = None
            exchange.finish(exc)

    def abandon(self) -> None:
        """The request was cancelled or timed out: this connection's state is unknown, drop it."""
        self.exchange = None
        self.pool.forget(self)
        self.transport.abortConnection()

    def connectionLost(self, reason=None) -> None:
        self.pool.forget(self)
        exchange = self.exchange
        if exchange is None:
            return
        if self.status is not None and not self.chunked and self.length is None:
            self._done()  # a body delimited by the end of the connection
            return
        self.exchange, exchange.connection = None, None
        if self.status is None and not self.got_bytes and self.reused and not exchange.resent:
            # the server closed an idle keep-alive connection as we reused it: send once more,
            # on a fresh connection (twisted's pool does the same for idempotent requests)
            exchange.resent = True
            self.pool.connect(exchange)
            return
        if self.status is None:
            why = reason.getErrorMessage() if reason is not None else "closed"
            exchange.finish(DownloadFailedError(f"{exchange.url}: connection lost before a "
                                                f"response ({why})"))
        elif exchange.fail_on_dataloss:
            expected = self.length if self.length is not None else "more (chunked)"
            exchange.finish(ResponseDataLossError(
                f"{exchange.url}: connection lost after {len(self.body)} of {expected} body bytes"))
        else:
            self.exchange = exchange
            self._done(flags=["dataloss"])


def build_payload(request, parts) -> bytes:
    """The request line, headers and body of a Scrapy request, as bytes."""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = [f"{request.method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode("ascii")]
    for name, values in request.headers.items():
        if name.lower() not in SKIPPED_REQUEST_HEADERS:
            head.extend(name + b": " + value + b"\r\n" for value in values)
    body = request.body
    if body or request.method in ("POST", "PUT", "PATCH"):
        head.append(b"Content-Length: %d\r\n" % len(body))
    head.append(b"\r\n")
    return b"".join(head) + body
