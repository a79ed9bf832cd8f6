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

from schemas.atomic import atomic_path, atomic_write_text  # noqa: E402

METRICS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
VALIDATION = ("recall@10", "ndcg@10")


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


PROVENANCE = (("release_path", "release"), ("manifest_sha256", "manifest sha256"),
              ("toolkit_version", "toolkit"), ("torch_version", "torch"), ("python_version", "python"),
              ("device", "device"), ("seed", "seed"), ("started_at", "started"),
              ("wall_s", "wall time (s)"), ("epoch_wall_s", "seconds per epoch"))


def _e(value) -> str:
    return html.escape(str(value))


def _stats_section(release: Path) -> str:
    """The release's statistics in the `stats` command's order and formatting."""
    from pipelines.stats import TABLE_ROWS, format_stat
    stats_file = release / "stats.json"
    if not stats_file.exists():
        return f"<p>No stats.json in the release (run <code>pixelrec stats --release {_e(release)}</code>).</p>"
    stats = json.loads(stats_file.read_text())
    cells = "".join(f"<tr><th>{_e(label)}</th><td>{_e(format_stat(key, stats[key]))}</td></tr>"
                    for label, key in TABLE_ROWS if key in stats)
    images = "".join(_img(p.read_bytes(), p.stem) for p in sorted((release / "stats").glob("*.png")))
    return f"<table>{cells}</table><div class=figs>{images}</div>"


def _metric_cells(values: dict, metrics=METRICS) -> str:
    return "".join(f"<td>{values[m]:.4f}</td>" if m in values else "<td>-</td>" for m in metrics)


def _paper_cells(band: dict | None) -> str:
    """Paper R@10 and N@10 with our band, or why there is none."""
    if band is None:
        return ""
    if band["status"] == "no band":
        return f"<td colspan=3 class=muted>no band: {_e(band['detail'].split(': ', 1)[-1])}</td>"
    cells = "".join(f"<td>{b['paper']:.4f}<br><small>[{b['low']:.4f}, {b['high']:.4f}]</small></td>"
                    for b in (band["bands"]["recall@10"], band["bands"]["ndcg@10"]))
    return f"{cells}<td class={band['status']}>{band['status']}</td>"


def _notes(row: dict) -> str:
    notes = []
    if row.get("random_encoder"):
        notes.append(f"encoder {row['random_encoder']} randomly initialised (no pre-trained weights)")
    if row.get("convergence"):
        notes.append(row["convergence"])
    return "<br>".join(_e(n) for n in notes)


def _leaderboard(rows: list[dict], bands: dict | None) -> str:
    """Test metrics, validation metrics, epochs, the paper's figure (official releases), notes."""
    head = "".join(f"<th>{m}</th>" for m in METRICS)
    paper_head = ("<th>paper R@10<br><small>[band]</small></th><th>paper N@10<br><small>[band]"
                  "</small></th><th>band</th>") if bands is not None else ""
    body = []
    for row in rows:
        if row["status"] == "ok":
            cells = (_metric_cells(row["test"]) + _metric_cells(row.get("validation", {}), VALIDATION)
                     + (f"<td>{row.get('best_epoch')} / {row.get('epochs_run')}</td>"
                        if row.get("epochs_run") else "<td>-</td>")
                     + (_paper_cells(bands.get(row["name"])) if bands is not None else ""))
        else:
            span = len(METRICS) + len(VALIDATION) + 1 + (3 if bands is not None else 0)
            cells = f"<td colspan={span} class=muted>{_e(row['status'])}: {_e(row['reason'])}</td>"
        body.append(f"<tr><th>{_e(row['name'])}</th><td>{_e(row['role'])}</td>{cells}"
                    f"<td class=note>{_notes(row)}</td></tr>")
    valid_head = "".join(f"<th>valid {m}</th>" for m in VALIDATION)
    return (f"<table><tr><th>model</th><th>family</th>{head}{valid_head}<th>best / run epochs</th>"
            f"{paper_head}<th>notes</th></tr>{''.join(body)}</table>")


def _checks(checks: list[dict]) -> str:
    def status(c):
        return "not run" if c["status"] == "skipped" else c["status"]
    items = "".join(f"<li class={c['status']}><b>{status(c)}</b> {_e(c.get('name', c['kind']))}: "
                    f"{_e(c['detail'])}</li>" for c in checks)
    return f"<ul>{items}</ul>" if items else "<p>The suite has no checks.</p>"


def _paper_section(results: dict) -> str:
    if not results.get("official"):
        note = results.get("official_note") or ("the release is not the official data (manifest "
                                                "build.source 'official' with the published counts)")
        return f"<p>No comparison with the paper's figures: {_e(note)}.</p>"
    from .bands import RELATIVE_ID, RELATIVE_IMAGE, Z
    return (f"<p>The release is the official {_e(results['official'])}. Each run the paper reports "
            f"(same model, encoder and settings) must land within a band around its published "
            f"figure on Recall@10 and NDCG@10: {RELATIVE_ID:.0%} of the figure for ID models, "
            f"{RELATIVE_IMAGE:.0%} for image models, plus {Z:g} x sqrt(2) sampling errors over the "
            f"test users.</p>{_checks(results.get('bands', []))}")


def _provenance(rows: list[dict]) -> str:
    head = "".join(f"<th>{_e(label)}</th>" for _, label in PROVENANCE)
    body = []
    for row in rows:
        if row["status"] != "ok":
            continue
        file = Path(row.get("run_folder", "")) / "provenance.json"
        if not row.get("run_folder") or not file.is_file():
            body.append(f"<tr><th>{_e(row['name'])}</th><td colspan={len(PROVENANCE)} class=muted>"
                        f"not recorded</td></tr>")
            continue
        record = json.loads(file.read_text())
        body.append(f"<tr><th>{_e(row['name'])}</th>" + "".join(
            f"<td>{_e(_provenance_value(key, record.get(key)))}</td>" for key, _ in PROVENANCE) + "</tr>")
    return f"<table><tr><th>run</th>{head}</tr>{''.join(body)}</table>"


def _provenance_value(key: str, value) -> str:
    if value is None:
        return "not recorded"
    if key == "manifest_sha256":
        return str(value)[:12]
    if key == "epoch_wall_s" and isinstance(value, list):
        return ", ".join(f"{v:.1f}" for v in value[:5]) + (" ..." if len(value) > 5 else "")
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _reproduce(rows: list[dict]) -> str:
    items = "".join(f"<li><b>{_e(r['name'])}</b>:<br>" + "<br>".join(
        f"<code>{_e(step)}</code>" for step in r.get("steps") or [r["command"]]) + "</li>"
        for r in rows if r["status"] == "ok")
    return f"<ul>{items}</ul>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child{text-align:left}img{max-width:480px;margin:4px}li.failed{color:#b00}
li.passed{color:#070}li.skipped{color:#777}code{font-size:90%}.muted{color:#777;text-align:left}
td.note{text-align:left;font-size:85%;color:#a60}td.failed{color:#b00}td.passed{color:#070}"""


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
    bands = ({b["model"]: b for b in results.get("bands", [])} if results.get("official") else None)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>PixelRec validation: {_e(release.name)}</title><style>{STYLE}</style></head><body>
<h1>Validation of <code>{_e(release)}</code></h1>
<p>Suite <b>{_e(results['suite'])}</b> on {_e(results['device'])}: <b>{verdict}</b>.
Metrics are on the test split (leave-one-out, full ranking over all items, history masked),
from the checkpoint with the best validation NDCG@10; the validation columns are that
checkpoint's.</p>
<h2>Release statistics</h2>{_stats_section(release)}
<h2>Leaderboard</h2>{_leaderboard(results['leaderboard'], bands)}
<h2>Cold to hot, and popularity bias</h2><div class=figs>{charts}</div>
<h2>Checks</h2>{_checks(results['checks'])}
<h2>The paper's figures</h2>{_paper_section(results)}
<h2>Provenance</h2>{_provenance(results['leaderboard'])}
<h2>How to reproduce each number</h2>{_reproduce(results['leaderboard'])}
</body></html>"""
    return atomic_write_text(folder / "report.html", page)
