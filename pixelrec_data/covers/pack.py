"""pack-covers: the converter between the storage formats of covers (covers/store.py).

`pack(release, out, to)` reads the release's covers in the format it has (files first) and writes
them in format `to` into folder `out` (pipelines.finish moves that folder's parts into the
release). The default target, parquet, gives every column of items.parquet, in its order, plus
`image` ({bytes, path}, the Hugging Face Image encoding; null where the cover is missing or
failed), each shard closed once it holds about `shard_bytes` of image bytes (256 MB by default, the
size hubs serve well), row groups of 100 rows (so a reader decodes a few images at a time);
`_complete.json` lists the shards and their sha256 and is written last. The dataset card's
`<release>_items` config then reads the shards, so a plain `datasets.load_dataset(<folder>,
"<release>_items")` yields PIL images, and the folder pushed to a hub as it is carries its covers
in a few hundred large files instead of one file per item. webdataset gives tar shards of the same
size; files gives one file per cover.

The covers the release had stay (fetched data is the user's). A killed run leaves the release as
it was, and a rerun packs again from the start (packing is one sequential read of the covers).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from pixelrec_data.progress import bar
from schemas.errors import InputError

from . import store

DEFAULT_SHARD_BYTES = 256 * 1024 * 1024


def pack(release, out, to: str = "parquet", shard_bytes: int = DEFAULT_SHARD_BYTES) -> dict:
    """Write the covers of `release` in format `to` into folder `out`; return a summary (items,
    with_image, image_bytes, shards, and `rewritten`: the manifest paths now written)."""
    release, out = Path(release), Path(out)
    store.check_format(to)
    if not (release / "items.parquet").is_file():
        raise InputError(f"{release / 'items.parquet'}: no such file (not a release folder)")
    if shard_bytes < 1:
        raise InputError(f"--shard-mb must be positive, got {shard_bytes} bytes")
    items = pq.read_table(release / "items.parquet")
    ids = items.column("item_id").to_pylist()
    present = store.formats_present(release)
    source = next((f for f in present if f != to), None)
    if source is None:  # a one-line InputError when there are no covers in another format
        raise InputError(f"{store.files_dir(release)}: no covers to pack into {to} "
                         f"(run `pixelrec fetch-covers --release {release}`)" if not present else
                         f"{release}: its covers are already stored as {to} only")
    located = store.locate(release, ids, source)
    summary = {"items": len(ids), "with_image": 0, "image_bytes": 0, "format": to}

    def bodies(progress):
        for cover in located:
            data = store.read(cover.location) if cover.usable and store.looks_like_image(
                cover.location) else None
            summary["with_image"] += data is not None
            summary["image_bytes"] += len(data) if data else 0
            progress.update(1)
            yield data

    with bar(total=len(ids), desc="pack-covers", unit="cover") as progress:
        if to == "files":
            summary["shards"] = _write_files(release, out, ids, bodies(progress))
        else:
            summary["shards"] = store.FORMATS[to].write_shards(
                out, items, bodies(progress), shard_bytes, store.status_rows(release))
    summary["rewritten"] = (f"{store.FORMATS[to].folder}/",)
    return summary


def _write_files(release: Path, out: Path, ids: list[str], bodies) -> list[dict]:
    """One file per cover; the folder replaces the release's, so its fetch records come along."""
    from schemas.atomic import atomic_path

    if store.stats_dir(release).is_dir():
        shutil.copytree(store.stats_dir(release), store.stats_dir(out))
    written = 0
    for item_id, body in zip(ids, bodies):
        if body:
            with atomic_path(store.cover_file(out, item_id)) as tmp:
                tmp.write_bytes(body)
            written += 1
    return [{"file": store.FILES_DIR, "rows": written}]
