"""Covers of one subset, streamed out of the publisher's archive of all covers.

Only the subset's items are read, one member at a time (the archive of all 408,374 covers is tens
of GB: it is never held in memory nor unpacked whole). Each cover is stored byte for byte as the
publisher made it, as covers/<item_id>.jpg, after a check that it decodes: JPEG's scaled decoding
(libjpeg's 1/8 DCT scaling, PIL's draft) reads every entropy-coded block, so a truncated or broken
file fails as it would in a full decode, at a fraction of the cost; the perceptual hash is taken
from that 1/8 picture (phash looks at a 32x32 low-pass anyway). Every item gets a status-table
row: 'ok', 'missing' (no member of that name), 'not_image', 'corrupt' or 'bomb'. The covers may
come in several archives (the publisher once split them into cover1 and cover2): every one is
read, and a cover found in two of them is taken from the first.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import imagehash
import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from pixelrec_data.covers.store import cover_name
from schemas.errors import InputError
from schemas.io import write_table
from schemas.official_sources import COVER_NAME
from schemas.tables import COVERS

from .archives import TAR, TAR_GZ, TAR_ZST, ZIP, refuse_format, sniff, unpack_tar_covers
from .unpack import check_member_size, open_zip

MAX_COVER_BYTES = 32 << 20   # a cover member declaring more is refused (the archive is suspect)
MAX_PIXELS = 40_000_000      # a header declaring more is a decompression bomb, refused undecoded
CHUNK = 256                  # covers per task: bounds what is in memory at once
_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
           Image.DecompressionBombError, zipfile.BadZipFile)


def describe_cover(item_id: str, body: bytes, cache: tuple[int, str] | None = None):
    """(status-table row, training-cache pixels or None) of one cover's bytes, decoded once.

    Without `cache` a JPEG is decoded at 1/8 scale; with cache=(size, mode) at the scale
    `prepare-images` uses, and the same decode also gives the size x size pixels it would store.
    """
    row = {"item_id": item_id, "status": "ok", "error": None, "sha256": None, "width": None,
           "height": None, "bytes": len(body), "phash": None, "attempts": 0}
    try:
        image = Image.open(io.BytesIO(body))
    except UnidentifiedImageError:
        return {**row, "status": "not_image", "error": f"not an image (starts {body[:16]!r})"}, None
    except _ERRORS as exc:
        return {**row, "status": "not_image", "error": _one_line(exc)}, None
    pixels = None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            return {**row, "status": "bomb",
                    "error": f"{width}x{height} pixels, over {MAX_PIXELS}"}, None
        try:
            if image.format == "JPEG":
                image.draft("RGB", cache_draft_size(cache, width, height))
            image.load()
            if cache is not None:
                pixels = resize_for_cache(image, *cache)
            # phash low-passes to 32x32: a picture of ~1/8 scale is all it needs
            step = max(1, min(image.size) // max(64, min(width, height) // 8))
            small = (image.reduce(step) if step > 1 else image).convert("L")
        except _ERRORS as exc:
            return {**row, "status": "corrupt", "error": _one_line(exc)}, None
    phash = np.packbits(imagehash.phash(small).hash.ravel()).tobytes().hex()
    return {**row, "sha256": hashlib.sha256(body).hexdigest(), "width": width, "height": height,
            "phash": phash}, pixels


def cache_draft_size(cache, width: int, height: int) -> tuple[int, int]:
    if cache is None:  # 1/8 scale, but not below 64 px (a phash from fewer is poor)
        return max(width // 8, min(width, 64)), max(height // 8, min(height, 64))
    from pixelrec_data.covers.cache import draft_request  # as prepare-images asks: same pixels

    return draft_request(*cache)


def resize_for_cache(image, size: int, mode: str):
    from pixelrec_data.covers.cache import resize  # the training cache's own resize: identical pixels

    return resize(image, size, mode)


def extract_covers(sources: list[Path], item_ids: list[str], covers_dir: Path, workers: int = 2,
                   progress=None, cache=None) -> list[dict]:
    """Store the covers of `item_ids` from `sources` (zips, tars, or folders of <item_id>.jpg)
    into covers_dir; return one row per item, in item order. Covers already stored are re-checked,
    not read from an archive again (a rerun after a kill continues).

    cache: (size, mode, array) to also fill array[row] with the training-cache pixels of each
    decodable cover, from the same decode (see pixelrec_data.covers.cache.new_cache_array)."""
    covers_dir.mkdir(parents=True, exist_ok=True)
    reader = _readers(sources, set(item_ids), covers_dir)
    starts = range(0, len(item_ids), CHUNK)

    def work(start):
        rows = []
        for row_number, item in enumerate(item_ids[start:start + CHUNK], start):
            row, pixels = _one(item, reader, covers_dir, cache[:2] if cache else None)
            if pixels is not None:
                cache[2][row_number] = pixels
            rows.append(row)
        if progress:
            progress(len(rows))
        return rows

    with ThreadPoolExecutor(max(1, workers)) as pool:  # PIL decodes without holding the GIL
        return [row for rows in pool.map(work, starts) for row in rows]


def _one(item_id: str, reader, covers_dir: Path, cache) -> tuple[dict, object]:
    target = covers_dir / cover_name(item_id)
    size = reader.size(item_id)
    if size is None:
        target.unlink(missing_ok=True)
        return {**_empty(item_id), "status": "missing", "error": "no such cover in the archive"}, None
    stored = target.is_file() and target.stat().st_size == size
    try:
        body = target.read_bytes() if stored else reader.read(item_id)
    except _ERRORS as exc:
        return {**_empty(item_id), "status": "corrupt", "error": _one_line(exc)}, None
    row, pixels = describe_cover(item_id, body, cache)
    if row["status"] != "ok":
        target.unlink(missing_ok=True)
    elif not stored:
        tmp = target.with_name(f".{target.name}.tmp-{threading.get_ident()}")
        tmp.write_bytes(body)
        os.replace(tmp, target)
    return row, pixels


def write_covers_table(rows: list[dict], path: Path) -> Path:
    return write_table(pa.Table.from_pylist(rows, schema=COVERS), path, "covers")


def _readers(sources: list[Path], wanted: set[str], covers_dir: Path) -> "_FirstOf":
    readers = []
    for source in sources:
        if source.is_dir():
            readers.append(_FolderReader(source))
            continue
        with open(source, "rb") as f:
            found = sniff(f.read(1 << 16))
        refuse_format(found, str(source))
        if found.format == ZIP:
            readers.append(_ZipReader(source))
        elif found.format in (TAR, TAR_GZ, TAR_ZST):
            taken = {item for item in wanted if any(r.size(item) is not None for r in readers)}
            sizes = unpack_tar_covers(source, wanted - taken, covers_dir, MAX_COVER_BYTES)
            readers.append(_FolderReader(covers_dir, sizes))
        else:
            raise InputError(f"{source}: not a covers archive (zip or tar; it starts "
                             f"{found.format if found.format != 'other' else 'with unknown bytes'})")
    return _FirstOf(readers)


class _FirstOf:
    """Several readers as one: a cover comes from the first that has it."""

    def __init__(self, readers):
        self.readers = readers

    def _owner(self, item_id: str):
        return next((r for r in self.readers if r.size(item_id) is not None), None)

    def size(self, item_id: str) -> int | None:
        owner = self._owner(item_id)
        return None if owner is None else owner.size(item_id)

    def read(self, item_id: str) -> bytes:
        return self._owner(item_id).read(item_id)


class _ZipReader:
    """Members by item id; one ZipFile per thread (a shared one would serialise every read)."""

    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()
        with open_zip(path) as archive:  # refuses unsafe names before anything is read
            self.members = {}
            for info in archive.infolist():
                match = COVER_NAME.match(PurePosixPath(info.filename).name)
                if not match or info.is_dir():
                    continue
                earlier = self.members.get(match.group(1))
                if earlier is not None:
                    raise InputError(f"{path}: two members for cover {match.group(1)} "
                                     f"({earlier.filename} and {info.filename}); refusing the "
                                     f"archive")
                self.members[match.group(1)] = info

    def size(self, item_id: str) -> int | None:
        info = self.members.get(item_id)
        if info is None:
            return None
        check_member_size(info, self.path, MAX_COVER_BYTES)
        return info.file_size

    def read(self, item_id: str) -> bytes:
        archive = getattr(self.local, "archive", None)
        if archive is None:
            archive = self.local.archive = zipfile.ZipFile(self.path)
        info = self.members[item_id]
        with archive.open(info) as member:
            body = member.read(info.file_size + 1)
        if len(body) > info.file_size:
            raise InputError(f"{self.path}: member {info.filename} yields more than its declared "
                             f"{info.file_size:,} bytes (a zip bomb?)")
        return body


class _FolderReader:
    """Covers as <item_id>.jpg files; `sizes` limits it to the covers a tar pass wrote there."""

    def __init__(self, folder: Path, sizes: dict[str, int] | None = None):
        self.folder, self.sizes = folder, sizes

    def size(self, item_id: str) -> int | None:
        if self.sizes is not None:
            return self.sizes.get(item_id)
        path = self.folder / f"{item_id}.jpg"
        if not path.is_file() or path.is_symlink():
            return None
        size = path.stat().st_size
        if size > MAX_COVER_BYTES:
            raise InputError(f"{path}: {size:,} bytes, over the {MAX_COVER_BYTES:,} a cover may have")
        return size

    def read(self, item_id: str) -> bytes:
        return (self.folder / f"{item_id}.jpg").read_bytes()


def _empty(item_id: str) -> dict:
    return {"item_id": item_id, "status": "ok", "error": None, "sha256": None, "width": None,
            "height": None, "bytes": None, "phash": None, "attempts": 0}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


__all__ = ["cache_draft_size", "describe_cover", "extract_covers", "write_covers_table"]
