"""Which network addresses the toolkit may fetch from, and a free local port for its own servers.

The address policy: URLs that come from data (cover URLs in items.parquet, redirects, mirror index
entries) may reach public addresses only, unless the user allows private ones
(`--allow-private-hosts`). Loopback, private (RFC 1918, fc00::/7), link-local, carrier-grade NAT,
multicast, reserved and unspecified addresses are "private" here. A URL the user types (`--mirror`,
`--base-url`) is taken as given: its origin (scheme, host, port), not its name on another port.
The policy is applied to every hop of a redirect chain (the host of an IP-literal URL), to every
name resolution (`public_only_resolver`) and, before a byte of a request is sent, to the addresses
a connection may reach and to the one it reached (`peer_refusal`), so a name that resolves to a
public address first and a private one later (DNS rebinding) is caught too. net.guarded applies it
to every request.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

ALLOW_HINT = "pass --allow-private-hosts to allow it"


def is_loopback(host_or_url: str) -> bool:
    """True for localhost and 127.0.0.0/8 / ::1, given a host name or a URL."""
    host = urlsplit(host_or_url).hostname if "://" in host_or_url else host_or_url
    host = (host or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_kind(address: str) -> str | None:
    """'loopback', 'private', 'link-local', ... for a non-public IP address; None for a public one
    (and for a string that is not an IP address: that is a name, checked when it resolves)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for kind, test in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
                       ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if test:
            return kind
    return None if ip.is_global else "non-public"


def host_refusal(host: str | None, allow_private: bool) -> str | None:
    """Why `host` (a URL's host: a name or an IP literal) may not be fetched, or None."""
    if allow_private:
        return None
    if not host:
        return "no host"
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is a loopback name; {ALLOW_HINT}"
    kind = address_kind(name)
    return f"{host} is a {kind} address; {ALLOW_HINT}" if kind else None


def url_refusal(url: str, allow_private: bool) -> str | None:
    """Why `url` may not be fetched: not http(s), or a host the policy refuses; None when fine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL"
    return host_refusal(parts.hostname, allow_private)


def peer_refusal(peername, allow_private: bool) -> str | None:
    """Why the address a connection reached (socket peername) is refused, or None."""
    if allow_private or not peername:
        return None
    kind = address_kind(str(peername[0]))
    return f"connected to a {kind} address; {ALLOW_HINT}" if kind else None


class AddressRefused(OSError):
    """A name resolved to no address the policy allows (an OSError, so aiohttp wraps it)."""


def public_only_resolver(allow_private: bool = False, trusted: tuple[str, ...] = ()):
    """An aiohttp resolver that drops the addresses the policy refuses (all allowed when
    allow_private); names in `trusted` (the host of a URL the user typed) resolve unfiltered.

    aiohttp is imported here, not at the top: the policy loads without it (the crawler and
    the demo use is_loopback and free_port)."""
    from aiohttp.resolver import ThreadedResolver

    trusted_names = {name.lower() for name in trusted}

    class PublicOnlyResolver(ThreadedResolver):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            infos = await super().resolve(host, port, family)
            if allow_private or host.lower() in trusted_names:
                return infos
            kept = [info for info in infos if address_kind(info["host"]) is None]
            if not kept:
                kind = address_kind(infos[0]["host"]) if infos else "no"
                raise AddressRefused(f"{host} resolves to a {kind} address; {ALLOW_HINT}")
            return kept

    return PublicOnlyResolver()


def refused_address(exc: BaseException) -> AddressRefused | None:
    """The AddressRefused behind an aiohttp connection error, if that is what it is."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, AddressRefused):
            return exc
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
