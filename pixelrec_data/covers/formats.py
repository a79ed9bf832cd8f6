"""The storage formats of covers: one class per format, behind the same interface (as img2dataset's
writers): how a release's covers in that format are indexed and read, and how they are written,
one fetch shard at a time (`shard_writer`) or whole (`write_shards`, by pack-covers).

The folder of each format is given by covers/store.py, which holds the registry (one line per
format). Adding a format is one new class here and one line there.

Writing is deterministic: the same covers give the same bytes, whatever order they arrived in.
A shard of the parquet and webdataset formats is written whole when its fetch shard is done (the
covers that arrive before are kept in a spool folder, so a killed run keeps them); the shards are
listed last in `_complete.json`, so a format is present only once every listed shard is there.
Writing a shard reads its covers when they are written (a tar member, or a parquet row group at a
time: covers/parquet_shard.py), so memory does not grow with the shard.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import threading
from functools import partial
from pathlib import Path

from schemas.atomic import atomic_path, atomic_write_text
from schemas.manifest import file_matches, sha256_file

from .parquet_shard import write_parquet_shard
from .shard_cache import ROW_GROUPS, items_table
from .writing import loaded, move_into_place, naming, write_atomically

COMPLETE = "_complete.json"
_ONE_WRITER = threading.Lock()  # see FilesFormat.write


class CoverFormat:
    """A storage format of covers, its shards in `folder` of the release."""
    name = ""

    def __init__(self, folder: str):
        self.folder = folder

    def index(self, release: Path) -> dict[str, str]:
        """item_id -> location of every cover the release stores in this format."""
        raise NotImplementedError

    def read(self, rest: str) -> bytes | None:
        """The bytes at location f"{name}:{rest}"."""
        raise NotImplementedError

    def location_file(self, rest: str) -> str:
        """The file holding location f"{name}:{rest}"."""
        return rest.rsplit(":", 1)[0]

    def shard_writer(self, release: Path, shard_name: str, number: int, positions: range,
                     spool: Path) -> "ShardWriter":
        raise NotImplementedError

    def finish(self, release: Path, shards: int) -> None:
        """Every fetch shard is written: list shards 0..shards-1, drop those of an earlier layout."""



class ShardWriter:
    """Stores the covers of one fetch shard; `write` may be called from several threads."""
    in_place = False  # each cover is readable where the format keeps it as soon as it is written

    def holds(self, item_id: str) -> bool:
        """Cheap: whether a stored body may exist (checked before a trip to a thread)."""
        raise NotImplementedError

    def stored(self, item_id: str) -> bytes | None:
        raise NotImplementedError

    def stored_source(self, item_id: str) -> bytes | Path | None:
        """The stored cover as its file when it has one of its own (read by the decoder in
        blocks, never whole), else its bytes."""
        return self.stored(item_id)

    def matches(self, item_id: str, size: int | None, sha256: str | None) -> bool:
        body = self.stored(item_id)
        return (body is not None and size is not None and len(body) == size
                and hashlib.sha256(body).hexdigest() == sha256)

    def write(self, item_id: str, body: bytes) -> None:
        raise NotImplementedError

    def write_file(self, item_id: str, source: Path) -> None:
        """Store the bytes of file `source`, a temporary file of the fetch that is moved (renamed
        on one file system) rather than read."""
        raise NotImplementedError

    def remove(self, item_id: str) -> None:
        raise NotImplementedError

    def close(self, rows: list[dict], changed: bool) -> None:
        """The shard is done: `rows` (covers rows in item order) say which items keep a cover;
        changed=False when no row changed since an earlier run finished the shard."""


# --- files --------------------------------------------------------------------------------------
class FilesFormat(CoverFormat):
    name = "files"

    def index(self, release: Path) -> dict[str, str]:
        return {p.stem: str(p) for p in (Path(release) / self.folder).glob("*.jpg")}

    def read(self, rest: str) -> bytes | None:
        with open(rest, "rb") as handle:
            return handle.read()

    def location_file(self, rest: str) -> str:
        return rest

    def shard_writer(self, release, shard_name, number, positions, spool) -> ShardWriter:
        return _FilesWriter(Path(release) / self.folder)


class _FilesWriter(ShardWriter):
    in_place = True

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, item_id: str) -> Path:
        return self.folder / f"{item_id}.jpg"

    def holds(self, item_id: str) -> bool:
        return self.path(item_id).exists()

    def stored(self, item_id: str) -> bytes | None:
        path = self.path(item_id)
        if path.is_symlink():  # a link is no stored cover: it is fetched again (and replaced)
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def stored_source(self, item_id: str) -> Path | None:
        path = self.path(item_id)
        return path if path.is_file() and not path.is_symlink() else None

    def matches(self, item_id, size, sha256) -> bool:
        path = self.path(item_id)
        return size is not None and not path.is_symlink() and file_matches(path, size, sha256)

    def write(self, item_id: str, body: bytes) -> None:
        # One thread at a time creates and renames files in covers/: concurrent creates and
        # renames in one folder contend for its lock in the kernel, which spins (a tenth of all
        # CPU time, measured with perf); taking turns here costs nothing of the sort.
        with _ONE_WRITER:
            write_atomically(self.path(item_id), body)

    def write_file(self, item_id: str, source: Path) -> None:
        with _ONE_WRITER:
            move_into_place(source, self.path(item_id))

    def remove(self, item_id: str) -> None:
        self.path(item_id).unlink(missing_ok=True)


# --- the shard formats: parquet and webdataset ---------------------------------------------------
class _SpooledWriter(ShardWriter):
    """Covers of one fetch shard kept as files in a spool folder until the shard is done, then
    written as the format's shard in item order (taking the covers an earlier run stored there)."""

    def __init__(self, fmt: "ShardFormat", release: Path, name: str, positions: range, spool: Path):
        self.fmt, self.release, self.positions, self.spool = fmt, release, positions, spool
        self.out = release / fmt.folder / name
        self._previous: dict[str, str] | None = None

    def _spooled(self, item_id: str) -> Path:
        return self.spool / f"{item_id}.jpg"

    def previous(self) -> dict[str, str]:
        """item_id -> where its cover is in the shard an earlier run wrote (read when asked)."""
        if self._previous is None:
            self._previous = dict(self.fmt.members(self.out)) if self.out.is_file() else {}
        return self._previous

    def holds(self, item_id: str) -> bool:
        return self._spooled(item_id).exists() or item_id in self.previous()

    def stored(self, item_id: str) -> bytes | None:
        try:
            return self._spooled(item_id).read_bytes()
        except FileNotFoundError:
            rest = self.previous().get(item_id)
            return self.fmt.read(rest) if rest is not None else None

    def stored_source(self, item_id: str) -> bytes | Path | None:
        spooled = self._spooled(item_id)
        return spooled if spooled.is_file() else self.stored(item_id)

    def write(self, item_id: str, body: bytes) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        write_atomically(self._spooled(item_id), body)

    def write_file(self, item_id: str, source: Path) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        move_into_place(source, self._spooled(item_id))

    def remove(self, item_id: str) -> None:
        self._spooled(item_id).unlink(missing_ok=True)
        self.previous().pop(item_id, None)

    def close(self, rows: list[dict], changed: bool) -> None:
        if changed or not self.out.is_file():
            # read when written, one at a time: a shard's covers need not fit in memory
            bodies = [partial(self.stored, row["item_id"]) if row["status"] == "ok" else None
                      for row in rows]
            items = items_table(self.release).slice(self.positions.start, len(self.positions))
            with naming(self.out):
                self.fmt.write_shard(self.out, items, bodies, rows)
        shutil.rmtree(self.spool, ignore_errors=True)


class ShardFormat(CoverFormat):
    prefix = "items"  # shard file names: <prefix>-NNNNN<suffix>
    suffix = ""

    def shard_name(self, number: int) -> str:
        return f"{self.prefix}-{number:05d}{self.suffix}"

    def complete(self, release: Path) -> list[str]:
        """Shard file names listed by `_complete.json`, [] when absent or a shard is missing."""
        folder = Path(release) / self.folder
        try:
            shards = json.loads((folder / COMPLETE).read_text(encoding="utf-8")).get("shards", [])
        except (OSError, ValueError, AttributeError):
            return []
        if not shards or not all(isinstance(s, str) and (folder / s).is_file() for s in shards):
            return []
        return shards

    def shard_writer(self, release, shard_name, number, positions, spool) -> ShardWriter:
        return _SpooledWriter(self, Path(release), self.shard_name(number), positions, spool)

    def members(self, shard: Path):
        """(item_id, location rest) of every cover in one shard file."""
        raise NotImplementedError

    def write_shard(self, out: Path, items, bodies: list, rows: list[dict] | None = None) -> str:
        """Write one shard atomically (`rows`: the items' status rows); return its sha256."""
        raise NotImplementedError

    def index(self, release: Path) -> dict[str, str]:
        folder = Path(release) / self.folder
        return {item: f"{self.name}:{rest}" for shard in self.complete(release)
                for item, rest in self.members(folder / shard)}

    def finish(self, release: Path, shards: int) -> None:
        folder = Path(release) / self.folder
        names = [self.shard_name(n) for n in range(shards)]
        for path in folder.glob(f"{self.prefix}-*{self.suffix}"):
            if path.name not in names:
                path.unlink()  # a shard of an earlier run with another --shard-size
        with naming(folder / COMPLETE):
            self._write_complete(folder, {n: sha256_file(folder / n) for n in names})

    def write_shards(self, release_out: Path, items, bodies, shard_bytes: int,
                     rows: dict[str, dict] | None = None) -> list[dict]:
        """Write covers whole into `release_out`/<folder> (pack-covers): `bodies` gives each item's
        bytes (or None) in items order, `rows` their status rows by item id; a shard closes once
        it holds `shard_bytes` of images."""
        folder = Path(release_out) / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        written, start, pending, size = [], 0, [], 0
        for row, body in enumerate(bodies):
            pending.append(body)
            size += len(body) if body else 0
            if size >= shard_bytes:
                written.append(self._pack_one(folder, items, start, pending, len(written), rows))
                start, pending, size = row + 1, [], 0
        if pending or not written:
            written.append(self._pack_one(folder, items, start, pending, len(written), rows))
        self._write_complete(folder, {s["file"]: s["sha256"] for s in written})
        return written

    def _pack_one(self, folder: Path, items, start: int, bodies: list, number: int, rows) -> dict:
        name = self.shard_name(number)
        part = items.slice(start, len(bodies))
        described = [(rows or {}).get(i) or {"item_id": i}
                     for i in part.column("item_id").to_pylist()]
        digest = self.write_shard(folder / name, part, bodies, described)
        return {"file": name, "rows": len(bodies), "sha256": digest}

    @staticmethod
    def _write_complete(folder: Path, digests: dict[str, str]) -> None:
        atomic_write_text(folder / COMPLETE, json.dumps(
            {"shards": list(digests), "sha256": digests}, indent=1) + "\n")


class ParquetFormat(ShardFormat):
    """Every items column plus `image` ({bytes, path}: the Hugging Face Image encoding; null where
    the item has no cover), with the `datasets` features in the schema metadata."""
    name = "parquet"
    suffix = ".parquet"

    def read(self, rest: str) -> bytes | None:
        path, row = rest.rsplit(":", 1)
        return ROW_GROUPS.image(path, int(row))

    def members(self, shard: Path):
        import pyarrow.parquet as pq

        # the struct's path only: the image bytes are not read to index them
        table = pq.ParquetFile(shard).read(columns=["item_id", "image.path"])
        valid = table.column("image").is_valid().to_pylist()
        for row, (item, ok) in enumerate(zip(table.column("item_id").to_pylist(), valid)):
            if ok:
                yield item, f"{shard}:{row}"

    def write_shard(self, out: Path, items, bodies: list, rows=None) -> str:
        return write_parquet_shard(out, items, bodies)


class WebDatasetFormat(ShardFormat):
    """Tar shards in webdataset's sample layout: `<item_id>.jpg` (the cover) and `<item_id>.json`
    (the item's row of items.parquet, with the cover's sha256, width, height and phash), items
    without a cover left out. Members carry no time, owner or mode of this machine."""
    name = "webdataset"
    prefix = "covers"
    suffix = ".tar"

    def read(self, rest: str) -> bytes | None:
        path, offset, size = rest.rsplit(":", 2)
        with open(path, "rb") as handle:
            handle.seek(int(offset))
            data = handle.read(int(size))
        return data if len(data) == int(size) else None

    def location_file(self, rest: str) -> str:
        return rest.rsplit(":", 2)[0]

    def members(self, shard: Path):
        with tarfile.open(shard, "r:") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".jpg") and "/" not in member.name:
                    yield member.name[:-4], f"{shard}:{member.offset_data}:{member.size}"

    def write_shard(self, out: Path, items, bodies: list, rows=None) -> str:
        described = {r["item_id"]: r for r in rows or ()}
        with atomic_path(out) as tmp:
            with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as archive:
                for item, source in zip(items.to_pylist(), bodies):
                    body = loaded(source)
                    if not body:
                        continue
                    cover = described.get(item["item_id"], {})
                    meta = {**item, **{k: cover.get(k) for k in ("sha256", "width", "height",
                                                                 "phash")}}
                    _add(archive, f"{item['item_id']}.jpg", body)
                    _add(archive, f"{item['item_id']}.json",
                         json.dumps(meta, sort_keys=True, ensure_ascii=False).encode())
            return sha256_file(tmp)


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))
