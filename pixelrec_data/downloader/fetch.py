"""Downloader: fetch one URL's bytes with aiohttp, under a per-host rate, with retries and backoff.

Knows nothing about images or files: it returns bytes or an error kind. Error kinds are the
`status` values of covers.parquet: http_<code>, timeout, truncated, connection, too_large.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from schemas.hosts import is_loopback

# Transient failures worth another try; everything else (404, 403, ...) is final.
RETRY_HTTP = {408, 412, 425, 429, 500, 502, 503, 504}
# "Slow down" answers: the whole host is paused, not just this request (412 = the platform's ban).
COOL_DOWN_HTTP = {412, 429, 503}
MAX_COOL_DOWN_S = 600.0
RETRY_KINDS = {"timeout", "truncated", "connection"}
DEFAULT_REMOTE_RATE = 5.0  # requests/s per host: the platform bans at about 6/s per IP
MAX_COVER_BYTES = 32 * 1024 * 1024
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
    return status in RETRY_KINDS or http_code(status) in RETRY_HTTP




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
                 max_bytes: int = MAX_COVER_BYTES):
        self.session = session
        self.limiter = limiter
        self.retries = retries
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.backoff = backoff
        self.max_bytes = max_bytes

    async def fetch(self, url: str) -> FetchResult:
        host = urlsplit(url).hostname or ""
        result = FetchResult("connection")
        for attempt in range(1, self.retries + 2):
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

    async def _attempt(self, url: str) -> FetchResult:
        try:
            async with self.session.get(url, timeout=self.timeout) as resp:
                if resp.status != 200:
                    await resp.release()
                    return FetchResult(f"http_{resp.status}",
                                       f"HTTP {resp.status} {resp.reason or ''}".strip(),
                                       retry_after=_seconds(resp.headers.get("Retry-After")))
                if resp.content_length is not None and resp.content_length > self.max_bytes:
                    return FetchResult("too_large", f"Content-Length {resp.content_length} bytes")
                body = await self._read_capped(resp)
                expected = resp.content_length
                if (expected is not None and "Content-Encoding" not in resp.headers
                        and len(body) != expected):
                    return FetchResult("truncated", f"got {len(body)} of {expected} bytes")
                checked = expected is not None and "Content-Encoding" not in resp.headers
                return FetchResult("ok", body=body, length_checked=checked)
        except _TooLarge as exc:
            return FetchResult("too_large", str(exc))
        except asyncio.TimeoutError:
            return FetchResult("timeout", f"no complete response within {self.timeout.total:g}s")
        except aiohttp.ClientPayloadError as exc:
            return FetchResult("truncated", _one_line(exc))
        except (aiohttp.ClientError, OSError) as exc:
            return FetchResult("connection", _one_line(exc))

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge(f"body over {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: fall back to the backoff delay
        return None


class _TooLarge(Exception):
    pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def make_session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency,
                                     ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT})
