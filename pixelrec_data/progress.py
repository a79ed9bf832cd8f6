"""Progress reporting shared by long commands.

On a terminal, a tqdm bar on stderr. Anywhere else (a pipe, a file, CI) bars would write carriage-
return redraws into the log, so `bar` prints one line per finished step instead: what it counted,
how long it took and the rate. PIXELREC_QUIET=1 (or a command's --quiet) silences both.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager


def quiet() -> bool:
    return os.environ.get("PIXELREC_QUIET", "") not in ("", "0")


def interactive() -> bool:
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(total=None, desc="", unit="it", line=True, **kwargs):
    """A tqdm-like bar: tqdm on a terminal, a LineProgress elsewhere (line=False: no line, for a
    step whose caller logs its own)."""
    if quiet() or not interactive():
        return LineProgress(total=total, desc=desc, unit=unit, silent=quiet() or not line,
                            unit_scale=bool(kwargs.get("unit_scale")))
    from tqdm.auto import tqdm  # here, not at import: every command module imports this one

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, **kwargs)


class LineProgress:
    """The subset of tqdm's interface our commands use; one line on stderr when closed."""

    def __init__(self, total=None, desc="", unit="it", silent=False, unit_scale=False):
        self.total, self.desc, self.unit, self.silent = total, desc, unit, silent
        self.unit_scale = unit_scale
        self.n = 0
        self.postfix: dict = {}
        self.started = time.perf_counter()
        self.closed = False

    def update(self, n=1):
        self.n += n

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfix.update(ordered_dict or {}, **kwargs)

    def set_description(self, desc=None, refresh=True):
        self.desc = desc or ""

    def refresh(self):
        pass

    def close(self):
        if self.closed:
            return
        self.closed = True
        if not self.silent:
            print(self.summary(), file=sys.stderr, flush=True)

    def summary(self) -> str:
        seconds = time.perf_counter() - self.started
        count = _amount(self.n, self.unit_scale)
        done = f"{count}/{_amount(self.total, self.unit_scale)}" if self.total else count
        rate = f", {_amount(self.n / seconds, self.unit_scale)} {self.unit}/s" if seconds > 0 and self.n else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        return f"{self.desc}: {done} {self.unit} in {seconds:.1f}s{rate}{extra}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _amount(value, scale: bool) -> str:
    if not scale:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    for prefix in ("", "k", "M", "G", "T"):
        if abs(value) < 1000:
            return f"{value:.1f}{prefix}"
        value /= 1000
    return f"{value:.1f}P"


@contextmanager
def step(name: str, log=None):
    """Print '<name> ...' then '<name> done in Xs' around a block."""
    log = log or (lambda msg: None if quiet() else print(msg, flush=True))
    start = time.perf_counter()
    log(f"{name} ...")
    yield
    log(f"{name} done in {time.perf_counter() - start:.1f}s")
