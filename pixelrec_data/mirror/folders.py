"""The download folder of a release from a mirror: parts resumed only when they are plain files
of one link, no symbolic link anywhere, the free space checked before any byte is fetched."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from schemas.errors import InputError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class TransferError(InputError):
    """A file that could not be fetched or does not match what the manifest says."""


def open_part(part: Path):
    """`part` opened for appending: never through a symbolic link (O_NOFOLLOW), and only a plain
    file of one link (checked on the open file, so no rename can slip another in between)."""
    try:
        fd = os.open(part, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o644)
    except OSError as exc:
        if part.is_symlink():
            raise TransferError(f"{part}: a symbolic link in the download folder; remove it "
                                f"(downloads never write through links)") from None
        raise TransferError(f"{part}: cannot write ({exc.strerror})") from None
    refusal = _part_refusal(part, os.fstat(fd))
    if refusal is not None:
        os.close(fd)
        raise TransferError(refusal)
    return os.fdopen(fd, "ab")


def part_size(part: Path) -> int:
    """Bytes already in `part` (0 when absent); a link or anything but a plain file is refused."""
    try:
        st = os.lstat(part)
    except FileNotFoundError:
        return 0
    refusal = _part_refusal(part, st)
    if refusal is not None:
        raise TransferError(refusal)
    return st.st_size


def _part_refusal(part, st: os.stat_result) -> str | None:
    """Why a part may not be resumed: a symbolic link, not a plain file, or a file with another
    name too (a hard link: appending would write into that other file)."""
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        return (f"{part}: not a plain file (a symbolic link?) in the download folder; remove it "
                f"(downloads never write through links)")
    if st.st_nlink != 1:
        return (f"{part}: a hard link ({st.st_nlink} names share its bytes) in the download "
                f"folder; remove it (downloads never write into a file with other names)")
    return None


def refuse_symlinks(folder: Path) -> None:
    """A one-line error when `folder`, or anything under it, is a symbolic link: a download never
    writes, reads or renames through a link planted in its folders."""
    for _ in _files_under(folder):
        pass


def partial_sizes(folder: Path) -> dict[str, int]:
    """The size of every file under the download folder `folder`, by relative path ({} when it
    does not exist yet); a one-line error for a symbolic link anywhere in it (refuse_symlinks),
    or for a part that may not be resumed (`_part_refusal`), before any byte is fetched."""
    sizes: dict[str, int] = {}
    for entry in _files_under(folder):
        st = entry.stat(follow_symlinks=False)
        if entry.name.endswith(".part"):
            refusal = _part_refusal(entry.path, st)
            if refusal is not None:
                raise TransferError(refusal)
        sizes[Path(entry.path).relative_to(folder).as_posix()] = st.st_size
    return sizes


def _files_under(folder: Path):
    """Every entry under `folder` but its folders (os.DirEntry), refusing symbolic links."""
    if folder.is_symlink():
        raise InputError(f"{folder}: a symbolic link; downloads never write through links")
    if not folder.is_dir():
        return
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:  # DirEntry knows link-ness without another system call
                if entry.is_symlink():
                    raise InputError(f"{entry.path}: a symbolic link in {folder}; remove it "
                                     f"(downloads never write through links)")
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    yield entry


def check_free_space(folder: Path, needed: int, margin: int = 64 << 20) -> None:
    """A one-line error before any byte is fetched when `folder`'s file system lacks the room."""
    free = shutil.disk_usage(folder).free
    if needed + margin > free:
        raise InputError(f"{folder}: {needed:,} bytes to download but only {free:,} free "
                         f"(and {margin >> 20} MiB kept spare); free some space and rerun")


def link_or_copy(src: Path, dest: Path, copy: bool = False) -> None:
    """Hard-link src to dest (same file system, no extra space), else copy it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copyfile(src, dest)
