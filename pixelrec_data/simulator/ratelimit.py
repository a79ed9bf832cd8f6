"""Per-client rate limiting the way the platform answers it: HTTP 412 / -412, then the -352 challenge.

Each client address has a token bucket (`rate` tokens per second, `burst` deep). A request that finds
the bucket empty is answered 412 and blocks the client for `block_s` seconds: every request inside the
block is answered 412 too and counts as a strike. More than `abuse_limit` strikes in one block (a
client that ignores the 412s) earns the -352 risk-control challenge for `challenge_s` seconds. A client
that waits out the block starts again with a clean slate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

OK, BLOCKED, CHALLENGED = "ok", "blocked", "challenged"


@dataclass
class _Client:
    tokens: float
    stamp: float
    blocked_until: float = 0.0
    strikes: int = 0
    challenged_until: float = 0.0


@dataclass
class RateLimiter:
    rate: float                      # requests per second allowed per client
    burst: float | None = None       # bucket depth; defaults to max(1, rate)
    block_s: float = 1.0
    abuse_limit: int = 20
    challenge_s: float = 60.0
    clock: callable = time.monotonic
    _clients: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        self.burst = float(self.burst if self.burst is not None else max(1.0, self.rate))

    def check(self, client: str) -> str:
        """OK (the request is served), BLOCKED (answer 412/-412) or CHALLENGED (answer -352)."""
        now = self.clock()
        state = self._clients.get(client)
        if state is None:
            state = self._clients[client] = _Client(tokens=self.burst, stamp=now)
        if now < state.challenged_until:
            return CHALLENGED
        state.tokens = min(self.burst, state.tokens + (now - state.stamp) * self.rate)
        state.stamp = now
        if now < state.blocked_until:
            state.strikes += 1
            if state.strikes > self.abuse_limit:
                state.challenged_until = now + self.challenge_s
                state.strikes = 0
                return CHALLENGED
            return BLOCKED
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            state.strikes = 0
            return OK
        state.blocked_until = now + self.block_s
        state.strikes = 1
        return BLOCKED
