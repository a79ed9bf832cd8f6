"""Seconds and peak memory of each build stage, for the build report.

Peak RSS of a stage, DuckDB's memory included (it lives in this process): when the process's
high-water mark (VmHWM) rose during the stage, that mark is the stage's exact peak; otherwise the
stage stayed under an earlier peak and a background thread's samples of the current RSS (every
0.2 s) give it. The high-water mark is never reset, so outside tools (/usr/bin/time) still see the
whole run's peak. Without /proc the figure is the process's peak so far (ru_maxrss).
"""
from __future__ import annotations

import contextlib
import resource
import sys
import threading
import time

# the build's stages in order; "release files": one pass writes a release's interactions, splits
# and sequences, then its items
STAGES = ("ingest", "dedup", "anonymize", "subsets", "release files", "stats", "manifest hashing",
          "cards")


SAMPLE_S = 0.2


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_mib() -> float:
    peak = _status_mib("VmHWM:")
    if peak is not None:
        return peak
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class _Sampler(threading.Thread):
    """Largest current RSS seen while the stage runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.largest = _status_mib("VmRSS:") or 0.0

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            self.largest = max(self.largest, _status_mib("VmRSS:") or 0.0)

    def finish(self) -> float:
        self.stop.set()
        self.join()
        return max(self.largest, _status_mib("VmRSS:") or 0.0)


class StageClock:
    """Accumulates {stage: {"seconds", "peak_rss_mib"}}; a stage entered twice adds its seconds
    and keeps the larger peak (e.g. `splits` once per release)."""

    def __init__(self):
        self.stages: dict[str, dict] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        before = _peak_mib()
        sampler = _Sampler()
        sampler.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            sampled, after = sampler.finish(), _peak_mib()
            peak = after if after > before else (sampled or after)
            entry = self.stages.setdefault(name, {"seconds": 0.0, "peak_rss_mib": 0.0})
            entry["seconds"] = round(entry["seconds"] + seconds, 2)
            entry["peak_rss_mib"] = round(max(entry["peak_rss_mib"], peak), 1)

    def report(self) -> dict:
        known = [s for s in STAGES if s in self.stages]
        return {name: dict(self.stages[name]) for name in known + sorted(set(self.stages) - set(known))}


def format_stages(stages: dict) -> list[str]:
    """One line per stage: name, seconds, peak RSS; then the total time."""
    lines = [f"  {'stage':<18} {'seconds':>9} {'peak RSS MiB':>13}"]
    for name, entry in stages.items():
        lines.append(f"  {name:<18} {entry['seconds']:>9.1f} {entry['peak_rss_mib']:>13,.0f}")
    total = sum(e["seconds"] for e in stages.values())
    peak = max((e["peak_rss_mib"] for e in stages.values()), default=0.0)
    lines.append(f"  {'total':<18} {total:>9.1f} {peak:>13,.0f}")
    return lines
