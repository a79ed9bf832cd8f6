"""The guarded GET: every request to an address that came from data goes through `follow`.

- `NetOptions` (net/options.py): the options of a route (the cover fetcher's `FetchOptions` and the
  mirror client's `MirrorOptions` extend it), so every guard is configured the same way on both.
- `open_session`: one pooled aiohttp session whose resolver drops the addresses the policy refuses
  (net.addresses), whose connector (`GuardedConnector`) checks the address of every connection
  before a byte of a request is sent, and which never decompresses a body (identity is asked
  for), so a byte cap counts what is kept.
- `follow`: the redirect loop. Each hop is checked before it is requested (an http(s) URL, a host
  the policy allows, another host only when the route allows it), and at most `max_redirects`
  hops are followed.
- `read_capped`, `capped_chunks`, `declared_over`, `encoding_refusal`: bodies read against a byte
  cap (never a byte past it), and answers refused before their body is read.
- `attempt_deadline` / `within`: the time one attempt may take (timeout + bytes / min_rate).
"""
from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

import aiohttp

from .addresses import (ALLOW_HINT, AddressRefused, address_kind, peer_refusal,
                        public_only_resolver, url_refusal)
from .options import CONNECT_TIMEOUT_S, NetOptions

REDIRECT_HTTP = {301, 302, 303, 307, 308}
IDENTITY = {"Accept-Encoding": "identity"}
NOT_HTTP = "not an http(s) URL"  # the refusal of url_refusal for a non-http(s) URL
CHUNK = 1 << 16


class Refused(Exception):
    """A hop the guards refuse: kind 'bad_url' (not http(s)), 'blocked_host' (the address policy)
    or 'cross_host' (another host, not allowed on this route); hop 0 is the URL asked for.
    (An address refused when connecting is an `AddressRefused` inside aiohttp's connection error:
    see net.addresses.refused_address.)"""

    def __init__(self, kind: str, reason: str, hop: int):
        super().__init__(reason)
        self.kind, self.reason, self.hop = kind, reason, hop


class TooManyRedirects(Exception):
    pass


class TooLarge(Exception):
    pass


def open_session(options: NetOptions, limit: int = 100, limit_per_host: int = 0,
                 trusted: tuple[str, ...] = (), headers: dict | None = None) -> aiohttp.ClientSession:
    """A pooled session: at most `limit` connections, `limit_per_host` to one host (0: no cap);
    `trusted`: URLs the user typed (a mirror), whose origin is reached whatever its address;
    every other connection goes to an address the policy allows, checked before a byte is sent;
    bodies are never decompressed."""
    names = tuple(origin(url)[1] for url in trusted)
    connector = GuardedConnector(options.allow_private_hosts, {origin(url) for url in trusted},
                                 limit=limit, limit_per_host=limit_per_host, ttl_dns_cache=300,
                                 resolver=public_only_resolver(options.allow_private_hosts, names))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=options.timeout,
                                    sock_connect=min(options.timeout, CONNECT_TIMEOUT_S))
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                 headers={**IDENTITY, **(headers or {})})


class GuardedConnector(aiohttp.TCPConnector):
    """A connector that applies the address policy to the connection itself, before any byte of a
    request is sent: the addresses a name resolved to are filtered before connecting (so a
    refused address is not even connected to), and the address the connection reached is checked
    before the connection is handed to the request. A trusted origin (scheme, host, port) is
    taken as given: trust is for the origin the user typed, not for its name on another port.

    It hooks `_wrap_create_connection`, aiohttp's one place where a connection is made (TLS
    included); tests/test_hostile_mirror.py checks on a real listener that no byte reaches a
    refused address, so a change of that hook in aiohttp fails there."""

    def __init__(self, allow_private: bool, trusted: set, **kwargs):
        super().__init__(**kwargs)
        self._allow_private, self._trusted = allow_private, frozenset(trusted)

    async def _wrap_create_connection(self, *args, req, **kwargs):
        guarded = not self._allow_private and origin(str(req.url)) not in self._trusted
        infos = kwargs.get("addr_infos")  # (family, type, proto, name, (address, port, ...))
        if guarded and infos:
            kept = [info for info in infos if address_kind(str(info[4][0])) is None]
            if not kept:
                kind = address_kind(str(infos[0][4][0]))
                raise _refusal(req, f"{req.url.host} is a {kind} address; {ALLOW_HINT}")
            kwargs["addr_infos"] = kept
        transport, protocol = await super()._wrap_create_connection(*args, req=req, **kwargs)
        reason = transport_refusal(transport, False) if guarded else None
        if reason is not None:
            transport.close()
            raise _refusal(req, reason)
        return transport, protocol


def _refusal(req, reason: str) -> aiohttp.ClientConnectorError:
    # aiohttp's own connection error, carrying the refusal: both routes already read it back
    return aiohttp.ClientConnectorError(req.connection_key, AddressRefused(reason))


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
    """Why the address a connection reached is refused, or None (asked by the connector, before a
    request is sent)."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    return peer_refusal(peer, allow_private)


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
