"""Stage 9: the one place a release is finished and put in place.

Every command that makes or changes a release goes through `release_work` (build-release,
import-official, download from a mirror or from the publisher) or `change_release`, its form for a
change in place (fetch-covers, pack-covers, prepare-images, extract-features, build-splits, stats):

1. it takes the lock of each release it will write (a second run stops with a one-line error);
2. it finishes a commit that a killed run began, and removes the work folders and temporary files
   that killed runs left (only those no live run holds);
3. the command stages its work in a private work folder under the data root:
   - a new release is written whole in `Staging.folder(name)`, and `Staging.complete` adds its
     sequences, manifest and dataset card;
   - a release fetched whole elsewhere (a download's partial folder, every file verified) is
     handed over with `Staging.adopt` (its card is written; its manifest came with it);
   - a change in place writes the parts it replaces into `Staging.overlay(name)` and names what it
     rewrote with `Staging.changed`; what a kill must not lose (covers fetched so far, features
     extracted so far) is written into the release as it goes and named there too;
4. `Staging.commit` lists every staged release and change in a journal, then: moves the user's
   fetched or derived data (covers in every format, images/, features/) from an old folder into
   the new one when the item catalog did not change (otherwise the build stops before the commit
   unless `--overwrite`), swaps the folders by renames, moves each overlay's parts into its
   release, describes changed releases afresh (sequences when the splits changed, manifest, card),
   refreshes the data root's card, and removes the journal. A release named in a journal is refused
   by `verify`, `publish` and the loader, so a kill at any point leaves either the old releases, or
   releases that are refused until the next run (of any command on the data root) finishes the
   commit.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from pixelrec_data.covers import store as cover_store
from schemas.atomic import atomic_write_text, swap_dir
from schemas.errors import InputError
from schemas.manifest import sha256_file
from schemas.tables import SEQUENCES_DIR

from .card import card_is_ours_or_absent, write_cards, write_release_card
from .lifecycle import JOURNAL, journal_names, lock_path, read_journal, release_locks
from .manifest import MANIFEST, read_manifest, refresh_manifest, write_manifest

WORK_PREFIX = ".pixelrec-work-"
# Fetched or derived by the user after a build: never deleted without --overwrite.
USER_DATA = (*cover_store.USER_DATA, "images", "features")
_CATALOG = "items.parquet"  # covers, image cache and features depend on the item catalog only


def _sequences():
    """pipelines.sequences, loaded only where a release has sequences to make (it loads DuckDB,
    which a change that rewrites no split, such as fetch-covers, does without)."""
    from . import sequences
    return sequences


def _sequences_built(folder: Path) -> bool:
    """Make the release's sequences from its split files when it has them; whether it did."""
    sequences = _sequences()
    if not sequences.has_splits(folder):
        return False
    sequences.build_sequences(folder)
    return True


class Staging:
    """Releases being written or changed in a private work folder, finished together by `commit`."""

    def __init__(self, root: Path, work: Path, overwrite: bool):
        self.root, self.work, self.overwrite = root, work, overwrite
        self.stage = work / "stage"
        self.staged: dict[str, dict] = {}
        self.changes: dict[str, dict] = {}

    def folder(self, name: str) -> Path:
        """The staged folder of a new release `name` (empty, created)."""
        path = self.stage / name
        path.mkdir(parents=True, exist_ok=False)
        return path

    def complete(self, name: str, build: dict, counts: dict, con=None, clock=None,
                 known: dict[str, dict] | None = None, sequences_written: bool = False) -> dict:
        """Sequences, manifest and card of a staged release whose tables are written (each timed
        as a stage on `clock`, a pipelines.stages.StageClock, when given). known: manifest
        entries of files hashed as they were written (not read again). sequences_written: the
        caller wrote the sequences along with the splits."""
        def stage(label):
            return clock.stage(label) if clock is not None else contextlib.nullcontext()

        folder = self.stage / name
        sequences = _sequences()
        if sequences.has_splits(folder) and not sequences_written:
            with stage("sequences"):
                sequences.build_sequences(folder, con)
        carry, listed, carried_counts = self._user_data_to_keep(name, folder)
        with stage("manifest hashing"):
            manifest = write_manifest(folder, name, build, {**counts, **carried_counts},
                                      known=known, extra=listed)
        with stage("cards"):
            write_release_card(folder, name=name)
        self.staged[name] = {"staged": str(folder), "carry": carry}
        return manifest

    def adopt(self, name: str, folder: str | os.PathLike) -> None:
        """A release fetched whole into `folder` (its manifest with it, every file verified), put
        in place at commit as a build's releases are: its card is written here."""
        folder = Path(folder)
        if not (folder / "README.md").exists():
            write_release_card(folder, name=name)
        carry, _, _ = self._user_data_to_keep(name, folder)
        self.staged[name] = {"staged": str(folder), "carry": carry}

    def overlay(self, name: str) -> Path:
        """A folder for the parts of release `name` a change replaces (moved in at commit)."""
        path = self.work / "overlay" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def changed(self, name: str, rewritten=(), counts: dict | None = None,
                describe: bool = False) -> None:
        """Release `name` changed in place: the overlay's parts replace its own at commit, then the
        manifest entries under the `rewritten` paths are described afresh (the others must still
        match their files), `counts` added, and its card refreshed. A folder without a manifest
        gets one only when `describe`."""
        overlay = self.work / "overlay" / name
        parts = sorted(p.name for p in overlay.iterdir()) if overlay.is_dir() else []
        self.changes[name] = {"overlay": str(overlay), "parts": parts,
                              "rewritten": list(rewritten), "counts": counts or {},
                              "describe": describe}

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
        # what the new folder has of its own (covers an official download brings) stays its own
        carry = [entry for entry in present if not (folder / entry).exists()]
        manifest = read_manifest(old) if (old / MANIFEST).is_file() else {"files": [], "counts": {}}
        listed = [e for e in manifest["files"] if e["path"].startswith(cover_store.LISTED)
                  and any(e["path"] == c or e["path"].startswith(f"{c}/") for c in carry)]
        counts = {k: v for k, v in manifest["counts"].items()
                  if k == "covers" and cover_store.STATUS_TABLE in carry}
        return carry, listed, counts

    def commit(self) -> None:
        """Put every staged release in place and finish every change (journaled: a killed commit
        is finished by the next run)."""
        if not self.staged and not self.changes:
            return
        atomic_write_text(self.root / JOURNAL, json.dumps(
            {"releases": self.staged, "changes": self.changes}, indent=2, sort_keys=True) + "\n")
        _apply_journal(self.root)


def _same_catalog(old: Path, new: Path) -> bool:
    try:
        return sha256_file(old / _CATALOG) == sha256_file(new / _CATALOG)
    except OSError:
        return False


def _apply_journal(root: Path) -> None:
    """Carry user data into the staged folders and swap them into place, finish the changes, drop
    the journal, refresh the data root's card. Every step can be repeated, so a killed run's
    journal is finished here."""
    journal = read_journal(root) or {"releases": {}, "changes": {}}
    for name, entry in sorted(journal["releases"].items()):
        staged, final = Path(entry["staged"]), root / name
        if not staged.is_dir():
            continue  # already swapped in
        for item in entry.get("carry", []):
            if (final / item).exists() and not (staged / item).exists():
                _move(final / item, staged / item)
        swap_dir(staged, final)
    try:
        for name, entry in sorted(journal["changes"].items()):
            _finish_change(root / name, entry)
    except InputError:  # files that no longer match their manifest: refused, not left pending
        (root / JOURNAL).unlink(missing_ok=True)
        raise
    (root / JOURNAL).unlink(missing_ok=True)
    if journal_names(journal) and card_is_ours_or_absent(root / "README.md"):
        write_cards(root, releases_too=False)


def _move(source: Path, target: Path) -> None:
    os.replace(source, target)


def _finish_change(folder: Path, entry: dict) -> None:
    overlay = Path(entry["overlay"])
    for part in entry["parts"]:
        if (overlay / part).exists():  # else moved in before a kill
            if (overlay / part).is_dir():
                swap_dir(overlay / part, folder / part)
            else:
                _move(overlay / part, folder / part)
        for old in folder.glob(f".{part}.old-*"):  # a swap a kill cut short
            _remove(old)
    rewritten = tuple(entry["rewritten"])
    if any(p.startswith("splits/") for p in rewritten) and _sequences_built(folder):
        rewritten = (*rewritten, f"{SEQUENCES_DIR}/")
    if (folder / MANIFEST).is_file():
        refresh_manifest(folder, entry["counts"], rewritten=rewritten)
    elif entry["describe"]:  # tables placed by hand: described from scratch
        _sequences_built(folder)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", folder.name) or "release"
        write_manifest(folder, name, {"source": "unknown"}, entry["counts"])
    write_release_card(folder)


@contextlib.contextmanager
def release_work(root: str | os.PathLike, names, command: str, overwrite: bool = False,
                 in_place: bool = False):
    """Lock releases `names` of data root `root`, clean up after killed runs, yield a Staging.

    in_place: the releases are changed where they are (their own temporary files are the
    command's to resume from, so they are left alone)."""
    root = Path(root)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        finish_interrupted_commit(root)
        with release_locks([root / name for name in names], command):
            remove_leftovers(root, [] if in_place else names)
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


def change_release(folder: str | os.PathLike, command: str, change, describe: bool = False):
    """Change release `folder` in place through the one entry; returns what `change` returns.

    change(folder, overlay) -> (result, rewritten, counts): it writes the parts it replaces into
    `overlay` and what it keeps in place as it goes into `folder`; `rewritten` (manifest paths to
    describe afresh, None for none) and `counts` are then finished by the commit."""
    folder = Path(folder)
    with release_work(folder.parent, [folder.name], command, in_place=True) as staging:
        if not folder.is_dir():  # after the lock: a release being put in place is waited for
            raise InputError(f"{folder}: release folder not found")
        result, rewritten, counts = change(folder, staging.overlay(folder.name))
        if rewritten is not None:
            staging.changed(folder.name, rewritten, counts, describe=describe)
        staging.commit()
    return result


def finish_interrupted_commit(root: Path) -> None:
    """Complete the commit of a run that was killed while finishing its releases."""
    journal = read_journal(root)
    if journal is None:
        return
    if journal.get("unreadable"):
        raise InputError(f"{root / JOURNAL}: unreadable commit journal; remove it and rebuild")
    with release_locks([root / name for name in journal_names(journal)], "commit"):
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
