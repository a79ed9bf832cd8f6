"""report.html of a validation: one self-contained page (images embedded as base64 PNG)."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from schemas.io import atomic_path, atomic_write_text  # noqa: E402

METRICS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def figure7(rows: list[dict]) -> bytes:
    """Recall@10 in 10 equal-size groups of test users, cold to hot target popularity."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for row in rows:
        groups = row["groups"]["figure7_recall_by_target_popularity"]
        ax.plot([g["group"] + 1 for g in groups], [g["recall@10"] for g in groups], marker="o",
                label=row["name"])
    ax.set_xlabel("test users grouped by target popularity (1 = coldest)")
    ax.set_ylabel("Recall@10")
    ax.set_title("Recall@10 by target popularity (Figure 7 style)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def figure8(rows: list[dict]) -> bytes:
    """Average popularity of each user's top-1 recommendation against the targets'."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [r["name"] for r in rows]
    top1 = [r["groups"]["figure8"]["top1_popularity_mean"] for r in rows]
    ax.bar(names, top1, color="#4c72b0", label="top-1 recommended item")
    if rows:
        ax.axhline(rows[0]["groups"]["figure8"]["target_popularity_mean"], color="#c44e52",
                   linestyle="--", label="test targets")
    ax.set_ylabel("average item popularity")
    ax.set_title("Popularity of top-1 recommendations (Figure 8 style)")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    ax.legend(fontsize=8)
    return _png(fig)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _stats_section(release: Path) -> str:
    stats_file = release / "stats.json"
    if not stats_file.exists():
        return "<p>No stats.json in the release (run <code>pixelrec stats</code>).</p>"
    stats = json.loads(stats_file.read_text())
    scalars = [(k, v) for k, v in stats.items() if isinstance(v, (int, float, str))]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:,.6g}</td></tr>" if isinstance(v, (int, float))
                    else f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in scalars)
    images = "".join(_img(p.read_bytes(), p.stem) for p in sorted((release / "stats").glob("*.png")))
    return f"<table>{cells}</table><div class=figs>{images}</div>"


def _leaderboard(rows: list[dict]) -> str:
    head = "".join(f"<th>{m}</th>" for m in METRICS)
    body = []
    for row in rows:
        if row["status"] == "ok":
            cells = "".join(f"<td>{row['test'][m]:.4f}</td>" for m in METRICS)
        else:
            cells = f"<td colspan=4>{html.escape(row['status'])}: {html.escape(row['reason'])}</td>"
        body.append(f"<tr><th>{html.escape(row['name'])}</th><td>{html.escape(row['role'])}</td>"
                    f"{cells}<td>{row.get('best_epoch', '')}</td></tr>")
    return (f"<table><tr><th>model</th><th>family</th>{head}<th>best epoch</th></tr>"
            f"{''.join(body)}</table>")


def _checks(checks: list[dict]) -> str:
    items = "".join(f"<li class={c['status']}><b>{c['status']}</b> {html.escape(c['kind'])}: "
                    f"{html.escape(c['detail'])}</li>" for c in checks)
    return f"<ul>{items}</ul>"


def _reproduce(rows: list[dict]) -> str:
    items = "".join(f"<li><b>{html.escape(r['name'])}</b>: <code>{html.escape(r['command'])}</code></li>"
                    for r in rows if r["status"] == "ok")
    return f"<ul>{items}</ul>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child{text-align:left}img{max-width:480px;margin:4px}li.failed{color:#b00}
li.passed{color:#070}li.skipped{color:#777}code{font-size:90%}"""


def write_report(folder: Path, results: dict, release: Path) -> Path:
    done = [r for r in results["leaderboard"] if r["status"] == "ok"]
    charts = ""
    if done:
        figures = {"figure 7": figure7(done), "figure 8": figure8(done)}  # render once: page and files
        charts = "".join(_img(png, alt) for alt, png in figures.items())
        for alt, png in figures.items():
            with atomic_path(folder / f"{alt.replace(' ', '')}.png") as tmp:
                Path(tmp).write_bytes(png)
    verdict = "all checks passed" if results["passed"] else "some checks FAILED"
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>PixelRec validation: {html.escape(release.name)}</title><style>{STYLE}</style></head><body>
<h1>Validation of <code>{html.escape(str(release))}</code></h1>
<p>Suite <b>{html.escape(results['suite'])}</b> on {html.escape(results['device'])}: <b>{verdict}</b>.
Metrics are on the test split (leave-one-out, full ranking over all items, history masked),
from the checkpoint with the best validation NDCG@10.</p>
<h2>Release statistics</h2>{_stats_section(release)}
<h2>Leaderboard</h2>{_leaderboard(results['leaderboard'])}
<h2>Cold to hot, and popularity bias</h2><div class=figs>{charts}</div>
<h2>Checks</h2>{_checks(results['checks'])}
<h2>How to reproduce each number</h2>{_reproduce(results['leaderboard'])}
</body></html>"""
    return atomic_write_text(folder / "report.html", page)
