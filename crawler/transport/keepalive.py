"""A lean HTTP/1.1 download handler for plain http:// targets: keep-alive, nothing more.

Scrapy's own handler goes through twisted.web's Agent: a URI object, an endpoint, a pool lookup, a
request object, a response object, a body producer and consumer, a state machine per parser and
about a dozen Deferreds per request. Against the local simulator the crawler is CPU-bound, and a
bare Scrapy spider fetched 1.9k requests/s with that client and 3.1k with this one
(bench/crawl_throughput.py). This handler keeps one pool of idle connections per host; each
connection (http11.py) writes the request itself and parses the answer from one buffer.

Used only for loopback targets (settings.LOOPBACK_OVERRIDES). A remote site keeps Scrapy's handler
(TLS, proxies, HTTP/2) and is capped at 2 requests/s, where a handler's speed does not matter.

Knowingly left out: https, proxies, request pipelining, and the headers_received /
bytes_received signals (nothing in this crawler listens; each would be one dispatch per response).
Kept from Scrapy's contract: DOWNLOAD_TIMEOUT / download_timeout, DOWNLOAD_MAXSIZE / download_maxsize,
DOWNLOAD_WARNSIZE, DOWNLOAD_FAIL_ON_DATALOSS / download_fail_on_dataloss ("dataloss" flag),
download_latency, and Scrapy's download exceptions, so middlewares see the same failures.
"""
from __future__ import annotations

from scrapy.exceptions import DownloadConnectionRefusedError, DownloadFailedError, \
    DownloadTimeoutError, NotSupported
from scrapy.core.downloader.handlers.base import BaseDownloadHandler
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import error as tx_error
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory

from .http11 import Exchange, HTTP11Connection, build_payload


class _ConnectionFactory(Factory):
    def __init__(self, pool: "ConnectionPool", key):
        self.pool, self.key = pool, key

    def buildProtocol(self, addr):
        return HTTP11Connection(self.pool, self.key)


class ConnectionPool:
    """Idle keep-alive connections per (host, port); a new connection when none is idle."""

    def __init__(self, reactor, max_idle: int, connect_timeout: float):
        self.reactor = reactor
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle: dict = {}
        self.live: set = set()

    def send(self, exchange: Exchange) -> None:
        idle = self.idle.get(exchange.key)
        if idle:
            connection = idle.pop()
            self.live.add(connection)
            connection.send(exchange)
        else:
            self.connect(exchange)

    def connect(self, exchange: Exchange) -> None:
        host, port = exchange.key
        endpoint = HostnameEndpoint(self.reactor, host.encode("idna"), port,
                                    timeout=self.connect_timeout)
        connecting = endpoint.connect(_ConnectionFactory(self, exchange.key))
        connecting.addCallbacks(lambda conn: self._connected(conn, exchange),
                                lambda failure: self._connect_failed(failure, exchange))

    def _connected(self, connection: HTTP11Connection, exchange: Exchange) -> None:
        self.live.add(connection)
        if exchange.deferred.called:  # timed out or cancelled while connecting: keep it for later
            self.release(connection)
        else:
            connection.send(exchange)

    @staticmethod
    def _connect_failed(failure, exchange: Exchange) -> None:
        value = failure.value
        if isinstance(value, tx_error.ConnectionRefusedError):
            exc = DownloadConnectionRefusedError(str(value))
        elif isinstance(value, tx_error.TimeoutError):
            exc = DownloadTimeoutError(str(value))
        else:
            exc = DownloadFailedError(f"{exchange.url}: cannot connect ({value})")
        exchange.finish(exc)

    def release(self, connection: HTTP11Connection) -> None:
        self.live.discard(connection)
        idle = self.idle.setdefault(connection.key, [])
        if len(idle) < self.max_idle and connection.transport.connected:
            idle.append(connection)
        else:
            connection.transport.loseConnection()

    def forget(self, connection: HTTP11Connection) -> None:
        self.live.discard(connection)
        idle = self.idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        for connection in [c for idle in self.idle.values() for c in idle] + list(self.live):
            connection.transport.loseConnection()
        self.idle.clear()


class KeepAliveHandler(BaseDownloadHandler):
    """Scrapy's download-handler interface (DOWNLOAD_HANDLERS = {"http": ...})."""

    def __init__(self, crawler):
        from twisted.internet import reactor  # imported late: Scrapy installs the reactor

        super().__init__(crawler)
        settings = crawler.settings
        self.timeout = settings.getfloat("DOWNLOAD_TIMEOUT")
        self.maxsize = settings.getint("DOWNLOAD_MAXSIZE")
        self.warnsize = settings.getint("DOWNLOAD_WARNSIZE")
        self.fail_on_dataloss = settings.getbool("DOWNLOAD_FAIL_ON_DATALOSS")
        self.reactor = reactor
        self.pool = ConnectionPool(reactor, max(2, settings.getint("CONCURRENT_REQUESTS")),
                                   connect_timeout=self.timeout)

    def _exchange(self, request) -> Exchange:
        parts = urlparse_cached(request)
        if parts.scheme != "http":
            raise NotSupported(f"{type(self).__name__} speaks plain http only, not {parts.scheme}")
        meta = request.meta
        exchange = Exchange(request, (parts.hostname, parts.port or 80),
                             build_payload(request, parts),
                             meta.get("download_maxsize", self.maxsize),
                             meta.get("download_warnsize", self.warnsize),
                             meta.get("download_fail_on_dataloss", self.fail_on_dataloss))
        timeout = meta.get("download_timeout") or self.timeout
        exchange.timer = self.reactor.callLater(timeout, self._timed_out, exchange, timeout)
        return exchange

    def _timed_out(self, exchange: Exchange, timeout: float) -> None:
        if exchange.connection is not None:
            exchange.connection.abandon()
        exchange.finish(DownloadTimeoutError(
            f"Getting {exchange.url} took longer than {timeout} seconds."))

    async def download_request(self, request):
        exchange = self._exchange(request)
        self.pool.send(exchange)
        return await exchange.deferred

    async def close(self) -> None:
        self.pool.close()
