import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PIXELREC_QUIET", "1")


@pytest.fixture
def shared_dir():
    """../shared (read-only, optional): tests that need it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


def _share_cores_between_workers() -> None:
    """Under pytest-xdist each worker gets its share of the cores for torch's and BLAS's threads.

    Set before torch is imported, and inherited by the commands a test runs. Two workers with two
    threads each on two cores spend much of their time spinning while waiting for each other.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = share


_share_cores_between_workers()

SHARED_SCOPES = ("module", "class", "package")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Order the tests for pytest-xdist and keep each shared world on one worker.

    The minutes-long tests (`slow`) go first and the end-to-end ones (`e2e`) next, so that the short
    ones fill the other workers meanwhile. A test that reads a module-scoped fixture joins its
    module's `xdist_group`: under `--dist loadgroup` the module's tests run on one worker, which
    builds that world once instead of once per worker.
    """
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None,
                                 item.get_closest_marker("e2e") is None))
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None:
            continue
        if any(d.scope in SHARED_SCOPES for defs in fixtures.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
