"""Deterministic fault injection: which request fails, and how.

A transient fault (5xx, slow, truncated body, the -352 challenge, or the code-0 answer that holds
only a v_voucher) is drawn from (seed, kind, path, query,
attempt number): the n-th request for one URL always meets the same fate, and a retry (the next
attempt) gets a fresh draw, so a crawler that retries can always finish. A cover fault (corrupt or
missing image) is a property of the cover itself (seed, kind, cover hash): the same cover is broken
on every attempt and at every size, as a broken file on a real image server would be.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from schemas.errors import InputError, split_assignment

TRANSIENT_KINDS = ("5xx", "slow", "truncate", "challenge", "voucher")
COVER_KINDS = ("corrupt_cover", "missing_cover")
PARAMS = {"slow_s": 1.0}  # tunables accepted in the same spec string, with their defaults


def unit_draw(*parts) -> float:
    """A uniform number in [0, 1) fixed by `parts` (stable across processes and Python versions)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass
class FaultSpec:
    rates: dict = field(default_factory=dict)   # kind -> probability in [0, 1]
    slow_s: float = PARAMS["slow_s"]

    @classmethod
    def parse(cls, text: str | None) -> "FaultSpec":
        """Parse "5xx=0.05,slow=0.02,truncate=0.02,corrupt_cover=0.05,missing_cover=0.02[,slow_s=1]"."""
        spec = cls()
        for item in (text or "").split(","):
            item = item.strip()
            if not item:
                continue
            name, value = split_assignment(item, "--faults", "NAME=NUMBER")
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is None:
                raise InputError(f"--faults: '{item}' is not NAME=NUMBER")
            if name in TRANSIENT_KINDS + COVER_KINDS:
                if not 0.0 <= number <= 1.0:
                    raise InputError(f"--faults: rate of {name} must be in [0, 1], got {value}")
                spec.rates[name] = number
            elif name == "slow_s":
                if number < 0 or number > 60:
                    raise InputError(f"--faults: slow_s must be in [0, 60], got {value}")
                spec.slow_s = number
            else:
                known = ", ".join(TRANSIENT_KINDS + COVER_KINDS + tuple(PARAMS))
                raise InputError(f"--faults: unknown fault '{name}' (known: {known})")
        return spec


class FaultPlan:
    """Decides faults for one server; counts attempts per URL (thread-safe, the count is tiny)."""

    def __init__(self, spec: FaultSpec, seed: int):
        self.spec = spec
        self.seed = seed
        # the transient kinds in play: with none, the server skips attempt counting altogether
        self.transient_kinds = tuple(k for k in TRANSIENT_KINDS if spec.rates.get(k, 0.0) > 0)
        self._attempts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def next_attempt(self, path: str, query: str) -> int:
        key = (path, query)
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
        return attempt

    def transient(self, path: str, query: str, attempt: int) -> str | None:
        """The transient fault for this attempt, or None. At most one kind per attempt."""
        for kind in self.transient_kinds:
            if unit_draw(self.seed, kind, path, query, attempt) < self.spec.rates[kind]:
                return kind
        return None

    def cover(self, cover_hash: str) -> str | None:
        """'missing_cover', 'corrupt_cover' or None for this cover, on every attempt."""
        for kind in ("missing_cover", "corrupt_cover"):
            rate = self.spec.rates.get(kind, 0.0)
            if rate > 0 and unit_draw(self.seed, kind, cover_hash) < rate:
                return kind
        return None

    def server_error_status(self, path: str, query: str, attempt: int) -> int:
        return (500, 502, 503, 504)[int(unit_draw(self.seed, "status", path, query, attempt) * 4)]


def canonical_query(query) -> str:
    """The query as a stable string: parameters sorted, so a=1&b=2 and b=2&a=1 are one URL."""
    return "&".join(f"{k}={v}" for k, v in sorted(query.items()))
