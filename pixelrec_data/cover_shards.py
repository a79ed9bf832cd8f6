"""pack-covers: the covers inside Parquet shards, as a `datasets.Image` column of the items table.

`pack_covers(release)` writes `<release>/cover_shards/items-NNNNN.parquet`: every column of
items.parquet, in its order, plus `image` ({bytes, path}, the Hugging Face Image encoding; null
where the cover is missing or failed), each shard closed once it holds about `shard_bytes` of image
bytes (256 MB by default, the size hubs serve well), row groups of 100 rows (so a reader decodes a
few images at a time). `_complete.json` lists the shards and their sha256 and is written last; the
dataset card's `<release>_items` config then reads the shards, so a plain
`datasets.load_dataset(<folder>, "<release>_items")` yields PIL images, and the folder pushed to a hub
as it is carries its covers in a few hundred large files instead of one file per item.

The covers/ folder stays (fetched data is the user's). The shards are written in a temporary
folder that replaces cover_shards/ in one rename: a killed run leaves the previous state, and a
rerun packs again from the start (packing is one sequential read of the covers).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.errors import InputError
from schemas.io import atomic_dir, atomic_write_text

from pipelines.card import COVER_SHARDS_DIR, write_cards
from pipelines.finish import update_release
from schemas.lifecycle import release_lock

from .loader import cover_paths
from .progress import bar

DEFAULT_SHARD_BYTES = 256 * 1024 * 1024
ROWS_PER_GROUP = 100
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def shard_schema(items_schema: pa.Schema) -> pa.Schema:
    """The items schema plus `image`, with the `datasets` features in the schema metadata (so
    `datasets.Features.from_arrow_schema` sees an Image column, not a struct)."""
    from datasets import Features, Image  # heavy import, only when packing

    schema = pa.schema(list(items_schema.remove_metadata()) + [pa.field("image", IMAGE_TYPE)])
    features = Features.from_arrow_schema(schema.remove_metadata())
    features["image"] = Image()
    meta = {b"huggingface": json.dumps({"info": {"features": features.to_dict()}}).encode()}
    return schema.with_metadata(meta)


def pack_covers(release, shard_bytes: int = DEFAULT_SHARD_BYTES) -> dict:
    """Write cover_shards/ for `release` (under its lock), then list the shards in its manifest
    (verify and publish vouch for them) and refresh its dataset card; returns a summary with
    `manifest_updated`."""
    release = Path(release)
    if not (release / "items.parquet").is_file():
        raise InputError(f"{release / 'items.parquet'}: no such file (not a release folder)")
    if shard_bytes < 1:
        raise InputError(f"--shard-mb must be positive, got {shard_bytes} bytes")
    with release_lock(release, "pack-covers"):
        summary = _pack(release, shard_bytes)
        summary["manifest_updated"] = (release / "manifest.json").is_file()
        if summary["manifest_updated"]:
            update_release(release, (f"{COVER_SHARDS_DIR}/",))
        else:
            write_cards(release)
    return summary


def _pack(release: Path, shard_bytes: int) -> dict:
    items = pq.read_table(release / "items.parquet")
    ids = items.column("item_id").to_pylist()
    paths = cover_paths(release, ids)  # a one-line InputError when there are no covers
    schema = shard_schema(items.schema)
    summary = {"items": len(ids), "with_image": 0, "image_bytes": 0, "shards": []}
    with atomic_dir(release / COVER_SHARDS_DIR) as tmp, \
            bar(total=len(ids), desc="pack-covers", unit="cover") as progress:
        start, pending, size = 0, [], 0
        for row, path in enumerate(paths):
            data = Path(path).read_bytes() if path else None
            pending.append({"bytes": data, "path": f"{ids[row]}.jpg"} if data else None)
            size += len(data) if data else 0
            summary["with_image"] += data is not None
            summary["image_bytes"] += len(data) if data else 0
            progress.update(1)
            if size >= shard_bytes:
                summary["shards"].append(_write_shard(tmp, items.slice(start, len(pending)), pending,
                                                      schema, len(summary["shards"])))
                start, pending, size = row + 1, [], 0
        if pending or not summary["shards"]:
            summary["shards"].append(_write_shard(tmp, items.slice(start, len(pending)), pending,
                                                  schema, len(summary["shards"])))
        atomic_write_text(tmp / "_complete.json", json.dumps(
            {"shards": [s["file"] for s in summary["shards"]],
             "sha256": {s["file"]: s["sha256"] for s in summary["shards"]}}, indent=1) + "\n")
    return summary


def _write_shard(folder: Path, rows: pa.Table, images: list, schema: pa.Schema, index: int) -> dict:
    name = f"items-{index:05d}.parquet"
    table = rows.append_column("image", pa.array(images, IMAGE_TYPE)).cast(schema)
    # images are already compressed: no codec on top of them (readers skip a decompression pass)
    codecs = {c: "none" if c == "image" else "zstd" for c in schema.names}
    pq.write_table(table, folder / name, row_group_size=ROWS_PER_GROUP, compression=codecs,
                   use_dictionary=[c for c in schema.names if c != "image"])
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return {"file": name, "rows": table.num_rows, "sha256": digest}
