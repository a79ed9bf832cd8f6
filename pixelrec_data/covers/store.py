"""Where a release keeps its covers, and the one reader every consumer of covers goes through.

A release stores its covers in one of three formats, chosen when they are fetched
(`fetch-covers --format`) or converted (`pack-covers --to`); the status table is the same for all:

    covers.parquet                     one row per item: status ('ok' or an error kind), sha256,
                                       width, height, bytes, phash, attempts (schemas.tables.COVERS)
    files       covers/<item_id>.jpg   one file per cover (the official layout; the default)
    parquet     cover_shards/items-NNNNN.parquet   every items column plus `image`, a
                                       `datasets.Image` column ({bytes, path}); the dataset card's
                                       `<release>_items` config reads them
                cover_shards/_complete.json        the shards and their sha256, written last
    webdataset  cover_tars/covers-NNNNN.tar        `<item_id>.jpg` + `<item_id>.json` per cover
                                       (webdataset's sample layout: `datasets` and `webdataset`
                                       read the tars as they are)
                cover_tars/_complete.json          the tars and their sha256, written last
    covers/_stats/                     fetch-covers' per-shard records (local, never shipped)

`locate(release, item_ids)` gives each item's status and where its bytes are (a path for files,
`parquet:<shard>:<row>` or `webdataset:<tar>:<offset>:<size>` otherwise); `read(location)` and
`open_image(location)` read them in any process. A release holding several formats is read from
the first of FORMATS it has.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import InputError

from .formats import FilesFormat, ParquetFormat, WebDatasetFormat

STATUS_TABLE = "covers.parquet"
FILES_DIR = "covers"
SHARDS_DIR = "cover_shards"
TARS_DIR = "cover_tars"
STATS_DIR = f"{FILES_DIR}/_stats"
# The registry of storage formats (covers/formats.py): one line each, in reading preference.
FORMATS = {
    "files": FilesFormat(FILES_DIR),
    "parquet": ParquetFormat(SHARDS_DIR),
    "webdataset": WebDatasetFormat(TARS_DIR),
}
DEFAULT_FORMAT = "files"
# the user's fetched covers, in every format: a rebuild carries them over, never deletes them
USER_DATA = (FILES_DIR, STATUS_TABLE, *(f.folder for f in FORMATS.values() if f.folder != FILES_DIR))
LISTED = (f"{FILES_DIR}/", STATUS_TABLE, *(f"{f.folder}/" for f in FORMATS.values()
                                           if f.folder != FILES_DIR))  # what manifests list
SHARDS_GLOB = f"{SHARDS_DIR}/*.parquet"
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8", b"BM")


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise InputError(f"--format {name}: expected one of {', '.join(FORMATS)}")
    return name


def written_by(fmt: str) -> tuple[str, ...]:
    """The manifest paths a fetch in format `fmt` writes (described afresh when it finishes)."""
    return (STATUS_TABLE, f"{FORMATS[check_format(fmt)].folder}/")


def files_dir(release) -> Path:
    return Path(release) / FILES_DIR


def cover_name(item_id: str) -> str:
    """The file name of a cover (the official files' naming)."""
    return f"{item_id}.jpg"


def cover_file(release, item_id: str) -> Path:
    return Path(release) / FILES_DIR / cover_name(item_id)


def stats_dir(release) -> Path:
    return Path(release) / STATS_DIR


def spool_dir(release, shard_name: str) -> Path:
    """Where the covers of an unfinished fetch shard wait (parquet, webdataset); dot-named, so
    never listed in a manifest."""
    return stats_dir(release) / f".spool-{shard_name}"


def status_table(release) -> Path:
    return Path(release) / STATUS_TABLE


def manifest_path(item_id: str) -> str:
    """The manifest path of a cover stored as a file."""
    return f"{FILES_DIR}/{cover_name(item_id)}"


def statuses(release) -> dict[str, str]:
    """item_id -> covers.parquet status ({} when the release has no status table)."""
    import pyarrow.parquet as pq

    path = status_table(release)
    if not path.exists():
        return {}
    table = pq.ParquetFile(path).read(columns=["item_id", "status"])
    return dict(zip(table.column("item_id").to_pylist(), table.column("status").to_pylist()))


def status_rows(release) -> dict[str, dict]:
    """item_id -> its row of the status table ({} when the release has none)."""
    import pyarrow.parquet as pq

    path = status_table(release)
    rows = pq.read_table(path).to_pylist() if path.exists() else []
    return {row["item_id"]: row for row in rows}


def complete_shards(release, fmt: str) -> list[str]:
    """Paths (relative to the release) of the shards a finished parquet or webdataset write lists
    in its `_complete.json`, [] when there is none or a listed shard is missing."""
    chosen = FORMATS[fmt]
    complete = getattr(chosen, "complete", None)  # the files format has no shards
    return [f"{chosen.folder}/{name}" for name in complete(Path(release))] if complete else []


def formats_present(release) -> list[str]:
    release = Path(release)
    found = []
    if any(files_dir(release).glob("*.jpg")):
        found.append("files")
    found += [name for name, fmt in FORMATS.items() if name != "files" and fmt.complete(release)]
    return found


def has_covers(release) -> bool:
    return bool(formats_present(release))


@dataclass(frozen=True)
class Located:
    """An item's cover: its covers.parquet status (None when the table does not list it) and where
    its bytes are (None when the stored covers hold none for it)."""
    item_id: str
    status: str | None
    location: str | None

    @property
    def usable(self) -> bool:
        return self.location is not None and self.status in (None, "ok")


def locate(release, item_ids, fmt: str | None = None) -> list[Located]:
    """Status and location of each item's cover, from the format `fmt` (default: the first the
    release has); InputError naming the command that fetches covers when it has none."""
    release = Path(release).resolve()
    present = formats_present(release)
    fmt = fmt or (present[0] if present else None)
    if fmt is None or fmt not in present:
        raise InputError(f"{release / FILES_DIR}: no covers; run `pixelrec fetch-covers "
                         f"--release {release}`")
    where = FORMATS[fmt].index(release)
    status = statuses(release)
    return [Located(i, status.get(i), where.get(i)) for i in item_ids]


def _split(location):
    """(format, rest) of a location: a bare path (str or path-like) is a file of the files format."""
    location = os.fspath(location)
    name, sep, rest = location.partition(":")
    if sep and name in FORMATS and name != "files":
        return FORMATS[name], rest
    return FORMATS["files"], location


def read(location: str | None) -> bytes | None:
    """The bytes at a location of `locate`, None when they cannot be read."""
    if location is None:
        return None
    fmt, rest = _split(location)
    try:
        return fmt.read(rest)
    except (OSError, ValueError):
        return None


def open_image(location: str | None):
    """What PIL's Image.open takes for a location: the file's path, or its bytes as a stream."""
    if location is None or _split(location)[0].name == "files":
        return location
    data = read(location)
    return io.BytesIO(data) if data is not None else None


def stamp(location: str | None) -> tuple[int, int]:
    """(size, mtime_ns) of the file holding a location, (-1, -1) when absent: what a cache built
    from the covers compares to tell whether they changed."""
    if location is None:
        return -1, -1
    fmt, rest = _split(location)
    path = fmt.location_file(rest)
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def looks_like_image(location: str | None) -> bool:
    """A damaged file (a cut download, an HTML error page) would raise far from here on access."""
    head = read_head(location)
    return head is not None and head.startswith(_IMAGE_MAGIC)


def read_head(location: str | None, size: int = 4) -> bytes | None:
    if location is not None and _split(location)[0].name == "files":
        try:
            with open(os.fspath(location), "rb") as handle:
                return handle.read(size)
        except OSError:
            return None
    data = read(location)
    return None if data is None else data[:size]
