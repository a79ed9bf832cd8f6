"""Which targets count as this machine: politeness may be relaxed for loopback hosts only."""
from __future__ import annotations

import ipaddress
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
