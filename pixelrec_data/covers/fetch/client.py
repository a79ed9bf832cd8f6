"""The cover client: one URL's bytes, under a per-host rate, with retries and backoff, each attempt
a guarded GET of the HTTP core (pixelrec_data.net).

Knows nothing about images: it returns a body (bodies.Body: in memory or in a temporary file,
never more than the run's memory budget in memory) or an error kind. Error kinds are the
`status` values of the covers' status table: http_<code>, timeout, truncated, connection,
too_large, too_many_redirects, bad_url, blocked_host (an address the policy of net.addresses
refuses, checked on every redirect hop, every name resolution and the connected address),
bad_encoding (a Content-Encoding other than identity). The error column never quotes the answer's
bytes.
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
from urllib.parse import urlsplit

import aiohttp

from pixelrec_data.net.addresses import is_loopback, refused_address
from pixelrec_data.net.guarded import (NOT_HTTP, Refused, TooLarge, TooManyRedirects,
                                       attempt_deadline, capped_chunks, declared_over,
                                       encoding_refusal, follow, open_session, within)

from .bodies import Body, BodyStore

# Transient answers worth another try, besides every 5xx; any other (404, 403, 410 ...) is final.
RETRY_HTTP = {408, 412, 429}
# "Slow down" answers: the whole host is paused, not just this request (412 = the platform's ban).
COOL_DOWN_HTTP = {412, 429, 503}
MAX_COOL_DOWN_S = 600.0
RETRY_KINDS = {"timeout", "truncated", "connection"}
DEFAULT_REMOTE_RATE = 5.0  # requests/s per host: the platform bans at about 6/s per IP
USER_AGENT = "pixelrec-fetch-covers/0.1 (+https://github.com/westlake-repl/PixelRec)"


@dataclass
class FetchResult:
    status: str  # 'ok' or an error kind
    error: str = ""
    body: Body | None = None  # the caller discards it
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
    """GETs URLs with one shared session; `options.retries` extra tries on transient errors."""

    def __init__(self, session: aiohttp.ClientSession, limiter: HostRateLimiter, options,
                 bodies: BodyStore):
        self.session, self.limiter, self.options, self.bodies = session, limiter, options, bodies
        # Requests in flight per host, bounded here rather than only by the connection pool, so
        # that waiting for a turn does not eat into a request's timeout.
        self.per_host = options.per_host
        self._host_slots: dict[str, asyncio.Semaphore] = {}

    async def fetch(self, url: str, item_id: str) -> FetchResult:
        """`item_id` names the temporary file of a body too large to keep in memory."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return FetchResult("bad_url", f"not an http(s) URL: {url!r:.80}")  # never requested
        host = parts.hostname
        result = FetchResult("connection")
        retries, backoff = self.options.retries, self.options.backoff
        for attempt in range(1, retries + 2):
            async with self._slot(host):
                await self.limiter.wait(host)
                result = await self._attempt(url, item_id)
            result.attempts = attempt
            if result.status == "ok" or not is_retryable(result.status) or attempt > retries:
                break
            delay = backoff * 2 ** (attempt - 1)
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

    async def _attempt(self, url: str, item_id: str) -> FetchResult:
        options = self.options
        try:
            async with within(attempt_deadline(options)):
                resp = await follow(self.session, url, options)
                async with resp:
                    return await self._answer(resp, item_id)
        except Refused as exc:
            return _refused(exc)
        except TooManyRedirects as exc:
            return FetchResult("too_many_redirects", str(exc))
        except TooLarge as exc:
            return FetchResult("too_large", str(exc))
        except asyncio.TimeoutError:
            return FetchResult("timeout", f"no complete response within {options.timeout:g}s")
        except aiohttp.ClientPayloadError as exc:
            return FetchResult("truncated", type(exc).__name__)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            refused = refused_address(exc)
            if refused is not None:
                return FetchResult("blocked_host", str(refused))
            return FetchResult("connection", _network_error(exc))

    async def _answer(self, resp: aiohttp.ClientResponse, item_id: str) -> FetchResult:
        """The result of a final (non-redirect) answer: its body read within the byte cap, block
        by block into a Body (memory or a file: never whole in memory when large)."""
        cap = self.options.max_bytes
        if resp.status != 200:
            resp.close()  # never read: an error page's bytes are not ours to keep
            return FetchResult(f"http_{resp.status}", f"HTTP {resp.status}",
                               retry_after=_seconds(resp.headers.get("Retry-After")))
        refusal = encoding_refusal(resp)
        if refusal is not None:
            # asked for identity: a packed body could unpack far past the cap, so it is refused
            resp.close()
            return FetchResult("bad_encoding", refusal)
        over = declared_over(resp, cap)
        if over is not None:
            resp.close()  # drop the connection rather than drain the body
            return FetchResult("too_large", f"Content-Length {over} bytes, over {cap}")
        expected = resp.content_length
        body = self.bodies.body(item_id)
        try:
            async for block in capped_chunks(resp, cap):
                body.append(block)
            body.finish()
        except BaseException:
            body.discard()
            raise
        checked = expected is not None
        if checked and body.size != expected:
            body.discard()
            return FetchResult("truncated", f"got {body.size} of {expected} bytes")
        return FetchResult("ok", body=body, length_checked=checked)


def _refused(exc: Refused) -> FetchResult:
    if exc.kind == "bad_url":
        return FetchResult("bad_url", "redirect to a non-http(s) URL" if exc.hop else NOT_HTTP)
    return FetchResult("blocked_host", f"redirect refused: {exc.reason}"
                       if exc.hop else exc.reason)


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


def _network_error(exc: BaseException) -> str:
    """A connection failure in words of our own: the errors of a bad answer (a parser error, a
    cut body) may quote the answer's bytes, so they are named by their type only."""
    if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.ClientPayloadError)):
        return type(exc).__name__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def make_session(options) -> aiohttp.ClientSession:
    """One pooled session: at most `concurrency` connections in all, `per_host` to one host."""
    per_host = min(options.per_host or options.concurrency, options.concurrency)
    return open_session(options, limit=options.concurrency, limit_per_host=per_host,
                        headers={"User-Agent": USER_AGENT})
