"""Progress reporting shared by long commands (tqdm on stderr, quiet when PIXELREC_QUIET=1)."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager


def quiet() -> bool:
    return os.environ.get("PIXELREC_QUIET", "") not in ("", "0")


def bar(total=None, desc="", unit="it", **kwargs):
    from tqdm.auto import tqdm  # here, not at import: every command module imports this one

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet(), dynamic_ncols=True, **kwargs)


@contextmanager
def step(name: str, log=None):
    """Print '<name> ...' then '<name> done in Xs' around a block."""
    log = log or (lambda msg: None if quiet() else print(msg, flush=True))
    start = time.perf_counter()
    log(f"{name} ...")
    yield
    log(f"{name} done in {time.perf_counter() - start:.1f}s")
