"""Prepared image cache: every cover decoded once into a memory-mapped uint8 array, for training.

Layout, in `<release>/images/` (S = size, M = mode):
- `images_S_M.npy`: uint8 array N x S x S x 3 (RGB, HWC), a plain .npy file (np.load(mmap_mode='r')).
  Row r is the r-th item of items.parquet (items order, not item number: subsets have gaps in ids).
- `images_S_M.index.parquet`: item_id, row, status ('ok' | 'missing' | 'failed'), error.
- `images_S_M.report.json`: counts, timing, and every placeholder row with its reason.
- `images_S_M.meta.json`: written last; its fingerprint (items, cover files, size, mode) says whether
  the cache is current. A cache without it is incomplete and is rebuilt.

Modes: `squash` = PIL bilinear resize to (S, S) ignoring the aspect ratio, after convert('RGB'):
the official generate_lmdb.py (torchvision Resize((S,S)) on a PIL image). `center_crop` =
bilinear resize of the short side to S, then the central S x S crop (torchvision Resize(S) +
CenterCrop(S) arithmetic). EXIF orientation is ignored, as in the official code. A large JPEG is
decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, PIL's draft; see draft_request) before
the same resize: 3-4x faster for large covers, close to a full decode (bench/official_covers.py
states the PSNR); `full_decode=True` gives the official code's pixels exactly.
Missing or undecodable covers become the placeholder: every byte PLACEHOLDER (128, mid-grey; with
the official 0.5/0.5 normalisation that is ~0, the value the official code gives PAD slots).

The covers are read through covers/store.py, in whichever format the release stores them; an item
whose status is not 'ok' is a placeholder even if a stale cover lies there.
The build is resumable: rows are written chunk by chunk into a hidden `.partial` file and finished
chunks are recorded in a state file; a rerun with the same inputs continues, changed inputs restart.
Reading the cache (numpy rows, normalised tensors) is cache_reader.py.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from schemas.errors import InputError
from schemas.atomic import atomic_path, atomic_write_text
from schemas.io import read_json_or_empty

from pixelrec_data.progress import bar

from . import store

MODES = ("squash", "center_crop")
PLACEHOLDER = 128
CACHE_VERSION = 2  # 2: squash decodes at the scale draft_request gives
CHUNK = 128


def cache_files(release, size: int, mode: str) -> dict[str, Path]:
    folder = Path(release) / "images"
    stem = f"images_{size}_{mode}"
    return {"array": folder / f"{stem}.npy", "index": folder / f"{stem}.index.parquet",
            "report": folder / f"{stem}.report.json", "meta": folder / f"{stem}.meta.json",
            "partial": folder / f".{stem}.npy.partial", "state": folder / f".{stem}.state.jsonl"}


def resize(image: Image.Image, size: int, mode: str) -> np.ndarray:
    """RGB uint8 S x S x 3 from a PIL image, by `mode` (see module doc)."""
    if image.mode != "RGB":  # convert() of an RGB image is a plain copy: skip it
        image = image.convert("RGB")
    if mode == "squash":
        return np.asarray(image.resize((size, size), Image.BILINEAR))
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


def draft_request(size: int, mode: str) -> tuple[int, int]:
    """The size to ask of JPEG's scaled decoding (PIL's draft takes the largest 1/2, 1/4 or 1/8
    reduction whose sides all stay >= it). squash: a side may come out up to 3/4 of S and be
    enlarged by at most 4/3 (a 1280x720 cover decodes at 320x180, not 640x360: the resize that
    follows, the costliest step, gets 4x fewer pixels; the other side is still shrunk). center_crop
    keeps both sides >= S (its crop enlarges both sides alike, which costs more sharpness)."""
    side = -(-3 * size // 4) if mode == "squash" else size
    return side, side


def decode_cover(path: str | None, size: int, mode: str,
                 full_decode: bool = False) -> tuple[np.ndarray | None, str, str | None]:
    """(pixels or None, status, error) for one cover (a location of covers/store.py)."""
    if path is None or path.startswith(_FAILED):
        reason = f"{store.STATUS_TABLE} status {path[len(_FAILED):]}" if path else "no cover"
        return None, "missing", reason
    source = store.open_image(path) if not path.startswith(_ABSENT) else None
    if source is None or (isinstance(source, str) and not os.path.exists(source)):
        return None, "missing", "no cover file"
    try:
        with Image.open(source) as image:
            if not full_decode and image.format == "JPEG":
                image.draft("RGB", draft_request(size, mode))
            return resize(image, size, mode), "ok", None
    except Exception as exc:  # PIL raises many types for bad files; all mean the same here
        return None, "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


# --- build ---------------------------------------------------------------------------------------

def _inputs(release: Path) -> tuple[list[str], list[str | None]]:
    items = release / "items.parquet"
    if not items.exists():
        raise InputError(f"{items}: missing; run `pixelrec download --subset {release.name}` first")
    item_ids = pq.read_table(items, columns=["item_id"]).column(0).to_pylist()
    if store.has_covers(release):
        located = store.locate(release, item_ids)
    else:  # every row a placeholder, each saying why
        status = store.statuses(release)
        located = [store.Located(i, status.get(i), None) for i in item_ids]
    # a cover that fetch-covers reported failed is a placeholder even if a stale one lies there
    paths = [f"{_FAILED}{c.status}" if c.status not in (None, "ok")
             else c.location or f"{_ABSENT}{c.item_id}" for c in located]
    return item_ids, paths


_FAILED = "failed-fetch:"  # a `paths` entry for a status other than 'ok'
_ABSENT = "absent:"  # a `paths` entry for an item whose stored covers hold none


def _fingerprint(item_ids, paths, size: int, mode: str, full_decode: bool = False) -> str:
    decode = ":full" if full_decode else ""  # draft-decoded caches carry no marker (the default)
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{size}:{mode}{decode}\n".encode())
    for item, path in zip(item_ids, paths):
        failed = path[len(_FAILED):] if path.startswith(_FAILED) else ""
        stored, mtime = store.stamp(path) if not failed and not path.startswith(_ABSENT) \
            else (-1, -1)
        digest.update(f"{item}:{failed}:{stored}:{mtime}\n".encode())
    return digest.hexdigest()


def is_current(release, size: int = 224, mode: str = "squash") -> bool:
    release = Path(release)
    files = cache_files(release, size, mode)
    meta = read_json_or_empty(files["meta"])
    item_ids, paths = _inputs(release)
    return bool(meta) and files["array"].exists() and meta.get("fingerprint") == _fingerprint(
        item_ids, paths, size, mode)


def prepare_images(release, size: int = 224, mode: str = "squash", workers: int = 2,
                   force: bool = False, full_decode: bool = False) -> dict:
    """Build (or finish, or keep) the cache of `release`; return its report."""
    release = Path(release)
    if mode not in MODES:
        raise InputError(f"--mode {mode}: expected one of {', '.join(MODES)}")
    if not 8 <= size <= 2048:
        raise InputError(f"--size {size}: expected 8..2048 pixels")
    files = cache_files(release, size, mode)
    item_ids, paths = _inputs(release)
    fingerprint = _fingerprint(item_ids, paths, size, mode, full_decode)
    meta = read_json_or_empty(files["meta"])
    if not force and meta.get("fingerprint") == fingerprint and files["array"].exists():
        return {**read_json_or_empty(files["report"]), "up_to_date": True}
    start = time.perf_counter()
    state = _open_partial(files, fingerprint, len(item_ids), size, force)
    chunks = [c for c in range((len(item_ids) + CHUNK - 1) // CHUNK) if c not in state["done"]]
    todo = sum(min(CHUNK, len(item_ids) - c * CHUNK) for c in chunks)
    with bar(total=len(item_ids), desc=f"prepare-images {size} {mode}", unit="img",
             initial=len(item_ids) - todo) as pbar, open(files["state"], "a", encoding="utf-8") as log:
        if log.tell() and not files["state"].read_bytes().endswith(b"\n"):
            log.write("\n")  # end a torn line so the next entry parses
        for chunk, failures in _run_chunks(files["partial"], chunks, paths, size, mode, workers,
                                           full_decode):
            # append-only log: a line cut short by a kill is ignored and its chunk redone
            log.write(json.dumps({"chunk": chunk, "failures": failures}) + "\n")
            log.flush()
            state["done"].add(chunk)
            state["failures"].extend(failures)
            pbar.update(min(CHUNK, len(item_ids) - chunk * CHUNK))
    seconds = time.perf_counter() - start
    return _finish(files, state, item_ids, size, mode, fingerprint, seconds, todo)


def new_cache_array(release, size: int, mode: str, n: int) -> np.ndarray:
    """A fresh `.partial` array for a step that decodes the covers itself (as decode_cover does)
    and finishes the cache with adopt_cache; rows left unwritten read as zeros until then."""
    files = cache_files(release, size, mode)
    files["partial"].parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(files["partial"], mode="w+", dtype=np.uint8,
                                     shape=(n, size, size, 3))


def adopt_cache(release, size: int, mode: str, failures: list, seconds: float) -> dict:
    """Turn the `.partial` array of new_cache_array into the cache of the release's covers as they
    are now (failures: [row, status, error] of the placeholder rows, filled with PLACEHOLDER)."""
    release = Path(release)
    if mode not in MODES:
        raise InputError(f"--mode {mode}: expected one of {', '.join(MODES)}")
    files = cache_files(release, size, mode)
    item_ids, paths = _inputs(release)
    fingerprint = _fingerprint(item_ids, paths, size, mode)
    return _finish(files, {"failures": failures}, item_ids, size, mode, fingerprint, seconds,
                   len(item_ids) - len(failures))


def _read_state(path: Path) -> dict:
    """{fingerprint, done: set of chunks, failures} from the append-only state log."""
    state = {"fingerprint": None, "done": set(), "failures": []}
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except OSError:
        return state
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the torn last line of a killed run
        if "fingerprint" in entry:
            state["fingerprint"] = entry["fingerprint"]
        elif "chunk" in entry and entry["chunk"] not in state["done"]:
            state["done"].add(entry["chunk"])
            state["failures"].extend(entry["failures"])
    return state


def _open_partial(files, fingerprint: str, n: int, size: int, force: bool) -> dict:
    """The resume state, with a `.partial` array that matches it (a fresh one when it does not)."""
    state = _read_state(files["state"])
    fingerprint = f"{fingerprint}/chunk{CHUNK}"  # chunk numbers in the log mean CHUNK rows each
    if force or state["fingerprint"] != fingerprint or not files["partial"].exists():
        files["partial"].parent.mkdir(parents=True, exist_ok=True)
        # a sparse file: rows cost disk only once written
        np.lib.format.open_memmap(files["partial"], mode="w+", dtype=np.uint8,
                                  shape=(n, size, size, 3)).flush()
        state = {"fingerprint": fingerprint, "done": set(), "failures": []}
        atomic_write_text(files["state"], json.dumps({"fingerprint": fingerprint}) + "\n")
    return state


def _run_chunks(partial: Path, chunks, paths, size, mode, workers, full_decode=False):
    tasks = [(partial, c, paths[c * CHUNK:(c + 1) * CHUNK], size, mode, full_decode) for c in chunks]
    try:
        if workers <= 1 or len(tasks) <= 1:
            yield from map(_decode_chunk, tasks)
            return
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            yield from pool.imap_unordered(_decode_chunk, tasks)
    finally:
        # the .partial is renamed into the final cache next: a kept handle would write into it
        _ARRAYS.pop(str(partial), None)


_ARRAYS: dict[str, np.ndarray] = {}  # per process: the open .partial memmap


def _decode_chunk(task) -> tuple[int, list]:
    """Decode one chunk straight into the shared .partial file (no pixels cross processes)."""
    partial, chunk, paths, size, mode, full_decode = task
    array = _ARRAYS.get(str(partial))
    if array is None:
        array = _ARRAYS[str(partial)] = np.load(partial, mmap_mode="r+")
    failures = []
    for offset, path in enumerate(paths):
        row = chunk * CHUNK + offset
        pixels, status, error = decode_cover(path, size, mode, full_decode)
        if pixels is None:
            array[row] = PLACEHOLDER
            failures.append([row, status, error])
        else:
            array[row] = pixels
    array.flush()
    return chunk, failures


def _finish(files, state, item_ids, size, mode, fingerprint, seconds, decoded) -> dict:
    failures = sorted(state["failures"])
    status = ["ok"] * len(item_ids)
    error = [None] * len(item_ids)
    for row, kind, message in failures:
        status[row], error[row] = kind, message
    files["meta"].unlink(missing_ok=True)  # the old cache stops being valid before it changes
    os.replace(files["partial"], files["array"])
    index = pa.table({"item_id": item_ids, "row": pa.array(range(len(item_ids)), pa.int64()),
                      "status": status, "error": error})
    with atomic_path(files["index"]) as tmp:
        pq.write_table(index, tmp, compression="zstd")
    report = {
        "items": len(item_ids), "size": size, "mode": mode, "placeholder_value": PLACEHOLDER,
        "ok": status.count("ok"), "missing": status.count("missing"), "failed": status.count("failed"),
        "bytes_on_disk": files["array"].stat().st_size, "seconds": round(seconds, 3),
        "images_per_s": round(decoded / seconds, 1) if seconds > 0 else None,
        "placeholders": [{"item_id": item_ids[r], "status": k, "error": e} for r, k, e in failures],
    }
    atomic_write_text(files["report"], json.dumps(report, indent=1))
    atomic_write_text(files["meta"], json.dumps({"fingerprint": fingerprint, "size": size,
                                                 "mode": mode, "items": len(item_ids),
                                                 "version": CACHE_VERSION}))
    files["state"].unlink(missing_ok=True)
    return report
