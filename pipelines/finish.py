"""Stage 9: the one place a release is completed and put in place.

Every command that writes a release (build-release, import-official, download, and the Python API)
goes through `release_work`:

1. it takes the lock of each release it will write (a second run stops with a one-line error);
2. it finishes a commit that a killed run began, and removes the work folders and temporary files
   that killed runs left (only those no live run holds);
3. the caller writes each release's tables into a staged folder inside a private work folder under
   the data root; `Staging.complete` adds sequences, manifest and dataset card there;
4. `Staging.commit` puts every staged release in place: it lists them in a journal, moves the
   user's fetched or derived data (covers, covers.parquet, images/, features/) from the old folder
   into the new one when the item catalog did not change, swaps the folders by renames, then removes
   the journal. A release named in a journal is refused by `verify`, `publish` and the loader, so a
   kill at any point leaves either the old releases, or folders that are refused until the next
   run finishes the commit.
Commands that change a release in place (fetch-covers, build-splits, stats) call `update_release`.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path

from schemas.errors import InputError
from schemas.io import atomic_write_text, swap_dir
from schemas.lifecycle import JOURNAL, crash_point, lock_path, read_journal, release_locks
from schemas.manifest import sha256_file

from .card import card_is_ours_or_absent, write_cards, write_release_card
from .manifest import MANIFEST, read_manifest, refresh_manifest, write_manifest
from .sequences import SEQUENCES_DIR, build_sequences, has_splits

WORK_PREFIX = ".pixelrec-work-"
# Fetched or derived by the user after a build: never deleted without --overwrite.
USER_DATA = ("covers", "covers.parquet", "cover_shards", "images", "features")
_LISTED_USER_DATA = ("covers/", "covers.parquet", "cover_shards/")  # the ones a manifest lists
_CATALOG = "items.parquet"  # covers, image cache and features depend on the item catalog only


class Staging:
    """Releases being written in a private work folder, put in place together by `commit`."""

    def __init__(self, root: Path, work: Path, overwrite: bool):
        self.root, self.work, self.overwrite = root, work, overwrite
        self.stage = work / "stage"
        self.staged: dict[str, dict] = {}

    def folder(self, name: str) -> Path:
        """The staged folder of release `name` (empty, created)."""
        path = self.stage / name
        path.mkdir(parents=True, exist_ok=False)
        return path

    def complete(self, name: str, build: dict, counts: dict, con=None, clock=None) -> dict:
        """Sequences, manifest and card of a staged release whose tables are written (each timed
        as a stage on `clock`, a pipelines.stages.StageClock, when given)."""
        def stage(label):
            return clock.stage(label) if clock is not None else contextlib.nullcontext()

        folder = self.stage / name
        with stage("sequences"):
            if has_splits(folder):
                build_sequences(folder, con)
        carry, listed, carried_counts = self._user_data_to_keep(name, folder)
        with stage("manifest hashing"):
            manifest = write_manifest(folder, name, build, {**counts, **carried_counts},
                                      extra=listed)
        with stage("cards"):
            write_release_card(folder, sequences=False, name=name)
        self.staged[name] = {"staged": str(folder), "carry": carry}
        crash_point(f"staged:{name}")
        return manifest

    def _user_data_to_keep(self, name: str, folder: Path) -> tuple[list[str], list[dict], dict]:
        """What of the old release's user data moves into the new one (refusing to drop any)."""
        old = self.root / name
        if not old.exists():
            return [], [], {}
        present = [entry for entry in USER_DATA if (old / entry).exists()]
        if not (old / MANIFEST).is_file() and not self.overwrite:
            raise InputError(f"{old}: exists but is not a release (no {MANIFEST}); move it away or "
                             "pass --overwrite to replace it")
        if not present:
            return [], [], {}
        if not _same_catalog(old, folder):
            if self.overwrite:
                return [], [], {}
            raise InputError(f"{old}: the new build changes its items, so its "
                             f"{', '.join(present)} would be lost; pass --overwrite to replace them "
                             "(or build into another --out)")
        manifest = read_manifest(old) if (old / MANIFEST).is_file() else {"files": [], "counts": {}}
        listed = [e for e in manifest["files"] if e["path"].startswith(_LISTED_USER_DATA)]
        counts = {k: v for k, v in manifest["counts"].items() if k == "covers"}
        return present, listed, counts

    def commit(self) -> None:
        """Put every staged release in place (journaled: a killed commit is finished next time)."""
        if not self.staged:
            return
        atomic_write_text(self.root / JOURNAL, json.dumps({"releases": self.staged}, indent=2,
                                                          sort_keys=True) + "\n")
        crash_point("journal")
        _apply_journal(self.root)


def _same_catalog(old: Path, new: Path) -> bool:
    try:
        return sha256_file(old / _CATALOG) == sha256_file(new / _CATALOG)
    except OSError:
        return False


def _apply_journal(root: Path) -> None:
    """Carry user data into the staged folders, swap them into place, drop the journal, refresh
    the data root's card. Every step can be repeated, so a killed run's journal is finished here."""
    journal = read_journal(root) or {"releases": {}}
    for name, entry in sorted(journal["releases"].items()):
        staged, final = Path(entry["staged"]), root / name
        if not staged.is_dir():
            continue  # already swapped in
        for item in entry.get("carry", []):
            if (final / item).exists() and not (staged / item).exists():
                os.replace(final / item, staged / item)
                crash_point(f"carried:{name}:{item}")
        swap_dir(staged, final)
        crash_point(f"swapped:{name}")
    (root / JOURNAL).unlink(missing_ok=True)
    if journal["releases"] and card_is_ours_or_absent(root / "README.md"):
        write_cards(root, releases_too=False)


@contextlib.contextmanager
def release_work(root: str | os.PathLike, names, command: str, overwrite: bool = False):
    """Lock releases `names` of data root `root`, clean up after killed runs, yield a Staging."""
    root = Path(root)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        finish_interrupted_commit(root)
        with release_locks([root / name for name in names], command):
            remove_leftovers(root, names)
            work = root / f"{WORK_PREFIX}{uuid.uuid4().hex[:12]}"
            work.mkdir()
            holder = os.open(work / ".in-use", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(holder, fcntl.LOCK_EX)  # tells other runs' clean-up this folder is live
            try:
                yield Staging(root, work, overwrite)
            finally:
                shutil.rmtree(work, ignore_errors=True)
                os.close(holder)
    except BaseException:
        if created:  # a run that failed leaves no data root it made (only its lock files were there)
            for name in names:
                lock_path(root / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                root.rmdir()
        raise


def finish_interrupted_commit(root: Path) -> None:
    """Complete the commit of a run that was killed while putting its releases in place."""
    journal = read_journal(root)
    if journal is None:
        return
    if journal.get("unreadable"):
        raise InputError(f"{root / JOURNAL}: unreadable commit journal; remove it and rebuild")
    with release_locks([root / name for name in journal["releases"]], "commit"):
        if read_journal(root) is not None:
            _apply_journal(root)


def remove_leftovers(root: Path, names) -> None:
    """Work folders no live run holds, and temporary files of the releases we hold."""
    for work in root.glob(f"{WORK_PREFIX}*"):
        if work.is_dir() and not work.is_symlink() and not _in_use(work):
            shutil.rmtree(work, ignore_errors=True)
    for name in names:
        for pattern in (f".{name}.tmp-*", f".{name}.old-*"):
            for path in root.glob(pattern):
                _remove(path)
        folder = root / name
        if folder.is_dir() and not folder.is_symlink():
            for path in folder.rglob(".*.tmp-*"):
                _remove(path)


def _in_use(work: Path) -> bool:
    try:
        fd = os.open(work / ".in-use", os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False  # never marked: a run killed in its first instant
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def update_release(folder: str | os.PathLike, rewritten: tuple[str, ...], counts: dict | None = None,
                   con=None) -> dict:
    """After a command rewrote part of a release in place (the caller holds its lock): sequences
    when the splits changed, the manifest (only `rewritten` paths described afresh), the card."""
    folder = Path(folder)
    if any(p.startswith("splits/") for p in rewritten) and has_splits(folder):
        build_sequences(folder, con)
        rewritten = (*rewritten, f"{SEQUENCES_DIR}/")
    manifest = refresh_manifest(folder, counts, rewritten=rewritten)
    write_release_card(folder, sequences=False)
    if card_is_ours_or_absent(folder.parent / "README.md"):
        write_cards(folder.parent, releases_too=False)
    return manifest


def card_for_downloaded(folder: str | os.PathLike, name: str) -> None:
    """The local dataset card of a release fetched whole (before it is renamed into place)."""
    folder = Path(folder)
    if not (folder / "README.md").exists():
        write_release_card(folder, sequences=False, name=name)


def refresh_root_card(root: str | os.PathLike) -> None:
    root = Path(root)
    if card_is_ours_or_absent(root / "README.md"):
        write_cards(root, releases_too=False)


def put_in_place(root: str | os.PathLike, name: str, staged: str | os.PathLike,
                 overwrite: bool = False) -> Path:
    """A release staged elsewhere (a download's partial folder, complete and verified) put in
    place as a build's releases are: the user's data carried over, journaled renames."""
    root, staged = Path(root), Path(staged)
    staging = Staging(root, staged.parent, overwrite)
    carry, _, _ = staging._user_data_to_keep(name, staged)
    staging.staged[name] = {"staged": str(staged), "carry": carry}
    staging.commit()
    return root / name
