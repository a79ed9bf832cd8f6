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

from .engine import as_input_error, parquet_rows, session, sql_path


def compute_stats(release: str | Path, con=None, table_sql: str | None = None) -> dict:
    """The figures of a release folder; `con` is a DuckDB session to reuse (else a new one).

    table_sql: a DuckDB relation with columns unum, inum holding the same rows as the folder's
    interactions (the build passes its own table, to group by numbers instead of strings).
    """
    release = Path(release)
    path = release / "interactions.parquet"
    check_schema(path, "interactions")
    check_schema(release / "items.parquet", "items")
    if con is None:
        with session(release.parent) as own:
            return compute_stats(release, own, table_sql)
    src, user, item = ((f"(SELECT * FROM {table_sql})", "unum", "inum") if table_sql else
                       (f"read_parquet({sql_path(path)})", "user_id", "item_id"))
    with as_input_error(str(path)):
        sessions = con.execute(f"""SELECT n, count(*) FROM (SELECT count(*) AS n FROM {src} GROUP BY {user})
                                   GROUP BY n ORDER BY n""").fetchall()
        popularity = con.execute(f"""SELECT n, count(*) FROM (SELECT count(*) AS n FROM {src} GROUP BY {item})
                                     GROUP BY n ORDER BY n""").fetchall()
    users = sum(c for _, c in sessions)
    items = sum(c for _, c in popularity)
    interactions = sum(n * c for n, c in sessions)
    catalog = parquet_rows(release / "items.parquet")
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


def write_stats(release: str | Path, con=None, table_sql: str | None = None,
                out: str | Path | None = None) -> dict:
    """Compute the stats, write stats.json and stats/*.png (into folder `out`, default the release
    itself); return the stats."""
    release = Path(release)
    out = Path(out) if out is not None else release
    stats = compute_stats(release, con, table_sql)
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    _plot(stats, out / "stats")
    return stats


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
