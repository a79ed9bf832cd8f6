"""Stage 6: the paper's Table 2/3 figures and Figures 5-6 for a release folder.

stats.json holds the counts and both distributions as exact histograms (session length -> users,
interactions per item -> items); stats/*.png draws item popularity by rank (log-log) and the
session-length histogram. Everything is computed from the release's own files, so it works on
built, imported and downloaded releases alike.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from schemas.atomic import atomic_path, atomic_write_text
from schemas.io import check_schema

from .engine import as_input_error, parquet_rows, result_or_here, session, spawn_pool, sql_path


def compute_stats(release: str | Path, con=None) -> dict:
    """The figures of a release folder; `con` is a DuckDB session to reuse (else a new one)."""
    release = Path(release)
    path = release / "interactions.parquet"
    check_schema(path, "interactions")
    check_schema(release / "items.parquet", "items")
    if con is None:
        with session(release.parent) as own:
            return compute_stats(release, own)
    src = f"read_parquet({sql_path(path)})"
    with as_input_error(str(path)):
        sessions = con.execute(f"""SELECT n, count(*) FROM (SELECT count(*) AS n FROM {src} GROUP BY user_id)
                                   GROUP BY n ORDER BY n""").fetchall()
        popularity = con.execute(f"""SELECT n, count(*) FROM (SELECT count(*) AS n FROM {src} GROUP BY item_id)
                                     GROUP BY n ORDER BY n""").fetchall()
    return stats_from_histograms(sessions, popularity, parquet_rows(release / "items.parquet"))


def stats_from_histograms(sessions: list[tuple[int, int]], popularity: list[tuple[int, int]],
                          catalog: int) -> dict:
    """The figures from the two histograms, (n, count) ascending by n: users with n interactions
    and items with n interactions; `catalog`: the rows of items.parquet."""
    users = sum(c for _, c in sessions)
    items = sum(c for _, c in popularity)
    interactions = sum(n * c for n, c in sessions)
    return {
        "users": users,
        "items": items,
        "items_in_catalog": catalog,
        "interactions": interactions,
        "avg_interactions_per_user": round(interactions / users, 4) if users else 0.0,
        "avg_interactions_per_item": round(interactions / items, 4) if items else 0.0,
        "sparsity": round(1 - interactions / (users * items), 6) if users and items else 0.0,
        "min_session_length": sessions[0][0] if sessions else 0,
        "max_session_length": sessions[-1][0] if sessions else 0,
        "median_session_length": _median(sessions),
        "max_item_interactions": popularity[-1][0] if popularity else 0,
        "min_item_interactions": popularity[0][0] if popularity else 0,
        "session_length_histogram": {str(n): c for n, c in sessions},
        "item_popularity_histogram": {str(n): c for n, c in popularity},
    }


class UsageCounts:
    """The two histograms counted from a stream of rows grouped by whole users, for a release
    whose interactions are being written."""

    def __init__(self):
        self.per_length = np.zeros(1, np.int64)  # users by number of interactions
        self.per_item = np.zeros(1, np.int64)    # interactions by item number

    def add(self, session_lengths: np.ndarray, items: np.ndarray) -> None:
        """Whole users' rows: the rows of each user, and the item number of each row."""
        if len(items):
            self.per_length = _added(self.per_length, np.bincount(session_lengths))
            self.per_item = _added(self.per_item, np.bincount(items))

    def items_used(self) -> np.ndarray:
        """Item numbers with at least one interaction, ascending."""
        return np.flatnonzero(self.per_item)

    def histograms(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(sessions, popularity) as compute_stats reads them: (n, count) pairs ascending by n."""
        by_popularity = np.bincount(self.per_item[self.per_item > 0])
        return _pairs(self.per_length), _pairs(by_popularity)


def _added(total: np.ndarray, more: np.ndarray) -> np.ndarray:
    if len(more) > len(total):
        total, more = more.astype(np.int64), total
    total[:len(more)] += more
    return total


def _pairs(counts: np.ndarray) -> list[tuple[int, int]]:
    present = np.flatnonzero(counts)
    return [(int(n), int(counts[n])) for n in present]


def _median(histogram) -> float:
    total = sum(c for _, c in histogram)
    if not total:
        return 0.0
    seen, lower = 0, None
    for value, count in histogram:
        seen += count
        if lower is None and seen >= (total + 1) // 2:
            lower = value
        if seen >= total // 2 + 1:
            return float((lower + value) / 2) if total % 2 == 0 else float(lower)
    return float(lower)


TABLE_ROWS = [("#users", "users"), ("#items", "items"), ("#interactions", "interactions"),
              ("avg interactions / user", "avg_interactions_per_user"),
              ("avg interactions / item", "avg_interactions_per_item"), ("sparsity", "sparsity"),
              ("min session length", "min_session_length"), ("max session length", "max_session_length"),
              ("median session length", "median_session_length"),
              ("max interactions / item", "max_item_interactions")]


def format_stat(key: str, value) -> str:
    """One statistic as `stats` prints it (sparsity in percent, counts with thousands separators)."""
    return f"{value:.4%}" if key == "sparsity" else (f"{value:,}" if isinstance(value, int) else f"{value:,.2f}")


def format_table(stats: dict, name: str) -> str:
    width = max(len(label) for label, _ in TABLE_ROWS)
    lines = [f"{'release':<{width}}  {name}"]
    for label, key in TABLE_ROWS:
        lines.append(f"{label:<{width}}  {format_stat(key, stats[key])}")
    return "\n".join(lines)


def write_stats(release: str | Path, con=None, out: str | Path | None = None) -> dict:
    """Compute the stats, write stats.json and stats/*.png (into folder `out`, default the release
    itself); return the stats."""
    release = Path(release)
    stats = compute_stats(release, con)
    save_stats(stats, Path(out) if out is not None else release)
    return stats


def save_stats(stats: dict, folder: str | Path, plots: BackgroundPlots | None = None) -> None:
    """stats.json and stats/*.png of `stats` into `folder`; the PNGs are drawn by `plots` when
    given (then they are there once its wait() returns)."""
    folder = Path(folder)
    atomic_write_text(folder / "stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    if plots is None:
        _plot(stats, folder / "stats")
    else:
        plots.draw(stats, folder / "stats")


class BackgroundPlots:
    """Draws stats PNGs in a process of its own while the caller goes on (a build writes its
    next release meanwhile). Drawing holds the GIL for about a second a release, and the release
    files keep both cores busy but not quite all the time: a process of its own draws in those
    gaps instead of holding back the threads that encode the files. The PNGs are the same bytes
    as drawn in place. Use as a context manager; wait() before reading the PNGs.

    background=False draws in place (a small build: starting the process costs more than the
    drawing); so does a process that cannot be started (a script read from standard input)."""

    def __init__(self, background: bool = True):
        self.background = background

    def __enter__(self) -> BackgroundPlots:
        self._pool = None
        if self.background:
            self._pool = spawn_pool(1)
        self._pending: dict = {}  # folder -> (stats, future)
        return self

    def draw(self, stats: dict, folder: Path) -> None:
        folder = Path(folder)
        if self._pool is None:
            _plot(stats, folder)
        else:
            self._pending[folder] = (stats, self._pool.submit(_plot, stats, folder))

    def wait(self, folder: Path | None = None) -> None:
        """Until the PNGs asked for `folder` (default: every folder) are written, raising the
        first failure."""
        for path in [Path(folder)] if folder is not None else list(self._pending):
            stats, future = self._pending.pop(path, (None, None))
            if future is not None:
                result_or_here(future, _plot, stats, path)

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _plot(stats: dict, folder: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    popularity = sorted(((int(n), c) for n, c in stats["item_popularity_histogram"].items()), reverse=True)
    counts = np.repeat([n for n, _ in popularity], [c for _, c in popularity]) if popularity else np.zeros(0)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    if len(counts):
        ax.loglog(np.arange(1, len(counts) + 1), counts, linewidth=1)
    ax.set(xlabel="item rank", ylabel="interactions", title="Item popularity")
    _save(fig, folder / "item_popularity.png")
    sessions = sorted((int(n), c) for n, c in stats["session_length_histogram"].items())
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    if sessions:
        ax.bar([n for n, _ in sessions], [c for _, c in sessions], width=1.0)
    ax.set(xlabel="session length (interactions per user)", ylabel="users", title="Session length")
    _save(fig, folder / "session_length.png")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
