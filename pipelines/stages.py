"""Seconds and peak memory of each build stage, for the build report.

Peak RSS per stage: on Linux the process's high-water mark (VmHWM) is reset at the start of each
stage (writing 5 to /proc/self/clear_refs) and read at its end, so each stage reports its own peak,
DuckDB's memory included (it lives in this process). Where that is not possible, the figure is the
process's peak so far (ru_maxrss), which never decreases.
"""
from __future__ import annotations

import contextlib
import resource
import sys
import time

STAGES = ("ingest", "dedup", "anonymize", "subsets", "splits", "stats", "sequences",
          "manifest hashing", "cards")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class StageClock:
    """Accumulates {stage: {"seconds", "peak_rss_mib"}}; a stage entered twice adds its seconds
    and keeps the larger peak (e.g. `splits` once per release)."""

    def __init__(self):
        self.stages: dict[str, dict] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        _reset_peak()
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            entry = self.stages.setdefault(name, {"seconds": 0.0, "peak_rss_mib": 0.0})
            entry["seconds"] = round(entry["seconds"] + seconds, 2)
            entry["peak_rss_mib"] = round(max(entry["peak_rss_mib"], _peak_mib()), 1)

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
