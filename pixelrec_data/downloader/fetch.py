"""Downloader: fetch one URL's bytes with aiohttp, under a per-host rate, with retries and backoff.

Knows nothing about images or files: it returns bytes or an error kind. Error kinds are the
`status` values of covers.parquet: http_<code>, timeout, truncated, connection, too_large,
too_many_redirects, bad_url, blocked_host (an address the policy of schemas.hosts refuses, checked
on every redirect hop, every name resolution and the connected address), bad_encoding (a
Content-Encoding other than identity). The error column never quotes the answer's bytes.
Retried: timeout, connection, truncated, 5xx, 429 (and 408, and the platform's 412 ban); final:
every other 4xx (404, 403, 410 ...), too_large, redirect loops, bad_url, blocked_host, bad_encoding.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time as wall_clock
from urllib.parse import urljoin, urlsplit

import aiohttp

from schemas.hosts import (is_loopback, peer_refusal, public_only_resolver, refused_address,
                           url_refusal)

from .limits import MAX_COVER_BYTES, MAX_REDIRECTS

# Transient answers worth another try, besides every 5xx; any other (404, 403, 410 ...) is final.
RETRY_HTTP = {408, 412, 429}
# "Slow down" answers: the whole host is paused, not just this request (412 = the platform's ban).
COOL_DOWN_HTTP = {412, 429, 503}
MAX_COOL_DOWN_S = 600.0
RETRY_KINDS = {"timeout", "truncated", "connection"}
REDIRECT_HTTP = {301, 302, 303, 307, 308}
IDENTITY = {"Accept-Encoding": "identity"}  # a packed body is refused (bad_encoding)
DEFAULT_REMOTE_RATE = 5.0  # requests/s per host: the platform bans at about 6/s per IP
CONNECT_TIMEOUT_S = 10.0  # at most this of the --timeout budget waits for the TCP/TLS connection
USER_AGENT = "pixelrec-fetch-covers/0.1 (+https://github.com/westlake-repl/PixelRec)"


@dataclass
class FetchResult:
    status: str  # 'ok' or an error kind
    error: str = ""
    body: bytes | None = None
    attempts: int = 0
    length_checked: bool = False  # the body's size matched the Content-Length header
    retry_after: float | None = None  # seconds, from a Retry-After header


def http_code(status: str) -> int | None:
    """404 for 'http_404'; None for the other kinds."""
    return int(status[5:]) if status.startswith("http_") and status[5:].isdigit() else None


def is_retryable(status: str) -> bool:
    code = http_code(status)
    return status in RETRY_KINDS or code in RETRY_HTTP or (code is not None and code >= 500)


class HostRateLimiter:
    """Spaces requests to one host at least 1/rate seconds apart (rate 0 = no limit).

    rate=None means the polite default: DEFAULT_REMOTE_RATE for remote hosts, no limit for loopback
    (a local simulator or mirror); an explicit rate applies to every host.
    """

    def __init__(self, rate: float | None):
        self.rate = rate
        self._next_slot: dict[str, float] = {}

    def interval(self, host: str) -> float:
        rate = self.rate
        if rate is None:
            rate = 0.0 if is_loopback(host) else DEFAULT_REMOTE_RATE
        return 1.0 / rate if rate > 0 else 0.0

    async def wait(self, host: str) -> None:
        # Reserve the next free slot synchronously (no await in between), then sleep until it.
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next_slot.get(host, now))
        self._next_slot[host] = slot + self.interval(host)
        if slot > now:
            await asyncio.sleep(slot - now)

    def cool_down(self, host: str, seconds: float) -> None:
        """Hold every request to `host` for `seconds` (after a 429 or the platform's 412 ban)."""
        until = asyncio.get_running_loop().time() + seconds
        self._next_slot[host] = max(self._next_slot.get(host, until), until)


class Fetcher:
    """GETs URLs with one shared session; `retries` extra tries on transient errors."""

    def __init__(self, session: aiohttp.ClientSession, limiter: HostRateLimiter, *,
                 retries: int = 3, timeout: float = 20.0, backoff: float = 1.0,
                 max_bytes: int = MAX_COVER_BYTES, max_redirects: int = MAX_REDIRECTS,
                 per_host: int | None = None, allow_private_hosts: bool = False):
        self.session = session
        # loopback/private/link-local targets (cover URLs, redirects) only when the user allows
        self.allow_private_hosts = allow_private_hosts
        self.limiter = limiter
        self.retries = retries
        self.timeout = aiohttp.ClientTimeout(total=timeout,
                                             sock_connect=min(timeout, CONNECT_TIMEOUT_S))
        self.max_redirects = max_redirects
        self.backoff = backoff
        self.max_bytes = max_bytes
        # Requests in flight per host, bounded here rather than only by the connection pool, so
        # that waiting for a turn does not eat into a request's timeout.
        self.per_host = per_host
        self._host_slots: dict[str, asyncio.Semaphore] = {}

    async def fetch(self, url: str) -> FetchResult:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return FetchResult("bad_url", f"not an http(s) URL: {url!r:.80}")  # never requested
        host = parts.hostname
        result = FetchResult("connection")
        for attempt in range(1, self.retries + 2):
            async with self._slot(host):
                await self.limiter.wait(host)
                result = await self._attempt(url)
            result.attempts = attempt
            if result.status == "ok" or not is_retryable(result.status) or attempt > self.retries:
                break
            delay = self.backoff * 2 ** (attempt - 1)
            if http_code(result.status) in COOL_DOWN_HTTP:
                wait = result.retry_after if result.retry_after is not None else delay
                self.limiter.cool_down(host, min(wait, MAX_COOL_DOWN_S))
            # exponential backoff with jitter, so that many failing workers do not retry in step
            await asyncio.sleep(delay * (0.5 + random.random()))
        return result

    def _slot(self, host: str):
        if self.per_host is None:
            return contextlib.nullcontext()
        if host not in self._host_slots:
            self._host_slots[host] = asyncio.Semaphore(self.per_host)
        return self._host_slots[host]

    async def _attempt(self, url: str) -> FetchResult:
        try:
            for hop in range(self.max_redirects + 1):
                refusal = url_refusal(url, self.allow_private_hosts)
                if refusal is not None:
                    return _refused(refusal, hop)
                async with self.session.get(url, timeout=self.timeout, allow_redirects=False,
                                            headers=IDENTITY) as resp:
                    refusal = peer_refusal(_peer(resp), self.allow_private_hosts)
                    if refusal is not None:
                        resp.close()
                        return FetchResult("blocked_host", refusal)
                    if resp.status in REDIRECT_HTTP and resp.headers.get("Location"):
                        resp.close()  # the body of a redirect is never read
                        url = urljoin(str(resp.url), resp.headers["Location"])
                        continue
                    return await self._answer(resp)
            return FetchResult("too_many_redirects",
                               f"more than {self.max_redirects} redirects")
        except _TooLarge as exc:
            return FetchResult("too_large", str(exc))
        except asyncio.TimeoutError:
            return FetchResult("timeout", f"no complete response within {self.timeout.total:g}s")
        except aiohttp.ClientPayloadError as exc:
            return FetchResult("truncated", type(exc).__name__)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            refused = refused_address(exc)
            if refused is not None:
                return FetchResult("blocked_host", str(refused))
            return FetchResult("connection", _network_error(exc))

    async def _answer(self, resp: aiohttp.ClientResponse) -> FetchResult:
        """The result of a final (non-redirect) answer: its body read within the byte cap."""
        if resp.status != 200:
            resp.close()  # never read: an error page's bytes are not ours to keep
            return FetchResult(f"http_{resp.status}", f"HTTP {resp.status}",
                               retry_after=_seconds(resp.headers.get("Retry-After")))
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # asked for identity: a packed body could unpack far past the cap, so it is refused
            resp.close()
            return FetchResult("bad_encoding", f"Content-Encoding {encoding[:20]!r} "
                                               f"(asked for identity)")
        expected = resp.content_length
        if expected is not None and expected > self.max_bytes:
            resp.close()  # drop the connection rather than drain the body
            return FetchResult("too_large", f"Content-Length {expected} bytes, over {self.max_bytes}")
        body = await self._read_capped(resp)
        checked = expected is not None
        if checked and len(body) != expected:
            return FetchResult("truncated", f"got {len(body)} of {expected} bytes")
        return FetchResult("ok", body=body, length_checked=checked)

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, read in chunks counted against the cap (the session never decompresses, so
        what is counted is what is kept)."""
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                resp.close()  # stop reading: the rest of the body is never downloaded
                raise _TooLarge(f"body over {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _refused(reason: str, hop: int) -> FetchResult:
    if reason == "not an http(s) URL":
        where = "redirect to a non-http(s) URL" if hop else "not an http(s) URL"
        return FetchResult("bad_url", where)
    return FetchResult("blocked_host", reason if not hop else f"redirect refused: {reason}")


def _peer(resp: aiohttp.ClientResponse):
    connection = resp.connection
    transport = connection.transport if connection is not None else None
    return transport.get_extra_info("peername") if transport is not None else None


def _seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or bad."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - wall_clock())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class _TooLarge(Exception):
    pass


def _network_error(exc: BaseException) -> str:
    """A connection failure in words of our own: the errors of a bad answer (a parser error, a
    cut body) may quote the answer's bytes, so they are named by their type only."""
    if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.ClientPayloadError)):
        return type(exc).__name__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def make_session(concurrency: int, per_host: int | None = None,
                 allow_private_hosts: bool = False) -> aiohttp.ClientSession:
    """One pooled session: at most `concurrency` connections in all, `per_host` to one host.

    Names resolve to public addresses only (unless allowed), and bodies are never decompressed
    (identity is asked for; anything else is refused), so the byte cap counts what is kept."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=min(per_host or concurrency,
                                                                           concurrency),
                                     ttl_dns_cache=300,
                                     resolver=public_only_resolver(allow_private_hosts))
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT},
                                 auto_decompress=False)
