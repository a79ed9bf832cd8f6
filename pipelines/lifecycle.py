"""The life of a release folder on disk: who may write it (a lock) and whether it is whole.

- A lock per release folder (`release_lock`): build-release, import-official, download and
  fetch-covers hold it while they write; a second run on the same release stops at once with a
  one-line error that names the holder. It is an OS lock (flock) on a dot file beside the folder, so
  it dies with its process: a killed run never leaves a stale lock.
- A commit journal (`DATA/.pixelrec-commit.json`), written by pipelines.finish: a run that puts
  releases in place (pixelrec and its nested subsets) or changes one in place lists them there
  before the first rename and removes the journal after the last step. A release named in a
  journal is not whole (some of its siblings may be old or missing, its manifest not yet written):
  `verify`, `publish` and the loader refuse it, and the next run completes the commit.
Standard library only: the loader, the mirror and the commands import it without the pipelines'
heavy dependencies.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from schemas.errors import InputError

JOURNAL = ".pixelrec-commit.json"


def lock_path(folder: Path) -> Path:
    folder = Path(folder)
    return folder.with_name(f".{folder.name}.lock")


@contextlib.contextmanager
def release_lock(folder: str | os.PathLike, command: str):
    """Hold the lock of release `folder` for the block; InputError when another process holds it.

    The lock file exists only while held (a killed holder leaves it, harmless: the OS lock died
    with the process). Removing it is safe because a taker checks, once locked, that the file it
    locked is still the one at the path, and starts over otherwise.
    """
    folder = Path(folder)
    made = [p for p in (folder.parent, *folder.parent.parents) if not p.exists()]
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(folder)
    try:
        fd = _take(path, folder)
    except BaseException:
        _remove_empty(made)
        raise
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # closing releases the lock
        _remove_empty(made)  # a run that wrote nothing leaves no folders it made


def _remove_empty(folders) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return


def _take(path: Path, folder: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise InputError(f"{folder}: locked by {_holder(path)}; wait for that run to end "
                             "(or stop it), then rerun") from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed the file after we opened it: take the new one


@contextlib.contextmanager
def release_locks(folders, command: str):
    """Hold the locks of several releases (in a fixed order, so two runs cannot deadlock)."""
    with contextlib.ExitStack() as stack:
        for folder in sorted({Path(f) for f in folders}):
            stack.enter_context(release_lock(folder, command))
        yield


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"`pixelrec {info['command']}` (pid {info['pid']} on {info['host']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another pixelrec run"


def read_journal(root: str | os.PathLike) -> dict | None:
    """The pending commit of data root `root` ({"releases": {name: entry}, "changes": {name:
    entry}}), or None."""
    path = Path(root) / JOURNAL
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"releases": {}, "changes": {}, "unreadable": True}
    if not (isinstance(journal, dict) and isinstance(journal.get("releases"), dict)
            and isinstance(journal.setdefault("changes", {}), dict)):
        return {"releases": {}, "changes": {}, "unreadable": True}
    return journal


def journal_names(journal: dict) -> set[str]:
    """The releases a journal names (put in place or changed)."""
    return set(journal["releases"]) | set(journal.get("changes", {}))


def require_whole(folder: str | os.PathLike) -> None:
    """InputError when `folder` is a release that an interrupted run left half in place."""
    folder = Path(folder)
    journal = read_journal(folder.parent)
    if journal is not None and (journal.get("unreadable") or folder.name in journal_names(journal)):
        raise InputError(f"{folder}: an interrupted run left this release incomplete (see "
                         f"{folder.parent / JOURNAL}); rerun that command (any command that "
                         f"writes into {folder.parent} finishes it)")
