"""Helpers of the hostile-input tests: run a command and measure its peak memory; list what a
folder holds; check that no secret bytes were written anywhere."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEAK_RSS_LIMIT_MB = 300
SECRET = b"INTERNAL-SERVICE-SECRET-7f3a"  # what an internal service answers: must never be stored


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float


# The child writes its own VmHWM (peak RSS of its address space) when it exits. Not ru_maxrss:
# Linux counts in it the parent's resident pages at fork/exec time (the test process's own size).
CHILD = """import atexit, sys
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            open(sys.argv[1], 'w').write(line.split()[1])
atexit.register(_peak)
from pixelrec_data.cli import main
main(sys.argv[2:])
"""


def run_measured(*args, timeout: float = 90.0) -> Measured:
    """`pixelrec ARGS` in a child process, with the child's own peak RSS."""
    env = {**os.environ, "PIXELREC_QUIET": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        try:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(peak_file), *map(str, args)],
                                  cwd=ROOT, env=env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"pixelrec {args[0]} ran past {timeout:.0f} s") from exc
        peak_kib = int(peak_file.read_text()) if peak_file.exists() else 10 ** 9
        return Measured(proc.returncode, proc.stdout.decode(errors="replace"),
                        proc.stderr.decode(errors="replace"), peak_kib / 1024)


def assert_one_line_error(result: Measured, *words: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def assert_small(result: Measured) -> None:
    assert result.peak_rss_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {result.peak_rss_mb:.0f} MB"


def tree(folder: Path) -> set[str]:
    """Every path under `folder` (links not followed), relative."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def outside(root: Path, *inner: Path) -> set[str]:
    """Every path under `root` that is not under one of `inner` (relative to root)."""
    skip = [str(folder.relative_to(root)) for folder in inner]
    return {p for p in tree(root) if not any(p == s or p.startswith(s + "/") for s in skip)}


def assert_no_secret(*folders: Path) -> None:
    """No file under `folders` holds the internal service's answer (or a piece of it)."""
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                assert SECRET not in data and SECRET[:12] not in data, path
