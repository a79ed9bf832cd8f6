"""What kind of archive a file is, from its first bytes, and the covers inside tar archives.

The covers archive is tens of GB: its format is decided from the head of the download (the first
piece of the body, kept for the download to continue from) before the rest is fetched. Zip and tar
(plain, gzip, zstd) are read member by member; 7z and rar are recognised by their signatures and
refused with the advice to unpack them by hand. The head also names the first members, which tells
a zip of tables (CSVs) from an archive of covers (<item_id>.jpg).

A tar of covers is read in one pass (a compressed tar has no index to seek in): the subset's
covers are written to the covers folder under names of our choosing (<item_id>.jpg), never under
the member's path; unsafe names, oversized members and two members for one cover refuse the archive.
"""
from __future__ import annotations

import os
import struct
import tarfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from schemas.errors import InputError
from schemas.official_sources import COVER_NAME

ZIP, TAR, TAR_GZ, TAR_ZST, SEVEN_Z, RAR, OTHER = "zip", "tar", "tar.gz", "tar.zst", "7z", "rar", "other"
REFUSED_FORMATS = (SEVEN_Z, RAR)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".zst", ".tzst", ".7z", ".rar")
_SIGNATURES = ((b"PK\x03\x04", ZIP), (b"PK\x05\x06", ZIP), (b"7z\xbc\xaf\x27\x1c", SEVEN_Z),
               (b"Rar!\x1a\x07", RAR), (b"\x1f\x8b", TAR_GZ), (b"\x28\xb5\x2f\xfd", TAR_ZST))


@dataclass(frozen=True)
class Sniffed:
    format: str
    members: tuple[str, ...]  # the first member names the head holds (zip and tar only)

    @property
    def role(self) -> str | None:
        """'tables' (CSVs inside), 'covers' (<item_id>.jpg inside) or None (cannot tell)."""
        names = [PurePosixPath(m).name for m in self.members]
        if any(n.lower().endswith(".csv") for n in names):
            return "tables"
        if any(COVER_NAME.match(n) for n in names) or self.format in REFUSED_FORMATS:
            return "covers"
        return None


def sniff(head: bytes) -> Sniffed:
    """The format of a file from its first bytes (a few KB suffice; more names more members)."""
    fmt = next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)
    if fmt is None and head[257:262] == b"ustar":
        fmt = TAR
    if fmt == ZIP:
        return Sniffed(ZIP, _zip_names(head))
    if fmt in (TAR, TAR_GZ, TAR_ZST):
        plain = _decompress_head(head, fmt)
        if plain[257:262] != b"ustar":
            return Sniffed(OTHER, ())  # gzip or zstd, but not of a tar
        return Sniffed(fmt, _tar_names(plain))
    return Sniffed(fmt or OTHER, ())


def refuse_format(found: Sniffed, what: str, subset: str | None = None) -> None:
    if found.format in REFUSED_FORMATS:
        subset = subset or "NAME"
        raise InputError(f"{what}: a {found.format} archive, which this toolkit does not read (it "
                         f"reads zip and tar, plain, .gz or .zst); unpack it by hand and run "
                         f"`pixelrec download --subset {subset} --from DIR` with DIR holding the "
                         f"unpacked covers (<item_id>.jpg) and the tables")


def _zip_names(head: bytes, limit: int = 16) -> tuple[str, ...]:
    names, at = [], 0
    while len(names) < limit and head[at:at + 4] == b"PK\x03\x04" and at + 30 <= len(head):
        flags, size, name_len, extra_len = struct.unpack("<6xH10xI4xHH", head[at:at + 30])
        names.append(head[at + 30:at + 30 + name_len].decode("utf-8", "replace"))
        if flags & 0x08:  # sizes follow the data: the next header cannot be found from here
            break
        at += 30 + name_len + extra_len + size
    return tuple(names)


def _tar_names(plain: bytes, limit: int = 16) -> tuple[str, ...]:
    names, at = [], 0
    while len(names) < limit and at + 512 <= len(plain) and plain[at + 257:at + 262] == b"ustar":
        block = plain[at:at + 512]
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
        name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        names.append(f"{prefix}/{name}" if prefix else name)
        size = int(block[124:136].strip(b" \0") or b"0", 8)
        at += 512 + (size + 511) // 512 * 512
    return tuple(names)


def _decompress_head(head: bytes, fmt: str) -> bytes:
    try:
        if fmt == TAR_GZ:
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1 << 20)
        if fmt == TAR_ZST:
            return _zstd().ZstdDecompressor().decompress(head, 1 << 20)
    except Exception:  # noqa: BLE001 - a damaged head is "not a tar we know", decided by the caller
        return b""
    return head


def _zstd():
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd
    return zstd


def open_tar(path: Path) -> tarfile.TarFile:
    """A tar (plain, gzip or zstd) opened as a stream: members one after the other."""
    with open(path, "rb") as f:
        found = sniff(f.read(1 << 16))
    try:
        if found.format == TAR_ZST:
            return tarfile.open(fileobj=_zstd().ZstdFile(path), mode="r|")
        return tarfile.open(path, mode="r|gz" if found.format == TAR_GZ else "r|")
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"{path}: not a readable tar archive ({exc}); a truncated download? "
                         f"delete it and rerun") from None


def check_member_name(name: str, archive: Path) -> None:
    """Refuse absolute names, '..' and drive letters (zip-slip), whatever we would do with them."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise InputError(f"{archive}: unsafe member name {name!r:.80} (absolute or with '..'); "
                         f"refusing the archive")


def unpack_tar_covers(path: Path, wanted: set[str], covers_dir: Path, cap: int) -> dict[str, int]:
    """Write the covers of `wanted` items found in tar `path` as covers_dir/<item_id>.jpg (those
    already there with the member's size are kept); return {item_id: size} of every cover found."""
    found: dict[str, int] = {}
    covers_dir.mkdir(parents=True, exist_ok=True)
    try:
        with open_tar(path) as tar:
            for member in tar:
                check_member_name(member.name, path)
                match = COVER_NAME.match(PurePosixPath(member.name).name)
                if not match or not member.isfile():
                    continue
                item = match.group(1)
                if item in found:
                    raise InputError(f"{path}: two members for cover {item} ({member.name} and an "
                                     f"earlier one); refusing the archive")
                if member.size > cap:
                    raise InputError(f"{path}: member {member.name!r:.80} declares {member.size:,} "
                                     f"bytes, over the {cap:,} allowed (a bomb?)")
                found[item] = member.size
                if item in wanted:
                    _store_member(tar, member, covers_dir / f"{item}.jpg")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: damaged tar archive ({exc}); a truncated download? delete it "
                         f"and rerun") from None
    return found


def _store_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    if target.is_file() and target.stat().st_size == member.size:
        return
    body = tar.extractfile(member).read(member.size + 1)
    if len(body) != member.size:
        raise InputError(f"member {member.name} yields {len(body):,} bytes, not its declared "
                         f"{member.size:,}")
    tmp = target.with_name(f".{target.name}.tmp-{threading.get_ident()}")
    tmp.write_bytes(body)
    os.replace(tmp, target)


__all__ = ["ARCHIVE_SUFFIXES", "REFUSED_FORMATS", "Sniffed", "open_tar", "refuse_format", "sniff",
           "unpack_tar_covers"]
