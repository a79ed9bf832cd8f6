"""Which of the publisher's files a subset needs, fetched in the order that wastes the least.

Tables first: the subset's files are found by name in the folders it draws from; a CSV is fetched
whole, any other file is first started and stopped after its first bytes (kept for the download
to continue), which tell a zip of tables from a covers archive. The covers archives come only once
the tables passed their checks (they are tens of GB), each first sniffed so that a format this
toolkit cannot read (7z, rar) is refused before its download. Every file lands under
<downloads>/<file id>/ (see drive.py for the resume and size rules).

The session's cookies (a copy of `--cookies FILE`, or none) live in one file under the data root,
private to the user, for gdown to read and write; it is removed when the command ends.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from schemas.errors import InputError
from schemas.official_sources import OFFICIAL_FEATURES, OfficialSource

from .archives import REFUSED_FORMATS, TAR, TAR_GZ, TAR_ZST, ZIP, Sniffed, refuse_format, sniff
from .drive import DriveClient, HostRefused, load_cookies, read_head


class Fetcher:
    def __init__(self, source: OfficialSource, downloads: Path, client: DriveClient, log, progress,
                 refetch: bool = False):
        self.source, self.downloads, self.client = source, downloads, client
        self.log, self.progress = log, progress
        self.refetch = refetch
        self._cleared: set[str] = set()
        self.covers_found: list[tuple[str, str, str]] = []  # (logical, file id, name) sniffed as covers

    # --- tables ---------------------------------------------------------------------------------
    def tables(self) -> list[tuple[str, Path]]:
        """(logical path, local path) of the subset's table files (CSVs, zips of CSVs)."""
        out = []
        for logical, file_id, name in self._listed(self.source.tables, match=True):
            if name.lower().endswith(".csv"):
                out.append((logical, self.fetch(logical, file_id, name)))
                continue
            found = self.sniff(logical, file_id, name)
            if found.format == ZIP and found.role == "tables":
                out.append((logical, self.fetch(logical, file_id, name)))
            elif found.role == "covers" or found.format in (TAR, TAR_GZ, TAR_ZST) + REFUSED_FORMATS:
                self.covers_found.append((logical, file_id, name))
            else:
                self.log(f"note: {logical}: neither tables nor covers ({found.format}); skipped")
        return out

    # --- covers ---------------------------------------------------------------------------------
    def covers(self) -> list[Path]:
        """Every covers archive of the subset, fetched (after its format was checked)."""
        entry = self.source.covers
        if entry.kind == "file":
            candidates = [(entry.title, entry.id, entry.title)]
        elif entry in self.source.tables:
            candidates = list(self.covers_found)
        else:
            candidates = self._listed((entry,), match=False)
        sniffed = [(c, self.sniff(*c)) for c in candidates]
        for (logical, file_id, _), found in sniffed:  # every refusal before any long download
            refuse_format(found, f"{logical} ({_link(file_id)})", self.source.name)
        wanted = [c for c, found in sniffed if found.role == "covers" or found.role is None
                  and found.format in (ZIP, TAR, TAR_GZ, TAR_ZST)]
        return [self.fetch(*c) for c in wanted]

    # --- features -------------------------------------------------------------------------------
    def features(self, kinds) -> dict[str, Path]:
        return {kind: self.fetch(OFFICIAL_FEATURES[kind].title, OFFICIAL_FEATURES[kind].id, None)
                for kind in kinds}

    # --- one file -------------------------------------------------------------------------------
    def fetch(self, logical: str, file_id: str, name: str | None) -> Path:
        self.log(f"fetching {logical} ({file_id}) ...")
        return self._refused_as_advice(logical, lambda: self.client.download(
            file_id, self._folder(file_id), progress=_bytes_bar(self.progress, logical), name=name))

    def sniff(self, logical: str, file_id: str, name: str | None) -> Sniffed:
        folder = self._folder(file_id)
        head = read_head(folder)
        if not head:
            self._refused_as_advice(logical, lambda: self.client.head(file_id, folder, name=name))
            head = read_head(folder)
        return sniff(head)

    def _folder(self, file_id: str) -> Path:
        folder = self.downloads / file_id
        if self.refetch and file_id not in self._cleared:
            shutil.rmtree(folder, ignore_errors=True)
            self._cleared.add(file_id)
        return folder

    def _refused_as_advice(self, logical: str, work):
        try:
            return work()
        except HostRefused as exc:
            links = " , ".join(self.source.links())
            raise InputError(f"{logical}: the host refuses it for now ({exc}); retry later, pass "
                             f"your browser's Google cookies with --cookies FILE, or download the "
                             f"files by hand from {links} and run `pixelrec download --subset "
                             f"{self.source.name} --from DIR`") from None

    def _listed(self, entries, match: bool) -> list[tuple[str, str, str]]:
        """(logical path, file id, name) of the files of `entries` (matching the subset's names)."""
        out = []
        for entry in entries:
            if entry.kind == "file":
                out.append((entry.title, entry.id, entry.title))
                continue
            for path, file_id in self._refused_as_advice(entry.link,
                                                         lambda: self.client.list_tree(entry.id)):
                if not match or self.source.matches(path):
                    out.append((f"{entry.title}/{path}", file_id, path.rsplit("/", 1)[-1]))
        return list(dict.fromkeys(out))


def start_cookie_session(path: Path, cookies: Path | None) -> None:
    """The session's cookie file: a private copy of the user's cookies.txt, or none at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if cookies is None:
        return
    jar = load_cookies(Path(cookies))
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    jar.save(str(path), ignore_discard=True, ignore_expires=True)


def _link(file_id: str) -> str:
    from schemas.official_sources import DRIVE_HOST

    return f"{DRIVE_HOST}/file/d/{file_id}/view"


def _bytes_bar(progress, label):
    """gdown reports (bytes so far, total): a bar per file, opened on the first report."""
    if progress is None:
        return None
    state = {}

    def update(done, total):
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = progress(total=total, desc=label[-40:], unit="B", unit_scale=True)
        bar.update(max(0, done - bar.n))
        if total is not None and bar.n >= total:
            bar.close()
    return update


__all__ = ["Fetcher", "start_cookie_session"]
