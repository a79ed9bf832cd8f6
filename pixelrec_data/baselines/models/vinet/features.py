"""ViNet's frozen image features: extraction to a release's features/ folder, and loading.

Layout (written by `pixelrec extract-features`):
    <release>/features/<encoder>_<layer>.npy        [I + 1, F] (pooled) or [I + 1, g, g, F] (spatial)
    <release>/features/<encoder>_<layer>.json       encoder description, dtype, counts, item order
    <release>/features/<encoder>_<layer>.index.parquet   row -> item_id (row 0 = PAD, null)
Rows follow the trainer's internal ids (data/interactions.py): row 0 is PAD (zeros), then the items of
items.parquet in item-number order, as the official RN50.npy (`[item_num, F]`, row 0 = PAD). The
index is written anyway, and `aligned_features` maps by item id, so a reader never relies on order.
Covers come from the prepared image cache (pixelrec_data.covers.cache) when there is one for the
release, else each cover is read through covers/store.py, in whichever format the release stores
it, and decoded with Pillow (squashed to size x size, bilinear, the official generate_lmdb
transform). An item without a readable cover (or whose status is not 'ok') gets the features of
the blank (all-zero normalised) image, and the count is recorded in the JSON.

Resumable: rows are written into `.<name>.npy.partial`, and `.<name>.npy.partial.json` records how
many are done and for which inputs (encoder, weights file, size, dtype, seed, item ids). A rerun after
a kill continues from there when the inputs are the same, else starts over; the finished array is
renamed into place, and temporary files of earlier killed runs are removed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pixelrec_data.baselines.encoders import EncoderConfig, ImageEncoder
from pixelrec_data.covers import store
from schemas.errors import InputError
from schemas.atomic import atomic_path, atomic_write_text

LAYERS = ("pooled", "spatial")


def feature_name(encoder: str, layer: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', encoder)}_{layer}"


def release_item_ids(release: Path) -> list[str]:
    """items.parquet ids in item-number order (the trainer's internal order), PAD excluded."""
    path = Path(release) / "items.parquet"
    if not path.exists():
        raise InputError(f"{path}: no such file (is --release a release folder?)")
    try:
        ids = pq.read_table(path, columns=["item_id"]).column("item_id").to_pylist()
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise InputError(f"{path}: cannot read item_id ({str(exc).splitlines()[0]})") from None
    if all(re.fullmatch(r"i[0-9]{1,18}", s or "") for s in ids):
        return sorted(ids, key=lambda s: int(s[1:]))
    return sorted(ids)


def decode_cover(location: str | None, size: int) -> np.ndarray | None:
    """A cover (a location of covers/store.py) as uint8 [size, size, 3] (RGB, squashed,
    bilinear), or None when unreadable."""
    from PIL import Image, UnidentifiedImageError

    source = store.open_image(location)
    if source is None:
        return None
    try:
        with Image.open(source) as img:
            img = img.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.array(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


class CoverReader:
    """uint8 covers by item id, from the image cache when available, else from JPEG files."""

    def __init__(self, release: Path, item_ids: list[str], size: int):
        self.release, self.item_ids, self.size = Path(release), item_ids, size
        self.cache = _open_image_cache(self.release, item_ids, size)
        present = store.formats_present(self.release) if self.cache is None else []
        self.source = "image-cache" if self.cache is not None else (
            f"{store.FILES_DIR}/*.jpg" if present[:1] == ["files"] else ", ".join(present[:1]))
        self.locations = {c.item_id: c.location if c.usable else None
                          for c in store.locate(self.release, item_ids)} if present else {}

    def batch(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(pixels [n, S, S, 3], blank [n]) for items start..stop-1 of item_ids."""
        if self.cache is not None:
            return self.cache(start, stop)
        out = np.zeros((stop - start, self.size, self.size, 3), dtype=np.uint8)
        blank = np.zeros(stop - start, dtype=bool)
        for j, item in enumerate(self.item_ids[start:stop]):
            pixels = decode_cover(self.locations.get(item), self.size)
            if pixels is None:
                blank[j] = True
            else:
                out[j] = pixels
        return out, blank


def _open_image_cache(release: Path, item_ids: list[str], size: int):
    """A reader over the prepared image cache (images.py, squash mode), or None when absent."""
    try:
        from pixelrec_data.covers.cache_reader import ImageCache
        from pixelrec_data.covers.cache import is_current
    except ImportError:
        return None
    try:
        if not is_current(release, size, "squash"):
            return None
        cache = ImageCache(release, size, "squash")
        rows = cache.rows(item_ids)
    except (InputError, OSError):
        return None
    ok = np.array([status == "ok" for status in cache.status], dtype=bool)

    def read(start, stop):
        r = rows[start:stop]
        return np.asarray(cache.array[r]), ~ok[r]  # placeholder rows count as blank covers

    return read


def extract(release, encoder_name: str = "RN50", layer: str = "pooled", weights=None, size=None,
            batch_size: int = 64, dtype: str | None = None, device: str = "cpu", progress=None,
            seed: int = 0) -> Path:
    """Write <release>/features/<encoder>_<layer>.{npy,json,index.parquet}; returns the .npy path."""
    if layer not in LAYERS:
        raise InputError(f"--layer must be one of {', '.join(LAYERS)}, not {layer!r}")
    release = Path(release)
    item_ids = release_item_ids(release)
    torch.manual_seed(seed)  # a random-init tower (no weights file) is the same on every run
    try:
        encoder = ImageEncoder(EncoderConfig(name=encoder_name, tune_layers=0, method="pool",
                                             normalise="half", weights=weights)).to(device).eval()
    except ValueError as exc:
        raise InputError(f"--encoder: {exc}") from None
    size = size or encoder.image_size[0]
    reader = CoverReader(release, item_ids, size)
    dtype = dtype or ("float32" if layer == "pooled" else "float16")
    blank_x = torch.zeros(1, 3, *encoder.image_size, device=device)
    blank_feat = encoder.features(blank_x, layer)[0].cpu().numpy()
    name = feature_name(encoder_name, layer)
    out = release / "features" / f"{name}.npy"
    shape = (len(item_ids) + 1, *blank_feat.shape)
    key = _inputs_key(encoder_name, layer, weights, size, dtype, seed, item_ids)
    partial = Partial(out, key)
    arr, done, n_blank = partial.open(dtype, shape)
    if progress is not None and done:
        progress.update(done)
    for start in range(done, len(item_ids), batch_size):
        stop = min(start + batch_size, len(item_ids))
        pixels, blank = reader.batch(start, stop)
        x = encoder.normalise(torch.from_numpy(pixels).to(device))
        feats = encoder.features(x, layer).cpu().numpy()
        feats[blank] = blank_feat
        arr[1 + start:1 + stop] = feats
        n_blank += int(blank.sum())
        partial.checkpoint(arr, stop, n_blank)
        if progress is not None:
            progress.update(stop - start)
    arr.flush()
    del arr
    write_feature_index(release / "features" / f"{name}.index.parquet", item_ids)
    meta = {"name": name, "encoder": encoder.describe(), "layer": layer, "shape": list(shape),
            "dtype": dtype, "size": size, "seed": seed, "items": len(item_ids), "blank_covers": n_blank,
            "pixels_from": reader.source, "row0": "PAD (zeros)", "order": "item number"}
    atomic_write_text(release / "features" / f"{name}.json", json.dumps(meta, indent=2, default=str))
    partial.finish()  # the array appears last, described
    return out


def _inputs_key(encoder_name, layer, weights, size, dtype, seed, item_ids) -> str:
    """What the rows depend on; a partial file made from other inputs is not continued."""
    weights_id = None
    if weights is not None:
        stat = Path(weights).stat()
        weights_id = [str(Path(weights).resolve()), stat.st_size, stat.st_mtime_ns]
    ids = hashlib.sha256("\n".join(item_ids).encode()).hexdigest()
    return json.dumps([encoder_name, layer, weights_id, size, dtype, seed, ids])


class Partial:
    """The array being written (`.<name>.npy.partial`) and its progress record."""

    def __init__(self, out: Path, key: str):
        self.out, self.key = out, key
        self.path = out.with_name(f".{out.name}.partial")
        self.record = out.with_name(f".{out.name}.partial.json")

    def open(self, dtype: str, shape: tuple):
        """(memmap, rows done, blank covers so far): continued when the record matches."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.out.parent.glob(f".{self.out.name}.tmp-*"):  # killed earlier writers
            stale.unlink(missing_ok=True)
        state = _read_record(self.record)
        if state.get("key") == self.key and self.path.is_file():
            try:
                arr = np.lib.format.open_memmap(self.path, mode="r+")
                if arr.shape == tuple(shape) and str(arr.dtype) == dtype:
                    return arr, int(state["done"]), int(state["blank"])
                del arr
            except (ValueError, OSError):
                pass  # unreadable: start over
        self.record.unlink(missing_ok=True)
        arr = np.lib.format.open_memmap(self.path, mode="w+", dtype=dtype, shape=shape)
        arr[0] = 0  # PAD row
        return arr, 0, 0

    def checkpoint(self, arr, done: int, blank: int) -> None:
        arr.flush()  # rows first, then the record that vouches for them
        atomic_write_text(self.record, json.dumps({"key": self.key, "done": done, "blank": blank}))

    def finish(self) -> None:
        os.replace(self.path, self.out)
        self.record.unlink(missing_ok=True)


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_feature_index(path: Path, item_ids: list[str]) -> None:
    """<name>.index.parquet: row -> item_id, row 0 the padding (null)."""
    table = pa.table({"row": pa.array(np.arange(len(item_ids) + 1), pa.int64()),
                      "item_id": pa.array([None, *item_ids], pa.string())})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def load_features(release, name: str) -> tuple[np.ndarray, list]:
    """(array memory-mapped read-only, item ids per row) of <release>/features/<name>.npy."""
    path = Path(release) / "features" / f"{name}.npy"
    index = Path(release) / "features" / f"{name}.index.parquet"
    if not path.exists() or not index.exists():
        raise InputError(f"{path}: no features (run `pixelrec extract-features --release {release}` first)")
    arr = np.load(path, mmap_mode="r")
    ids = pq.read_table(index, columns=["item_id"]).column("item_id").to_pylist()
    if len(ids) != len(arr):
        raise InputError(f"{index}: {len(ids)} rows but {path.name} has {len(arr)}")
    return arr, ids


def aligned_features(release, name: str, item_tokens) -> np.ndarray:
    """Features with row i = item_tokens[i - 1] and row 0 = PAD (zeros).

    When the file is already in that order (the usual case) the read-only memory map itself is
    returned, so a [96K, 7, 7, 2048] spatial file is never loaded whole; else a float32 copy.
    """
    arr, ids = load_features(release, name)
    tokens = [str(t) for t in item_tokens]
    if ids[1:] == tokens and not np.any(arr[0]):
        return arr
    where = {item: row for row, item in enumerate(ids) if item is not None}
    missing = [t for t in tokens if t not in where]
    if missing:
        raise InputError(f"features {name}: no row for item {missing[0]} ({len(missing)} missing; re-extract)")
    rows = np.array([where[t] for t in tokens], dtype=np.int64)
    out = np.zeros((len(tokens) + 1, *arr.shape[1:]), dtype=np.float32)
    order = np.argsort(rows)
    out[1 + order] = arr[rows[order]]
    return out
