"""An imitation of the publisher's file host (Google Drive) in the shapes the real host serves,
reached by the real client through `official_network.NamedHosts` (TLS, real host names, a proxy).

Shapes and where they come from:
- drive.google.com/uc?id=ID (and docs.google.com/uc) answers 303 to
  drive.usercontent.google.com/download?id=ID&export=download: the second host serves the files.
- A large file first gets the "virus scan warning" page (status 200, text/html). Its form
  `id="download-form"` has the absolute action https://drive.usercontent.google.com/download and
  the hidden fields id, export, confirm=t and uuid; the uuid must be one this host issued and the
  warning cookie it set must come back, else the page is answered again. Other layouts the host
  has used (`confirm_shape`): the form with its action first, an href link to /uc?export=download
  with a confirm token on docs.google.com, and a "downloadUrl" JSON field (the four shapes read
  by gdown's get_url_from_gdrive_confirmation).
- The quota page ("Too many users have viewed or downloaded this file recently", in
  <p class="uc-error-subcaption">) with status 200, 403 or 400; `quota_unless_cookie` lets a
  request through when it carries that cookie (a signed-in browser's cookies get past it).
- Errors (404, 416, 429, 5xx) are Google's HTML error page, 429/5xx with Retry-After.
- Range: 206 with Content-Range; If-Range against the ETag; a range starting at or past the end
  answers 416 with Content-Range: bytes */TOTAL.
- /embeddedfolderview?id=ID: the embedded folder page of gdown's fixture
  tests/data/embedded-folder-view-sample.html (a <title>, then <a> links to
  /file/d/ID/view?usp=drive_web and /drive/folders/ID, each with an icon and the name); an id
  that is not a shared folder answers the 404 error page.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiohttp import web

from official_network import NamedHosts, refuse_non_loopback

DRIVE, DOCS, CONTENT = "drive.google.com", "docs.google.com", "drive.usercontent.google.com"
WARNING_COOKIE = "download_warning_13058876669334088843"
QUOTA_TEXT = ("Too many users have viewed or downloaded this file recently. Please try accessing the "
              "file again later. If the file you are trying to access is particularly large or is "
              "shared with many people, it may take up to 24 hours to be able to view or download "
              "the file. If you still can't access a file after 24 hours, contact your domain "
              "administrator.")
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 416: "Requested Range Not Satisfiable",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def drive_id(label: str) -> str:
    """A Drive-shaped id (33 characters of [-\\w], as the host's) derived from a label."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(label.encode()).digest()).decode()
    return "1" + digest[:32]


@dataclass
class HostFile:
    name: str
    body: bytes
    large: bool = False             # behind the virus-scan warning page
    confirm_shape: str = "form"     # form | form-action-first | href | json
    quota: int | None = None        # answer the quota page with this status
    quota_unless_cookie: str | None = None  # "NAME=VALUE" that gets past the quota page
    failures: list = field(default_factory=list)  # statuses answered first, one per request
    truncate_once: bool = False     # the first full answer stops halfway
    short_once: bool = False        # the first answer announces the full size, sends one byte less
    slow_s: float = 0.0             # pause between 64 KB pieces of the body

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


class DriveHost:
    def __init__(self):
        self.files: dict[str, HostFile] = {}
        self.folders: dict[str, tuple[str, list[tuple[str, str, bool]]]] = {}
        self.requests: Counter = Counter()     # file id -> requests to the file host
        self.body_bytes: Counter = Counter()   # file id -> body bytes sent
        self.answers: dict[str, list] = defaultdict(list)  # file id -> (status, Range asked, kind)
        self.listings: Counter = Counter()     # folder id -> folder page requests
        self.tokens: set[str] = set()          # uuids and confirm tokens of pages served
        self._serial = itertools.count(1)

    def add_file(self, file_id: str, name: str, body: bytes, **kw) -> None:
        self.files[file_id] = HostFile(name, body, **kw)

    def add_folder(self, folder_id: str, entries: list[tuple[str, str, bool]],
                   title: str = "folder") -> None:
        self.folders[folder_id] = (title, entries)  # entries: (id, name, is_folder)

    def apps(self) -> dict[str, web.Application]:
        drive = web.Application()
        drive.router.add_get("/uc", self.uc)
        drive.router.add_get("/embeddedfolderview", self.folder)
        docs = web.Application()
        docs.router.add_get("/uc", self.uc)
        content = web.Application()
        content.router.add_get("/download", self.download)
        return {DRIVE: drive, DOCS: docs, CONTENT: content}

    # --- drive.google.com ---------------------------------------------------------------------
    async def uc(self, request):
        query = {k: v for k, v in request.query.items() if k in ("id", "export", "confirm")}
        query.setdefault("export", "download")
        target = f"https://{CONTENT}/download?" + "&".join(f"{k}={v}" for k, v in query.items())
        return web.Response(status=303, headers={"Location": target}, content_type="text/html",
                            text=f'<a href="{html.escape(target)}">See other</a>')

    async def folder(self, request):
        folder_id = request.query.get("id", "")
        self.listings[folder_id] += 1
        if folder_id not in self.folders:
            return error_page(404)
        title, entries = self.folders[folder_id]
        return web.Response(text=folder_page(title, entries), content_type="text/html")

    # --- drive.usercontent.google.com ---------------------------------------------------------
    async def download(self, request):
        file_id = request.query.get("id", "")
        f = self.files.get(file_id)
        self.requests[file_id] += 1
        asked = request.headers.get("Range")
        if f is None:
            return self._answer(file_id, asked, "error", error_page(404))
        if f.failures:
            return self._answer(file_id, asked, "error", error_page(f.failures.pop(0), retry_after=0))
        if f.quota is not None and not _has_cookie(request, f.quota_unless_cookie):
            return self._answer(file_id, asked, "quota", quota_page(f.quota))
        if f.large and not self._confirmed(request):
            return self._answer(file_id, asked, "warning", self._warning(file_id, f))
        return await self._serve(request, file_id, f, asked)

    def _answer(self, file_id, asked, kind, response):
        self.answers[file_id].append((response.status, asked, kind))
        return response

    def _confirmed(self, request) -> bool:
        confirm, uuid = request.query.get("confirm"), request.query.get("uuid")
        token_ok = (confirm == "t" and uuid in self.tokens) or (confirm in self.tokens)
        return token_ok and request.cookies.get(WARNING_COOKIE) is not None

    def _warning(self, file_id: str, f: HostFile):
        token = f"{next(self._serial):04d}-{hashlib.sha256(file_id.encode()).hexdigest()[:12]}"
        self.tokens.add(token)
        response = web.Response(text=warning_page(file_id, f, token), content_type="text/html")
        response.set_cookie(WARNING_COOKIE, token, path="/", secure=True, httponly=True)
        return response

    async def _serve(self, request, file_id: str, f: HostFile, asked: str | None):
        size, start = len(f.body), 0
        headers = {"Content-Disposition": f"attachment; filename=\"{f.name}\"; "
                                          f"filename*=UTF-8''{f.name}",
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "ETag": f.etag}
        if_range = request.headers.get("If-Range")
        if asked and asked.startswith("bytes=") and if_range in (None, f.etag):
            start = int(asked[6:].split("-")[0])
            if start >= size:
                return self._answer(file_id, asked, "416",
                                    error_page(416, {"Content-Range": f"bytes */{size}"}))
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        status = 206 if start or "Content-Range" in headers else 200
        self.answers[file_id].append((status, asked, "file"))
        body = f.body[start:]
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        if (f.truncate_once or f.short_once) and start == 0:
            cut = body[: len(body) // 2] if f.truncate_once else body[:-1]
            f.truncate_once = f.short_once = False
            await response.write(cut)
            self.body_bytes[file_id] += len(cut)
            request.transport.close()
            return response
        step = 1 << 16 if f.slow_s else max(len(body), 1)
        for at in range(0, len(body), step):
            await response.write(body[at:at + step])
            self.body_bytes[file_id] += len(body[at:at + step])
            if f.slow_s:
                await asyncio.sleep(f.slow_s)
        await response.write_eof()
        return response


def _has_cookie(request, wanted: str | None) -> bool:
    if not wanted:
        return False
    name, _, value = wanted.partition("=")
    return request.cookies.get(name) == value


# --- the host's pages -------------------------------------------------------------------------
def error_page(status: int, headers: dict | None = None, retry_after: int | None = None):
    reason = REASONS.get(status, "Error")
    page = ("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <meta name=viewport "
            "content=\"initial-scale=1, minimum-scale=1, width=device-width\">\n"
            f"  <title>Error {status} ({reason})!!1</title>\n"
            "  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>\n"
            f"  <p><b>{status}.</b> <ins>That\u2019s an error.</ins>\n"
            "  <p>The server cannot process the request.  <ins>That\u2019s all we know.</ins>\n")
    extra = dict(headers or {})
    if retry_after is not None:
        extra["Retry-After"] = str(retry_after)
    return web.Response(status=status, text=page, content_type="text/html", headers=extra)


def quota_page(status: int):
    page = ("<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title><meta "
            "http-equiv=\"content-type\" content=\"text/html; charset=utf-8\"/></head><body>"
            "<div class=\"uc-main\"><div id=\"uc-text\"><p class=\"uc-error-caption\">Sorry, you "
            "can&#39;t view or download this file at this time.</p><p class=\"uc-error-subcaption\">"
            f"{html.escape(QUOTA_TEXT)}</p></div></div><div class=\"uc-footer\"><hr "
            "class=\"uc-footer-divider\"></div></body></html>")
    return web.Response(status=status, text=page, content_type="text/html")


def warning_page(file_id: str, f: HostFile, token: str) -> str:
    fields = (f'<input type="hidden" name="id" value="{file_id}"><input type="hidden" '
              f'name="export" value="download"><input type="hidden" name="confirm" value="t">'
              f'<input type="hidden" name="uuid" value="{token}">')
    action = f"https://{CONTENT}/download"
    if f.confirm_shape == "form-action-first":
        form = (f'<form action="{action}" method="get" class="uc-download-form" id="download-form">'
                f'<input type="submit" id="uc-download-link" value="Download anyway"/>{fields}</form>')
    elif f.confirm_shape == "href":
        form = (f'<a id="uc-download-link" class="goog-inline-block jfk-button" href="/uc?export='
                f'download&amp;confirm={token}&amp;id={file_id}">Download anyway</a>')
    elif f.confirm_shape == "json":
        url = f"https://{CONTENT}/download?id={file_id}&export=download&confirm=t&uuid={token}"
        escaped = url.replace("=", "\\u003d").replace("&", "\\u0026")
        form = f'<script>var config = {{"title":"{f.name}","downloadUrl":"{escaped}"}};</script>'
    else:
        form = (f'<form id="download-form" action="{action}" method="get"><input type="submit" '
                f'id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action" '
                f'value="Download anyway"/>{fields}</form>')
    return ("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title><meta "
            "http-equiv=\"content-type\" content=\"text/html; charset=utf-8\"/></head><body><div "
            "class=\"uc-main\"><div id=\"uc-text\"><p class=\"uc-warning-caption\">Google Drive "
            "can't scan this file for viruses.</p><p class=\"uc-warning-subcaption\"><span "
            f"class=\"uc-name-size\"><a href=\"/open?id={file_id}\">{html.escape(f.name)}</a> "
            f"({len(f.body) >> 20}M)</span> is too large for Google to scan for viruses. Would you "
            f"still like to download this file?</p>{form}</div></div></body></html>")


def folder_page(title: str, entries: list[tuple[str, str, bool]]) -> str:
    links = []
    for entry_id, name, is_folder in entries:
        if is_folder:
            href = f"https://drive.google.com/drive/folders/{entry_id}"
            icon = "application/vnd.google-apps.folder"
        else:
            href = f"https://drive.google.com/file/d/{entry_id}/view?usp=drive_web"
            icon = "application/octet-stream"
        links.append(f'<a href="{href}">\n<img src="https://drive-thirdparty.googleusercontent.com'
                     f'/16/type/{icon}" alt="">\n{html.escape(name)}\n</a>')
    return (f"<html>\n<head><title>{html.escape(title)}</title></head>\n<body>\n<div>\n"
            + "\n".join(links) + "\n</div>\n</body>\n</html>\n")


@contextlib.contextmanager
def served_host(tmp_path, monkeypatch=None):
    """A DriveHost answering as drive.google.com, docs.google.com and
    drive.usercontent.google.com on 127.0.0.1, through a proxy. With `monkeypatch`, this process
    is pointed at it (proxy and certificate authority in the environment) and resolves nothing
    but loopback names. `host.env` is what a child process needs."""
    host = DriveHost()
    with NamedHosts(host.apps(), tmp_path) as hosts:
        host.network = hosts
        host.env = hosts.client_env()
        if monkeypatch is not None:
            point_at(host, monkeypatch)
        yield host


def point_at(host: DriveHost, monkeypatch) -> None:
    from official_network import PROXY_VARIABLES

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in host.env.items():
        monkeypatch.setenv(name, value)
    refuse_non_loopback(monkeypatch)
