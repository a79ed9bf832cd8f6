"""Which targets count as this machine (politeness may be relaxed for loopback hosts only), and a
free local port for the servers the toolkit starts (simulator, tests, benchmarks)."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
