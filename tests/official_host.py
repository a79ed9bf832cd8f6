"""A local stand-in for the publisher's file host (Google Drive's public answers), and small
synthetic official files (interactions CSV, item-info CSV, covers zip) to serve from it.

Answers reproduced: /uc?export=download&id=ID serves a file with Content-Disposition and honours
Range; a "large" file first gets the virus-scan confirmation page whose form points back here; a
file can be set to answer the quota page, a number of 403/429/503 answers first (Retry-After 0),
a truncated body once, or a body of the wrong size once; /embeddedfolderview?id=ID lists a folder.
"""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from test_downloader_server import LocalServer, make_image

QUOTA_PAGE = ("<html><head><title>Google Drive - Quota exceeded</title></head><body>"
              "<p class=\"uc-error-caption\">Sorry, you can't view or download this file at this time."
              "</p><p class=\"uc-error-subcaption\">Too many users have viewed or downloaded this file "
              "recently. Please try accessing the file again later.</p></body></html>")


@dataclass
class HostFile:
    name: str
    body: bytes
    large: bool = False          # behind the confirmation page
    quota: bool = False          # the quota page, always
    failures: list = field(default_factory=list)  # statuses answered first, one per request
    truncate_once: bool = False  # the first full answer stops halfway
    short_once: bool = False     # the first answer announces the full size, sends one byte less
    slow_s: float = 0.0          # pause between 64 KB pieces of the body


class DriveHost:
    def __init__(self):
        self.files: dict[str, HostFile] = {}
        self.folders: dict[str, list[tuple[str, str, bool]]] = {}
        self.body_bytes: Counter = Counter()   # file id -> body bytes sent
        self.requests: Counter = Counter()     # file id -> requests

    def add_file(self, file_id: str, name: str, body: bytes, **kw) -> None:
        self.files[file_id] = HostFile(name, body, **kw)

    def add_folder(self, folder_id: str, entries: list[tuple[str, str, bool]]) -> None:
        self.folders[folder_id] = entries  # (id, name, is_folder)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/uc", self.uc)
        app.router.add_get("/download", self.uc)  # the confirmation form's action
        app.router.add_get("/embeddedfolderview", self.folder)
        return app

    async def folder(self, request):
        entries = self.folders.get(request.query.get("id", ""))
        if entries is None:
            return web.Response(status=404, text="not found")
        rows = []
        for fid, name, is_folder in entries:
            link = f"https://drive.google.com/drive/folders/{fid}" if is_folder else \
                f"https://drive.google.com/file/d/{fid}/view?usp=drive_web"
            rows.append(f'<div class="flip-entry" id="entry-{fid}" tabindex="0" role="link">'
                        f'<a href="{link}" target="_blank"><div class="flip-entry-info">'
                        f'<div class="flip-entry-title">{name}</div></div></a></div>')
        page = (f"<html><head><title>folder</title></head><body><div class=\"flip-entries\">"
                f"{''.join(rows)}</div></body></html>")
        return web.Response(text=page, content_type="text/html")

    async def uc(self, request):
        file_id = request.query.get("id", "")
        f = self.files.get(file_id)
        self.requests[file_id] += 1
        if f is None:
            return web.Response(status=404, text="not found")
        if f.quota:
            return web.Response(text=QUOTA_PAGE, content_type="text/html")
        if f.failures:
            return web.Response(status=f.failures.pop(0), text="busy", headers={"Retry-After": "0"})
        if f.large and request.query.get("confirm") != "t":
            form = (f'<form id="download-form" action="/download" method="get">'
                    f'<input type="hidden" name="id" value="{file_id}">'
                    f'<input type="hidden" name="export" value="download">'
                    f'<input type="hidden" name="confirm" value="t">'
                    f'<input type="hidden" name="uuid" value="0f0e-uuid"></form>')
            return web.Response(text=f"<html><body>Google Drive can't scan this file for viruses."
                                     f"{form}</body></html>", content_type="text/html")
        start = 0
        headers = {"Content-Disposition": f"attachment; filename=\"{f.name}\"; "
                                          f"filename*=UTF-8''{f.name}",
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        status = 200
        if request.headers.get("Range", "").startswith("bytes="):
            start = int(request.headers["Range"][6:].split("-")[0])
            headers["Content-Range"] = f"bytes {start}-{len(f.body) - 1}/{len(f.body)}"
            status = 206
        body = f.body[start:]
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        if (f.truncate_once or f.short_once) and start == 0:
            half = body[: len(body) // 2] if f.truncate_once else body[:-1]
            f.truncate_once = f.short_once = False
            await resp.write(half)
            self.body_bytes[file_id] += len(half)
            request.transport.close()
            return resp
        step = 1 << 16 if f.slow_s else len(body) or 1
        for at in range(0, len(body), step):
            await resp.write(body[at:at + step])
            self.body_bytes[file_id] += len(body[at:at + step])
            if f.slow_s:
                await asyncio.sleep(f.slow_s)
        await resp.write_eof()
        return resp


# --- synthetic official files ---------------------------------------------------------------------
ITEM_HEADER = ["item_id", "view_number", "comment_number", "thumbup_number", "share_number",
               "coin_number", "favorite_number", "barrage_number", "title_en", "title",
               "description", "tag"]


def official_tables(users: int = 12, items: int = 9, per_user: int = 5) -> tuple[bytes, bytes, dict]:
    """(interactions CSV, item-info CSV, counts) in the official layout: every user has
    `per_user` distinct items, timestamps increasing; titles hold commas and quotes."""
    inter = io.StringIO()
    w = csv.writer(inter, lineterminator="\n")
    w.writerow(["item_id", "user_id", "timestamp"])
    used = set()
    rows = 0
    for u in range(users):
        for k in range(per_user):
            item = (u * 3 + k * 2) % items
            used.add(item)
            w.writerow([f"i{item}", f"u{u}", 1_600_000_000 + u * 100 + k])
            rows += 1
    info = io.StringIO()
    w = csv.writer(info, lineterminator="\n")
    w.writerow(ITEM_HEADER)
    for i in range(items):
        w.writerow([f"i{i}", 100 + i, i, 2 * i, 0, 1, 3, 4, f"English, title {i}",
                    f"标题 \"{i}\"", f"desc {i}", "tag1 tag2"])
    counts = {"users": users, "items": len(used), "interactions": rows}
    return inter.getvalue().encode(), info.getvalue().encode(), counts


def covers_zip(items: int = 9, corrupt: tuple[str, ...] = ("i1",), missing: tuple[str, ...] = ("i2",),
               extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of covers/<item_id>.jpg (small JPEGs), one corrupt, one missing, plus `extra` members."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for i in range(items):
            name = f"i{i}"
            if name in missing:
                continue
            body = make_image(i, size=(64, 40))
            if name in corrupt:
                body = body[:200] + b"\x00" * 20  # a JPEG cut short
            z.writestr(f"covers/{name}.jpg", body)
        for member, body in (extra or {}).items():
            z.writestr(member, body)
    return out.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return out.getvalue()


@contextlib.contextmanager
def served_host():
    """A DriveHost listening on 127.0.0.1; its `url` is the base address to give the client."""
    host = DriveHost()
    with LocalServer(host.app()) as server:
        host.url = server.url
        yield host
