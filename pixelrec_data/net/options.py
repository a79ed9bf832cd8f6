"""The options object of the guarded HTTP core (no aiohttp import: commands build it cheaply)."""
from __future__ import annotations

from dataclasses import dataclass

CONNECT_TIMEOUT_S = 10.0  # at most this of the timeout waits for the TCP/TLS connection


@dataclass
class NetOptions:
    """What guards a route's requests; a route's options object extends it."""
    # addresses from data (cover URLs, redirects) reach loopback/private/link-local hosts only when
    # the user allows them; a URL the user typed is taken as given (see `follow`'s `trusted`)
    allow_private_hosts: bool = False
    allow_cross_host_redirects: bool = True  # a redirect away from the trusted origin
    max_redirects: int = 5
    max_bytes: int = 32 * 1024 * 1024  # a body over this is cut off
    timeout: float = 20.0  # seconds for an attempt (connecting: at most CONNECT_TIMEOUT_S of them)
    min_rate: float | None = None  # bytes/s: an attempt at N bytes may take timeout + N / min_rate
    retries: int = 3
    backoff: float = 1.0
