"""The publisher's extracted item vectors (image, text) -> <release>/features/official_<kind>.npy.

The file's format is recognised from its content and name: .npy, .npz, .pt/.pth (torch.load with
weights_only=True), .pkl/.pickle (a restricted unpickler: plain containers, numbers, strings and
numpy arrays only; anything else is refused, never built), .parquet and .csv. Rows are mapped to
the release's items by an item-id key when the file has one (a dict of id -> vector, or an ids
column/array beside the vectors), else by row order, which must be the release's item order with
exactly one row per item (or one more, a zero padding row first, as the publisher's own arrays).
Anything else exits 2 naming what was found.

The result is laid out as `pixelrec extract-features` lays out its own (rows = PAD then the items
in item-number order, an index file and a description), so `pixelrec train --set
features=official_image` reads it as it reads any extracted features.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from schemas.errors import InputError
from schemas.atomic import atomic_path, atomic_write_text
from schemas.official_sources import official_feature_name

ID_KEYS = ("item_id", "item_ids", "ids", "items", "item")
VECTOR_KEYS = ("features", "feature", "vectors", "embeddings", "embedding", "emb", "x")
_SAFE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                 ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                 ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"),
                 ("builtins", "slice"), ("_codecs", "encode")}


def write_official_features(release: Path, kind: str, source: Path) -> Path:
    """Read `source`, map its rows to the release's items and write features/official_<kind>.*;
    returns the .npy path."""
    from pixelrec_data.baselines.models.vinet.features import release_item_ids, write_feature_index

    release = Path(release)
    stored_order = pq.read_table(release / "items.parquet", columns=["item_id"]).column(0).to_pylist()
    ids, vectors = read_vectors(source)
    rows = _rows_for(source, ids, vectors, stored_order)  # item id -> row of `vectors`
    order = release_item_ids(release)
    out = np.zeros((len(order) + 1, *vectors.shape[1:]), dtype=np.float32)
    out[1:] = vectors[np.array([rows[item] for item in order], dtype=np.int64)]
    name = official_feature_name(kind)
    folder = release / "features"
    write_feature_index(folder / f"{name}.index.parquet", order)
    meta = {"name": name, "encoder": {"name": f"the publisher's {kind} vectors", "init": "publisher",
                                      "weights": source.name, "weights_sha256": _sha256(source)},
            "layer": "pooled" if vectors.ndim == 2 else "spatial", "shape": list(out.shape),
            "dtype": "float32", "items": len(order), "blank_covers": None,
            "pixels_from": f"the publisher's file {source.name}", "row0": "PAD (zeros)",
            "order": "item number", "mapped_by": "item id" if ids is not None else "row order"}
    atomic_write_text(folder / f"{name}.json", json.dumps(meta, indent=2))
    with atomic_path(folder / f"{name}.npy") as tmp:  # the array appears last, described
        with open(tmp, "wb") as f:
            np.save(f, out)
    return folder / f"{name}.npy"


def read_vectors(path: Path) -> tuple[list[str] | None, np.ndarray]:
    """(item ids or None, vectors [N, ...]) from a features file of any supported format."""
    suffix = path.suffix.lower()
    readers = {".npy": _from_npy, ".npz": _from_npz, ".pt": _from_torch, ".pth": _from_torch,
               ".pkl": _from_pickle, ".pickle": _from_pickle, ".parquet": _from_parquet,
               ".csv": _from_csv}
    reader = readers.get(suffix) or _by_content(path)
    try:
        ids, vectors = reader(path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - each format's own errors: one line naming the file
        raise InputError(f"{path}: cannot read it as {suffix or 'a features file'} "
                         f"({' '.join(str(exc).split())[:160]})") from None
    vectors = np.asarray(vectors)
    if vectors.ndim < 2 or not np.issubdtype(vectors.dtype, np.number):
        raise InputError(f"{path}: found {_describe(vectors)}; expected one numeric vector per item")
    return ids, vectors


def _rows_for(path: Path, ids, vectors: np.ndarray, stored_order: list[str]) -> dict[str, int]:
    items = len(stored_order)
    if ids is not None:
        where = {str(item): row for row, item in enumerate(ids)}
        missing = [item for item in stored_order if item not in where]
        if missing:
            raise InputError(f"{path}: {len(where):,} rows keyed by item id, but no row for "
                             f"{len(missing):,} of the release's {items:,} items (e.g. {missing[0]})")
        return where
    if len(vectors) == items:
        return {item: row for row, item in enumerate(stored_order)}
    if len(vectors) == items + 1 and not np.any(vectors[0]):
        return {item: row + 1 for row, item in enumerate(stored_order)}
    raise InputError(f"{path}: {len(vectors):,} rows without item ids, but the release has "
                     f"{items:,} items (rows in item order must number {items:,}, or {items + 1:,} "
                     f"with a zero padding row first)")


# --- formats ----------------------------------------------------------------------------------
def _from_npy(path: Path):
    return None, np.load(path, allow_pickle=False, mmap_mode="r")


def _from_npz(path: Path):
    with np.load(path, allow_pickle=False) as archive:
        return _from_mapping({key: archive[key] for key in archive.files}, path)


def _from_torch(path: Path):
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(f"{path}: holds objects other than tensors and plain containers; refused "
                         f"(not unpickled): {' '.join(str(exc).split())[:120]}") from None
    return _from_object(_tensors_to_numpy(loaded), path)


def _from_pickle(path: Path):
    with open(path, "rb") as f:
        try:
            return _from_object(_RestrictedUnpickler(f).load(), path)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None


def _from_parquet(path: Path):
    table = pq.read_table(path)
    names = [n for n in table.column_names if n.lower() in ID_KEYS]
    ids = table.column(names[0]).to_pylist() if names else None
    rest = [n for n in table.column_names if n not in names]
    if len(rest) == 1 and str(table.schema.field(rest[0]).type).startswith(("list", "fixed_size_list",
                                                                            "large_list")):
        return ids, np.array(table.column(rest[0]).to_pylist(), dtype=np.float32)
    return ids, np.column_stack([table.column(n).to_numpy() for n in rest])


def _from_csv(path: Path):
    import polars as pl

    with open(path, "rb") as f:
        first = f.readline().decode("utf-8-sig", "replace").strip().split(",")
    has_header = any(not _is_number(cell) for cell in first)
    frame = pl.read_csv(path, has_header=has_header)
    names = [n for n in frame.columns if n.lower() in ID_KEYS] if has_header else []
    if not names and has_header and not _is_number(first[0]) and frame.dtypes[0] == pl.Utf8:
        names = [frame.columns[0]]  # an unnamed id column: strings first, numbers after
    ids = frame[names[0]].cast(pl.Utf8).to_list() if names else None
    return ids, frame.drop(names).to_numpy().astype(np.float32)


def _by_content(path: Path):
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        return _from_npy
    if head.startswith(b"PK\x03\x04"):  # npz and torch's zip format both start so
        return _from_npz if path.suffix.lower() == ".npz" else _from_torch
    if head.startswith(b"PAR1"):
        return _from_parquet
    if head[:1] == b"\x80":
        return _from_pickle
    raise InputError(f"{path}: not a features file this toolkit reads (it starts {head!r}; "
                     f"expected .npy, .npz, .pt, .pkl, .parquet or .csv)")


def _from_mapping(mapping: dict, path: Path):
    ids = next((mapping[k] for k in mapping if str(k).lower() in ID_KEYS), None)
    arrays = {k: v for k, v in mapping.items() if str(k).lower() not in ID_KEYS}
    named = [k for k in arrays if str(k).lower() in VECTOR_KEYS]
    if len(arrays) == 1 or named:
        vectors = arrays[named[0] if named else next(iter(arrays))]
        return (None if ids is None else [str(i) for i in np.asarray(ids).tolist()]), vectors
    if all(isinstance(k, str) for k in mapping) and all(np.ndim(v) >= 1 for v in mapping.values()):
        keys = list(mapping)  # item id -> vector
        return keys, np.stack([np.asarray(mapping[k], dtype=np.float32) for k in keys])
    raise InputError(f"{path}: found a mapping with keys {', '.join(map(str, list(mapping)[:6]))}; "
                     f"expected item id -> vector, or ids and vectors")


def _from_object(obj, path: Path):
    if isinstance(obj, dict):
        return _from_mapping(obj, path)
    if isinstance(obj, (list, tuple)) and len(obj) == 2 and np.ndim(obj[1]) >= 2:
        return [str(i) for i in obj[0]], obj[1]
    return None, obj


def _tensors_to_numpy(obj):
    if hasattr(obj, "detach"):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {k: _tensors_to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors_to_numpy(v) for v in obj)
    return obj


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds plain containers, numbers, strings and numpy arrays; refuses every other class."""

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise InputError(f"pickle wants to build {module}.{name}: refused (only plain containers "
                         f"and numpy arrays are read from a pickle)")


def _describe(value) -> str:
    array = np.asarray(value)
    return f"an array of shape {array.shape} and dtype {array.dtype}"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["read_vectors", "write_official_features"]
