"""A small client for the publisher's file host (Google Drive's public download protocol).

Why not gdown: gdown handles Drive's confirmation page only when the address's host name is
drive.google.com or docs.google.com, and builds its file and folder addresses on that name, so it
cannot be pointed at another base address (a proxy, or the local server the tests run); it neither
retries 429/5xx answers with backoff nor checks a resumed file's total. The protocol is small:

- a file: GET <host>/uc?export=download&id=ID. The file comes with Content-Disposition. A large
  file first gets an HTML "virus scan warning" page whose form (id="download-form") names the
  address and fields to ask again with; a file over its download quota gets an HTML page saying
  "Too many users have viewed or downloaded this file recently" (no retry helps for hours).
- resume: Range: bytes=N- answered 206 with Content-Range N-M/TOTAL (200 means start again).
- a folder: GET <host>/embeddedfolderview?id=ID lists entries (id="entry-ID", a title, and a link
  to /drive/folders/ID for a subfolder).
"""
from __future__ import annotations

import html
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import InputError

RETRY_STATUS = (403, 408, 429, 500, 502, 503, 504)
QUOTA_MARKERS = ("too many users have viewed or downloaded this file recently",
                 "download quota", "quota exceeded")
CHUNK = 1 << 20
MAX_PAGE = 4 << 20  # an HTML answer is read whole only up to this size
USER_AGENT = "pixelrec (+https://github.com/westlake-repl/PixelRec data, publisher's hosting)"
_ENTRY = re.compile(r'<div class="flip-entry" id="entry-([A-Za-z0-9_-]+)"(.*?)'
                    r'<div class="flip-entry-title">(.*?)</div>', re.S)
_FORM = re.compile(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')
_ERROR_CAPTION = re.compile(r'<p class="uc-error-subcaption">(.*?)</p>', re.S)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


class HostRefused(InputError):
    """The host will not serve the file now (quota page, access denied): retrying soon won't help."""


@dataclass(frozen=True)
class Listed:
    id: str
    name: str
    is_folder: bool


class _Retry(Exception):
    def __init__(self, why: str, after: float | None = None):
        super().__init__(why)
        self.after = after


class DriveClient:
    def __init__(self, host: str, retries: int = 5, backoff: float = 1.0, timeout: float = 60.0,
                 log=None):
        self.host = host.rstrip("/")
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.log = log or (lambda message: None)

    # --- folders --------------------------------------------------------------------------------
    def list_tree(self, folder_id: str, depth: int = 3, prefix: str = "") -> list[tuple[str, str]]:
        """(path inside the folder, file id) of every file, subfolders to `depth` levels."""
        out = []
        for entry in self.list_folder(folder_id):
            path = f"{prefix}{entry.name}"
            if entry.is_folder:
                if depth > 1:
                    out.extend(self.list_tree(entry.id, depth - 1, f"{path}/"))
            else:
                out.append((path, entry.id))
        return out

    def list_folder(self, folder_id: str) -> list[Listed]:
        url = f"{self.host}/embeddedfolderview?id={urllib.parse.quote(folder_id)}"
        page = self._with_retries(url, lambda: self._read_page(url), f"folder {folder_id}")
        entries = [Listed(fid, html.unescape(re.sub(r"<[^>]+>", "", title)).strip(),
                          "/folders/" in body) for fid, body, title in _ENTRY.findall(page)]
        if not entries and "flip-entry" not in page and "folder" not in page.lower():
            raise InputError(f"{url}: not a folder listing (the host's page layout changed?)")
        return entries

    def _read_page(self, url: str) -> str:
        with self._open(url) as response:
            return response.read(MAX_PAGE).decode("utf-8", "replace")

    # --- files ----------------------------------------------------------------------------------
    def download(self, file_id: str, folder: Path, progress=None) -> Path:
        """Fetch file `file_id` into folder/<name>; resumable (folder/.partial + .partial.json).

        A finished file is never fetched again: its presence (renamed from .partial when whole)
        is the mark. Returns its path.
        """
        folder.mkdir(parents=True, exist_ok=True)
        done = [p for p in folder.iterdir() if not p.name.startswith(".")]
        if done:
            return done[0]
        url = f"{self.host}/uc?export=download&id={urllib.parse.quote(file_id)}"
        return self._with_retries(url, lambda: self._fetch_once(url, folder, progress), file_id)

    def _fetch_once(self, url: str, folder: Path, progress) -> Path:
        part, state_path = folder / ".partial", folder / ".partial.json"
        state = _read_json(state_path)
        have = part.stat().st_size if part.exists() and state else 0
        for _ in range(4):  # the confirmation page, at most a few times
            headers = {"Range": f"bytes={have}-"} if have else {}
            response = self._open(url, headers)
            disposition = response.headers.get("Content-Disposition")
            if disposition is None and "html" in response.headers.get("Content-Type", ""):
                with response:
                    url = self._confirmed_url(url, response.read(MAX_PAGE).decode("utf-8", "replace"))
                continue
            with response:
                return self._store(response, folder, part, state_path, state, have, progress)
        raise InputError(f"{url}: the host kept answering confirmation pages")

    def _store(self, response, folder, part, state_path, state, have, progress) -> Path:
        name = _file_name(response.headers.get("Content-Disposition"), folder.name)
        start, total = _range_of(response, have)
        if start and state.get("total") != total:  # the file changed since the part was started
            part.unlink(missing_ok=True)
            state_path.unlink(missing_ok=True)
            raise _Retry("the host's file changed since the last run; starting it again", 0.0)
        have = start
        _write_json(state_path, {"name": name, "total": total})
        with open(part, "r+b" if have else "wb") as out:
            out.seek(have)
            out.truncate()
            if progress:
                progress(have, total, name)
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.IncompleteRead, OSError) as exc:
                    raise _Retry(f"connection broke after {out.tell():,} bytes ({exc.__class__.__name__})")
                if not chunk:
                    break
                out.write(chunk)
                if total is not None and out.tell() > total:
                    raise _Retry(f"more bytes than the announced {total:,}; starting again") from None
                if progress:
                    progress(len(chunk), total, name)
            got = out.tell()
        if total is not None and got != total:
            raise _Retry(f"body ended at {got:,} of {total:,} bytes")
        target = folder / name
        os.replace(part, target)
        state_path.unlink(missing_ok=True)
        return target

    def _confirmed_url(self, url: str, page: str) -> str:
        lowered = page.lower()
        if any(marker in lowered for marker in QUOTA_MARKERS):
            raise HostRefused("quota exceeded: too many users have viewed or downloaded this file "
                              "recently")
        form = _FORM.search(page)
        if form:
            action = urllib.parse.urljoin(url, html.unescape(form.group(1)))
            fields = {k: html.unescape(v) for k, v in _HIDDEN.findall(form.group(2))}
            return f"{action}?{urllib.parse.urlencode(fields)}"
        caption = _ERROR_CAPTION.search(page)
        if caption:
            raise HostRefused(re.sub(r"<[^>]+>", "", html.unescape(caption.group(1))).strip()[:200])
        raise InputError(f"{url}: the host answered a web page, not the file")

    # --- transport ------------------------------------------------------------------------------
    def _open(self, url: str, headers: dict | None = None):
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in RETRY_STATUS:
                raise _Retry(f"HTTP {exc.code}", _retry_after(exc.headers.get("Retry-After")))
            if exc.code == 416:  # asked past the end: the part is stale
                raise _Retry("HTTP 416 for the resumed range")
            raise InputError(f"{url}: HTTP {exc.code} (not shared publicly, or moved?)") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retry(f"cannot connect ({reason})") from None

    def _with_retries(self, url: str, attempt, what: str):
        for tries in range(self.retries + 1):
            try:
                return attempt()
            except _Retry as exc:
                if tries == self.retries:
                    raise InputError(f"{url}: {exc} (after {tries + 1} tries); rerun to resume") from None
                wait = exc.after if exc.after is not None else self.backoff * 2 ** tries
                self.log(f"{what}: {exc}; retrying in {wait:.1f}s")
                time.sleep(min(wait, 300.0))
        raise AssertionError("unreachable")


def _range_of(response, have: int) -> tuple[int, int | None]:
    """(first byte of the body, total size or None) from a 200 or 206 answer."""
    if response.status == 206:
        match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != have:
            raise _Retry("a resumed answer for another range; starting again")
        total = None if match.group(3) == "*" else int(match.group(3))
        return have, total
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


def _file_name(disposition: str | None, fallback: str) -> str:
    """The served file name, reduced to a safe base name (never a path)."""
    name = ""
    if disposition:
        star = re.search(r"filename\*=UTF-8''([^;]+)", disposition, re.I)
        plain = re.search(r'filename="?([^";]+)"?', disposition, re.I)
        name = urllib.parse.unquote(star.group(1)) if star else plain.group(1) if plain else ""
    name = _SAFE_NAME.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name or fallback


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["DriveClient", "HostRefused", "Listed"]
