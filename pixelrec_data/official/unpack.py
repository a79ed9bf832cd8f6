"""Tell the official files apart by content, and take CSVs out of zip archives safely.

Archives come as served (a Drive folder downloads as a zip; hand-made zips too). A member's name is
never used as a path to write to: what is extracted lands under a name we choose, so a member named
`../x.csv` or `/etc/x` cannot escape (it is refused outright). A member that declares a size far
beyond its compressed size, or that yields more bytes than it declared, is refused as a zip bomb
before it fills the disk; so is one larger than the free space.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from schemas.errors import InputError
from schemas.official_sources import (COVER_NAME, INTERACTIONS_HEADER, ITEM_INFO_MARKERS,
                                      OfficialSource)

from .archives import (REFUSED_FORMATS, TAR, TAR_GZ, TAR_ZST, ZIP, Sniffed, check_member_name,
                       sniff)

MAX_RATIO = 200          # declared size / compressed size beyond which a member is a bomb
RATIO_FLOOR = 16 << 20   # ... when it also declares more than this (tiny members compress well)
COPY_CHUNK = 1 << 20


@dataclass
class OfficialFiles:
    interactions: Path
    items: Path
    covers: list[Path]   # zips or tars of <item_id>.jpg, or folders of them
    refused: list[tuple[str, Sniffed]] = field(default_factory=list)  # 7z / rar archives seen


def check_member_size(info: zipfile.ZipInfo, archive: Path, cap: int | None = None) -> None:
    if cap is not None and info.file_size > cap:
        raise InputError(f"{archive}: member {info.filename!r:.80} declares {info.file_size:,} bytes, "
                         f"over the {cap:,} allowed (a zip bomb?)")
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise InputError(f"{archive}: member {info.filename!r:.80} expands {info.file_size:,} bytes "
                         f"from {info.compress_size:,} (a zip bomb?)")


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a readable zip archive ({exc}); a truncated download? "
                         f"delete it and rerun") from None
    for info in archive.infolist():
        check_member_name(info.filename, path)
    return archive


def csv_role(first_line: bytes) -> str | None:
    """'interactions', 'items' or None from a CSV's header line."""
    text = first_line.decode("utf-8-sig", "replace").strip().lower()
    columns = [c.strip().strip('"').strip() for c in text.split(",")]
    if tuple(columns[:3]) == INTERACTIONS_HEADER and len(columns) == 3:
        return "interactions"
    if columns and columns[0] == ITEM_INFO_MARKERS[0] and ITEM_INFO_MARKERS[1] in columns:
        return "items"
    return None


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.readline(1 << 16)


def extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, where: Path) -> Path:
    """Copy one member to `target` (temp + rename), bounded by its declared size; skip when done."""
    if target.is_file() and target.stat().st_size == info.file_size:
        return target
    check_member_size(info, where)
    free = shutil.disk_usage(target.parent if target.parent.exists() else where.parent).free
    if info.file_size > free:
        raise InputError(f"{where}: {info.filename} needs {info.file_size:,} bytes, the disk has "
                         f"{free:,} free")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    written = 0
    try:
        with archive.open(info) as src, open(tmp, "wb") as out:
            while chunk := src.read(COPY_CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise InputError(f"{where}: member {info.filename} yields more than its declared "
                                     f"{info.file_size:,} bytes (a zip bomb?)")
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError) as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{where}: member {info.filename} is damaged ({exc}); a truncated "
                         f"download? delete the archive and rerun") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target


def classify(files: list[tuple[str, Path]], source: OfficialSource, work: Path) -> OfficialFiles:
    """Find the subset's interactions, item information and covers among `files` ((logical path,
    local path) pairs), extracting CSVs out of zips into `work`. Archives are told apart by their
    first bytes, not their names."""
    found: dict[str, list[tuple[str, Path, bool]]] = {"interactions": [], "items": [], "covers": []}
    refused = []
    for logical, path in files:
        if path.is_dir():
            if any(COVER_NAME.match(p.name) for p in _first_entries(path)):
                found["covers"].append((logical, path, True))
            continue
        if path.suffix.lower() == ".csv":
            role = csv_role(_head(path))
            if role:
                found[role].append((logical, path, source.matches(logical)))
            continue
        head = sniff(_head_bytes(path))
        if head.format == ZIP:
            _classify_zip(logical, path, source, work, found)
        elif head.format in (TAR, TAR_GZ, TAR_ZST) and head.role == "covers":
            found["covers"].append((logical, path, True))
        elif head.format in REFUSED_FORMATS:
            refused.append((logical, head))
    interactions = _pick(found["interactions"], "interactions", source, files)
    items = _pick(found["items"], "item information", source, files)
    return OfficialFiles(interactions, items, [p for _, p, _ in found["covers"]], refused)


def _head_bytes(path: Path, size: int = 1 << 16) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _holds_covers(archive: zipfile.ZipFile) -> bool:
    members = [i for i in archive.infolist()[:1000] if not i.is_dir()]
    return any(COVER_NAME.match(PurePosixPath(i.filename).name) for i in members)


def _classify_zip(logical, path, source, work, found) -> None:
    with open_zip(path) as archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        if _holds_covers(archive):
            found["covers"].append((logical, path, True))
            return
        for info in members:
            if not info.filename.lower().endswith(".csv"):
                continue
            with archive.open(info) as member:
                role = csv_role(member.readline(1 << 16))
            member_path = f"{logical}/{info.filename}"
            if role is None:
                continue
            matched = source.matches(member_path)
            if matched or not source.name_pattern:
                name = PurePosixPath(info.filename).name
                tag = hashlib.sha256(f"{path.name}/{info.filename}".encode()).hexdigest()[:10]
                target = work / f"{tag}-{name}"
                found[role].append((member_path, extract_member(archive, info, target, path), matched))
            else:
                found[role].append((member_path, None, False))  # seen, not taken


def _pick(candidates, what: str, source: OfficialSource, files) -> Path:
    matching = [(lp, p) for lp, p, matched in candidates if matched and p is not None]
    if not matching:  # a lone file of that kind, named without the subset (e.g. item_info.csv)
        loose = [(lp, p) for lp, p, _ in candidates if p is not None]
        matching = loose if len(loose) == 1 and len(candidates) == 1 else []
    if len(matching) == 1:
        return matching[0][1]
    seen = ", ".join(sorted(lp for lp, _ in files))[:300] or "nothing"
    if not matching:
        raise InputError(f"no {what} file of {source.name} found (a CSV whose header says so, named "
                         f"after the subset, or in a zip); looked at: {seen}")
    names = ", ".join(lp for lp, _ in matching)
    raise InputError(f"several {what} files of {source.name}: {names}; keep one")


def _first_entries(folder: Path, limit: int = 1000):
    for n, entry in enumerate(os.scandir(folder)):
        if n >= limit:
            return
        yield entry


__all__ = ["OfficialFiles", "check_member_name", "check_member_size", "classify", "csv_role",
           "extract_member", "open_zip"]
