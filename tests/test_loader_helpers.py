"""A tiny hand-built release for the loader, card and image tests (no tests in here)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from schemas.io import write_table
from schemas.tables import COUNT_COLUMNS

# user -> [(item number, timestamp)]; u1 has a timestamp tie (i10 and i2 at 200: item number order),
# u4 has only 2 interactions (no train rows), item ids have gaps as in a nested subset.
EVENTS = {
    0: [(0, 100), (2, 110), (3, 120), (5, 130), (7, 140), (8, 150)],
    1: [(10, 200), (2, 200), (5, 190), (0, 210), (8, 220)],
    2: [(3, 50), (5, 60), (7, 70), (10, 80), (12, 90), (0, 95), (2, 99)],
    3: [(12, 10), (8, 20), (0, 30), (2, 40), (3, 50)],
    4: [(7, 300), (5, 310)],
    10: [(2, 5), (3, 6), (5, 7), (7, 8), (8, 9)],
}
ITEMS = sorted({i for evs in EVENTS.values() for i, _ in evs})
MISSING_COVER = 12   # no file, covers.parquet status 'http_404'
CORRUPT_COVER = 10   # a file that is not a JPEG


def leave_one_out():
    """{split: [(user, item, ts)]} computed the plain way (sort, slice)."""
    out = {"train": [], "validation": [], "test": []}
    for user, evs in EVENTS.items():
        seq = sorted(evs, key=lambda e: (e[1], e[0]))
        rows = [(f"u{user}", f"i{i}", t) for i, t in seq]
        out["test"].append(rows[-1])
        if len(rows) >= 2:
            out["validation"].append(rows[-2])
        out["train"].extend(rows[:-2])
    return out


def cover_image(item: int, size=(64, 40)) -> Image.Image:
    rng = np.random.default_rng(item)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _table(rows):
    users, items, times = zip(*rows)
    return pa.table({"item_id": list(items), "user_id": list(users), "timestamp": list(times)})


def make_release(root: Path, name: str = "pixel200k", covers: bool = True) -> Path:
    rel = Path(root) / name
    n = len(ITEMS)
    items = {"item_id": [f"i{i}" for i in ITEMS]}
    items.update({c: list(range(n)) for c in COUNT_COLUMNS})
    items.update(title=[f"title {i}" for i in ITEMS], tag=["tag"] * n, description=["d"] * n,
                 cover_url=[f"http://x/{i}.jpg" for i in ITEMS], release_time=[1000 + i for i in ITEMS],
                 channel=["c"] * n, duration_s=pa.array([60] * n, pa.int32()))
    write_table(pa.table(items), rel / "items.parquet", "items")
    all_rows = [(f"u{u}", f"i{i}", t) for u, evs in EVENTS.items() for i, t in evs]
    inter = _table(all_rows).append_column("source", pa.array(["comment"] * len(all_rows)))
    write_table(inter, rel / "interactions.parquet", "interactions")
    for split, rows in leave_one_out().items():
        write_table(_table(rows), rel / "splits" / f"{split}.parquet", "split")
    if covers:
        _write_covers(rel)
    return rel


def _write_covers(rel: Path) -> None:
    (rel / "covers").mkdir(parents=True, exist_ok=True)
    status = []
    for i in ITEMS:
        if i == MISSING_COVER:
            status.append("http_404")
            continue
        path = rel / "covers" / f"i{i}.jpg"
        if i == CORRUPT_COVER:
            path.write_bytes(b"not a jpeg at all")
        else:
            buf = io.BytesIO()
            cover_image(i, (64 + i, 40 + 2 * i)).save(buf, "JPEG", quality=90)
            path.write_bytes(buf.getvalue())
        status.append("ok")
    n = len(ITEMS)
    write_table(pa.table({
        "item_id": [f"i{i}" for i in ITEMS], "status": status,
        "error": [None if s == "ok" else "404" for s in status], "sha256": [None] * n,
        "width": pa.array([None] * n, pa.int32()), "height": pa.array([None] * n, pa.int32()),
        "bytes": pa.array([None] * n, pa.int64()), "phash": [None] * n,
    }), rel / "covers.parquet", "covers")
