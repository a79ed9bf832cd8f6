"""The guarded GET: every request to an address that came from data goes through `follow`.

- `NetOptions` (net/options.py): the options of a route (the cover fetcher's `FetchOptions` and the
  mirror client's `MirrorOptions` extend it), so every guard is configured the same way on both.
- `open_session`: one pooled aiohttp session whose resolver drops the addresses the policy refuses
  (net.addresses) and which never decompresses a body (identity is asked for), so a byte cap
  counts what is kept.
- `follow`: the redirect loop. Each hop is checked before it is requested (an http(s) URL, a host
  the policy allows, another host only when the route allows it), the address the connection
  reached is checked before the answer is used, and at most `max_redirects` hops are followed.
  The peer check takes the connection's transport, not the answer, so it can run as soon as the
  connection is made, before the request is sent, from a connector that calls `transport_refusal`.
- `read_capped`, `capped_chunks`, `declared_over`, `encoding_refusal`: bodies read against a byte
  cap (never a byte past it), and answers refused before their body is read.
- `attempt_deadline` / `within`: the time one attempt may take (timeout + bytes / min_rate).
"""
from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

import aiohttp

from .addresses import peer_refusal, public_only_resolver, url_refusal
from .options import CONNECT_TIMEOUT_S, NetOptions

REDIRECT_HTTP = {301, 302, 303, 307, 308}
IDENTITY = {"Accept-Encoding": "identity"}
NOT_HTTP = "not an http(s) URL"  # the refusal of url_refusal for a non-http(s) URL
CHUNK = 1 << 16


class Refused(Exception):
    """A hop the guards refuse: kind 'bad_url' (not http(s)), 'blocked_host' (the address policy)
    or 'cross_host' (another host, not allowed on this route); hop 0 is the URL asked for."""

    def __init__(self, kind: str, reason: str, hop: int, peer: bool = False):
        super().__init__(reason)
        self.kind, self.reason, self.hop = kind, reason, hop
        self.peer = peer  # the address the connection reached, not the URL, was refused


class TooManyRedirects(Exception):
    pass


class TooLarge(Exception):
    pass


def open_session(options: NetOptions, limit: int = 100, limit_per_host: int = 0,
                 trusted: tuple[str, ...] = (), headers: dict | None = None) -> aiohttp.ClientSession:
    """A pooled session: at most `limit` connections, `limit_per_host` to one host (0: no cap);
    names resolve to addresses the policy allows, but for the `trusted` names (a host the user
    typed); bodies are never decompressed."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, ttl_dns_cache=300,
                                     resolver=public_only_resolver(options.allow_private_hosts,
                                                                   trusted))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=options.timeout,
                                    sock_connect=min(options.timeout, CONNECT_TIMEOUT_S))
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                 headers={**IDENTITY, **(headers or {})})


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = -1
    return parts.scheme, (parts.hostname or "").lower(), port


async def follow(session: aiohttp.ClientSession, url: str, options: NetOptions, *,
                 trusted: str | None = None, headers: dict | None = None) -> aiohttp.ClientResponse:
    """The final (non-redirect) answer for `url`, redirects followed by hand, every hop guarded.

    trusted: a URL whose origin the user chose (a mirror); hops to that origin are not checked
    against the address policy. Raises Refused or TooManyRedirects; the caller closes the answer
    (`async with`)."""
    home = origin(trusted) if trusted is not None else None
    for hop in range(options.max_redirects + 1):
        guarded = origin(url) != home
        if guarded:
            _check_hop(url, options, hop, home is not None)
        resp = await session.get(url, headers=headers, allow_redirects=False)
        if guarded:
            reason = transport_refusal(_transport(resp), options.allow_private_hosts)
            if reason is not None:
                resp.close()
                raise Refused("blocked_host", reason, hop, peer=True)
        location = resp.headers.get("Location")
        if resp.status in REDIRECT_HTTP and location:
            resp.close()  # the body of a redirect is never read
            url = urljoin(str(resp.url), location)
            continue
        return resp
    raise TooManyRedirects(f"more than {options.max_redirects} redirects")


def _check_hop(url: str, options: NetOptions, hop: int, has_home: bool) -> None:
    if hop and has_home and not options.allow_cross_host_redirects:
        raise Refused("cross_host", "a redirect to another host or port", hop)
    reason = url_refusal(url, options.allow_private_hosts)
    if reason is not None:
        raise Refused("bad_url" if reason == NOT_HTTP else "blocked_host", reason, hop)


def transport_refusal(transport, allow_private: bool) -> str | None:
    """Why the address a connection reached is refused, or None: given the transport, so that a
    connector can ask it before a request is sent."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    return peer_refusal(peer, allow_private)


def _transport(resp: aiohttp.ClientResponse):
    connection = resp.connection
    return connection.transport if connection is not None else None


def encoding_refusal(resp: aiohttp.ClientResponse) -> str | None:
    """A packed body (identity was asked for) could unpack far past any cap: refused."""
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    return f"Content-Encoding {encoding[:20]!r} (identity was asked for)"


def declared_over(resp: aiohttp.ClientResponse, cap: int) -> int | None:
    """The declared Content-Length when it is over `cap` (the body is then never read), else None."""
    declared = resp.content_length
    return declared if declared is not None and declared > cap else None


async def capped_chunks(resp: aiohttp.ClientResponse, cap: int, chunk: int = CHUNK):
    """The body in blocks; TooLarge (the connection dropped) before a block that passes `cap`."""
    got = 0
    async for block in resp.content.iter_chunked(chunk):
        got += len(block)
        if got > cap:
            resp.close()  # stop reading: the rest of the body is never downloaded
            raise TooLarge(f"body over {cap} bytes")
        yield block


async def read_capped(resp: aiohttp.ClientResponse, cap: int, chunk: int = CHUNK) -> bytes:
    return b"".join([block async for block in capped_chunks(resp, cap, chunk)])


def attempt_deadline(options: NetOptions, expected_bytes: int = 0) -> float:
    """Seconds one attempt may take: the timeout, plus the bytes at min_rate when a rate is set,
    so a server that drips a byte at a time cannot hold a transfer forever."""
    if options.min_rate:
        return options.timeout + max(0, expected_bytes) / options.min_rate
    return options.timeout


def within(seconds: float):
    """`async with within(s):` raises TimeoutError when the block outlasts `s` seconds."""
    return asyncio.timeout(seconds)
