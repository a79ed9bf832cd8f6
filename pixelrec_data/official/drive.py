"""The publisher's file host (Google Drive), through gdown, with what gdown leaves to its caller.

gdown (maintained, and kept up with the host's changes) speaks the protocol: the 303 from
drive.google.com/uc to drive.usercontent.google.com, the confirmation page in each layout the
host has used, the session cookies (and a browser's cookies.txt, the way past the quota page),
Range resume of its `.part` files, and the embedded folder listings. Around it, this module adds:
- retries with backoff, honouring Retry-After. gdown reports every answer that is not the file as
  one FileURLRetrievalError, so after a failure one plain request to the file's address tells a
  busy host (429/5xx, Retry-After) from a missing file (404) and from the quota page;
- the quota page, whatever its status (200, 403, 400), as `HostRefused`, for the "download by
  hand" advice;
- the size of every file checked against the total the host announced (kept in `.download.json`
  beside the part), so a part that was whole when a run was killed is finished without asking
  the host for a range past its end (answered 416), and a part the host will not resume
  (416, or a changed file) is started again;
- `.part` files that are not private regular files (a hard link, a symlink) removed before any
  resume, so no byte is ever appended to a file outside the download folder;
- one-line errors.

`host` (`--host-url`) is a reverse proxy answering `/uc?export=download&id=ID` with the file
itself: gdown fetches that address as a plain URL (Range resume, retries, size checks), without
the host's pages, cookies or folder listings (see the README).
"""
from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from http.cookiejar import LoadError, MozillaCookieJar
from pathlib import Path

import gdown
import requests
from gdown.exceptions import DownloadError, FileURLRetrievalError

from schemas.errors import InputError
from schemas.atomic import atomic_write_text
from schemas.official_sources import DRIVE_HOST

RETRY_STATUS = (408, 429, 500, 502, 503, 504)
QUOTA_MARKERS = ("too many users have viewed or downloaded this file recently",
                 "download quota", "quota exceeded")
RANGE_REFUSED = "did not honor the requested byte range"
PEEK_BYTES = 64 << 10
RECORD = ".download.json"


class HostRefused(InputError):
    """The host will not serve the file now (the quota page): retrying soon won't help."""


class _Retry(Exception):
    def __init__(self, why: str, after: float | None = None):
        super().__init__(why)
        self.after = after


class _EnoughBytes(Exception):
    """Raised from gdown's progress callback once the first bytes of a file are on disk."""


class _Changed(Exception):
    """Raised from gdown's progress callback: the host announces another total than the part's."""


@dataclass
class DriveClient:
    cookies_file: Path           # the session's cookie jar (Netscape format), read and written by gdown
    host: str | None = None      # a reverse proxy's base address, or None for the host itself
    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0
    log: object = None

    def __post_init__(self):
        self.log = self.log or (lambda message: None)
        self.host = self.host.rstrip("/") if self.host else None

    # --- folders --------------------------------------------------------------------------------
    def list_tree(self, folder_id: str) -> list[tuple[str, str]]:
        """(path inside the folder, file id) of every file, subfolders included."""
        if self.host:
            raise InputError(f"--host-url {self.host}: folder listings do not pass a reverse proxy "
                             f"(gdown reads them from {DRIVE_HOST} only); use a forward proxy "
                             f"(HTTPS_PROXY) or files downloaded by hand (--from DIR)")
        link = f"{DRIVE_HOST}/drive/folders/{folder_id}"
        entries = self._with_retries(link, lambda: self._list_once(folder_id, link))
        if not entries:
            raise InputError(f"{link}: the host lists no files in this folder (an empty folder, "
                             f"or the page is not its listing)")
        return entries

    def _list_once(self, folder_id: str, link: str) -> list[tuple[str, str]]:
        try:
            found = gdown.download_folder(id=folder_id, skip_download=True, quiet=True,
                                          use_cookies=True, cookies_file=str(self.cookies_file),
                                          output=f"listing{os.sep}", timeout=self.timeout)
        except DownloadError as exc:
            status = re.search(r"status code (\d+)", str(exc))
            if status and int(status.group(1)) in RETRY_STATUS:
                raise _Retry(f"HTTP {status.group(1)}") from None
            why = f"HTTP {status.group(1)}" if status else "the host's page layout changed?"
            raise InputError(f"{link}: not a folder listing ({why}; not shared publicly, or not "
                             f"a folder?)") from None
        except requests.RequestException as exc:
            raise _Retry(f"cannot connect ({_short(exc)})") from None
        return [(entry.path.replace(os.sep, "/"), entry.id) for entry in found]

    # --- files ----------------------------------------------------------------------------------
    def download(self, file_id: str, folder: Path, progress=None, name: str | None = None) -> Path:
        """Fetch file `file_id` into folder/<served name>; resumable. A finished file is never
        fetched again: its presence (renamed from the part once whole) is the mark."""
        return self._fetch(file_id, folder, progress, name, head=None)

    def head(self, file_id: str, folder: Path, progress=None, name: str | None = None) -> bytes:
        """The file's first bytes (at least one piece of the body), read by starting its download
        and stopping it: the bytes stay in the part, which the download then continues."""
        self._fetch(file_id, folder, progress, name, head=1)
        return read_head(folder)

    def _fetch(self, file_id, folder: Path, progress, name, head) -> Path | None:
        folder.mkdir(parents=True, exist_ok=True)
        done = finished_file(folder)
        if done is not None:
            return done
        refused = [0]

        def attempt():
            settled = self._settle(folder)
            if settled is not None or (head and _part(folder) is not None):
                return settled
            try:
                return self._gdown(file_id, folder, progress, name, head)
            except _Retry as exc:
                refused[0] = refused[0] + 1 if str(exc).startswith("the host refused") else 0
                if refused[0] >= 2:  # twice in a row: the part cannot be resumed
                    self.log(f"{file_id}: the host will not resume the part; starting it again")
                    _drop_part(folder)
                raise
        return self._with_retries(file_id, attempt)

    def _gdown(self, file_id, folder: Path, progress, name, head) -> Path | None:
        record = _read_record(folder)

        def seen(done: int, total: int | None) -> None:
            if total is not None and record.get("total") not in (None, total):
                raise _Changed()
            if total is not None and record.get("total") != total:
                record["total"] = total
                atomic_write_text(folder / RECORD, f'{{"total": {total}}}')
            if progress:
                progress(done, total)
            if head and (total is None or done < total):
                raise _EnoughBytes()

        kwargs = dict(output=f"{folder}{os.sep}", quiet=True, resume=True, retries=0,
                      use_cookies=True, cookies_file=str(self.cookies_file), timeout=self.timeout,
                      progress=seen)
        try:
            if self.host:
                kwargs["output"] = str(folder / (name or "download"))
                path = Path(gdown.download(url=self._proxied(file_id), **kwargs))
            else:
                path = Path(gdown.download(id=file_id, **kwargs))
        except _EnoughBytes:
            return None
        except _Changed:
            _drop_part(folder)
            raise _Retry("the host's file changed since the part was started; starting it again",
                         0.0) from None
        except FileURLRetrievalError as exc:
            raise self._classify_page(file_id, exc) from None
        except DownloadError as exc:
            text = " ".join(str(exc).split())
            if RANGE_REFUSED in text:
                raise _Retry("the host refused to resume the part (HTTP 416, or a changed file)") from None
            raise _Retry(text[:200]) from None
        except requests.HTTPError as exc:
            raise _status_error(exc.response, self._proxied(file_id)) from None
        except (requests.RequestException, KeyError) as exc:
            raise _Retry(f"cannot connect ({_short(exc)})") from None
        return self._checked(path, folder, record.get("total"))

    def _checked(self, path: Path, folder: Path, total: int | None) -> Path:
        size = path.stat().st_size
        if total is not None and size != total:
            path.unlink()
            raise _Retry(f"{path.name}: {size:,} bytes where the host announced {total:,}; "
                         f"fetching it again")
        if self.host and _looks_like_a_page(path):
            path.unlink()
            raise InputError(f"--host-url {self.host}: the proxy answered a web page, not the file "
                             f"(the host's confirmation or quota page, which only gdown's direct "
                             f"route to {DRIVE_HOST} can pass); use HTTPS_PROXY or --from DIR")
        (folder / RECORD).unlink(missing_ok=True)
        return path

    def _proxied(self, file_id: str) -> str:
        return f"{self.host}/uc?export=download&id={file_id}"

    # --- what gdown did not say ------------------------------------------------------------------
    def _classify_page(self, file_id: str, exc: FileURLRetrievalError) -> Exception:
        """The quota page from gdown's own words, else one plain look at the file's address."""
        text = " ".join(str(exc).split())
        if any(marker in text.lower() for marker in QUOTA_MARKERS):
            return HostRefused("quota exceeded: too many users have viewed or downloaded this "
                               "file recently")
        url = f"{DRIVE_HOST}/uc?export=download&id={file_id}"
        try:
            with _session(self.cookies_file) as session, \
                    session.get(url, stream=True, timeout=self.timeout) as response:
                page = response.raw.read(PEEK_BYTES, decode_content=True).decode("utf-8", "replace")
                if any(marker in page.lower() for marker in QUOTA_MARKERS):
                    return HostRefused("quota exceeded: too many users have viewed or downloaded "
                                       "this file recently")
                if response.status_code >= 400:
                    return _status_error(response, url)
                if "Content-Disposition" in response.headers:
                    return _Retry("the host sent a page, then the file")
        except requests.RequestException as err:
            return _Retry(f"cannot connect ({_short(err)})")
        return InputError(f"{url}: the host answered a web page that gdown cannot read (its "
                          f"layout changed? a newer gdown may know it)")

    def _settle(self, folder: Path) -> Path | None:
        """Make the folder's part safe to resume; finish it when it is already whole."""
        for part in [p for p in folder.iterdir() if p.name.endswith(".part")]:
            if not _private_regular(part):
                self.log(f"{part}: not a private regular file (a link?); removed, not resumed")
                part.unlink()
        parts = sorted((p for p in folder.iterdir() if p.name.endswith(".part")),
                       key=lambda p: p.stat().st_size)
        for extra in parts[:-1]:  # gdown resumes only a lone part: keep the longest
            extra.unlink()
        total = _read_record(folder).get("total")
        if not parts or total is None:
            return None
        part, size = parts[-1], parts[-1].stat().st_size
        if size > total:
            part.unlink()
        elif size == total and len(part.name) > 13:  # <name> + 8 random characters + .part
            target = folder / part.name[:-13]
            os.replace(part, target)
            (folder / RECORD).unlink(missing_ok=True)
            self.log(f"{target.name}: whole from an earlier run; finished without fetching")
            return target
        return None

    def _with_retries(self, what: str, attempt):
        for tries in range(self.retries + 1):
            try:
                return attempt()
            except _Retry as exc:
                if tries == self.retries:
                    raise InputError(f"{what}: {exc} (after {tries + 1} tries); rerun to resume") from None
                wait = exc.after if exc.after is not None else self.backoff * 2 ** tries
                self.log(f"{what}: {exc}; retrying in {wait:.1f}s")
                time.sleep(min(wait, 300.0))
        raise AssertionError("unreachable")


def finished_file(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and not p.name.endswith(".part") and p.is_file())
    return done[0] if done else None


def read_head(folder: Path, size: int = PEEK_BYTES) -> bytes:
    """The first bytes of the folder's finished file, else of its part."""
    path = finished_file(folder) or _part(folder)
    if path is None:
        return b""
    with open(path, "rb") as f:
        return f.read(size)


def load_cookies(path: Path) -> MozillaCookieJar:
    """A browser's cookies.txt (Netscape format), or a one-line error."""
    jar = MozillaCookieJar(str(path))
    try:
        jar.load(ignore_discard=True, ignore_expires=True)
    except (OSError, LoadError, UnicodeDecodeError) as exc:
        raise InputError(f"--cookies {path}: not a readable cookies.txt (Netscape format, as "
                         f"browsers export it): {_short(exc)}") from None
    return jar


def _session(cookies_file: Path) -> requests.Session:
    session = requests.Session()
    if Path(cookies_file).is_file():
        try:
            session.cookies.update(load_cookies(Path(cookies_file)))
        except InputError:
            pass
    return session


def _status_error(response, url: str) -> Exception:
    status = response.status_code
    if status in RETRY_STATUS:
        return _Retry(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
    return InputError(f"{url}: HTTP {status} (not shared publicly, or moved?)")


def _part(folder: Path) -> Path | None:
    parts = [p for p in folder.iterdir() if p.name.endswith(".part")] if folder.is_dir() else []
    return max(parts, key=lambda p: p.stat().st_size) if parts else None


def _drop_part(folder: Path) -> None:
    for part in [p for p in folder.iterdir() if p.name.endswith(".part")]:
        part.unlink()
    (folder / RECORD).unlink(missing_ok=True)


def _private_regular(path: Path) -> bool:
    info = os.lstat(path)
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def _looks_like_a_page(path: Path) -> bool:
    with open(path, "rb") as f:
        start = f.read(512).lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _read_record(folder: Path) -> dict:
    import json

    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


__all__ = ["DriveClient", "HostRefused", "finished_file", "load_cookies", "read_head"]
