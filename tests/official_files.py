"""Small synthetic official files to serve from the host imitation or to leave in a --from folder:
an interactions CSV, an item-information CSV (the official layout, titles with commas and quotes),
and covers archives (zip or tar) of small JPEGs with one corrupt and one missing cover.
"""
from __future__ import annotations

import csv
import io
import tarfile
import zipfile

from test_downloader_server import make_image

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


def cover_members(items: int = 9, corrupt: tuple[str, ...] = ("i1",),
                  missing: tuple[str, ...] = ("i2",), only: range | None = None) -> dict[str, bytes]:
    """covers/<item_id>.jpg -> small JPEG bytes: one corrupt, one missing; `only` keeps a range."""
    members = {}
    for i in (only if only is not None else range(items)):
        name = f"i{i}"
        if name in missing:
            continue
        body = make_image(i, size=(64, 40))
        if name in corrupt:
            body = body[:200] + b"\x00" * 20  # a JPEG cut short
        members[f"covers/{name}.jpg"] = body
    return members


def covers_zip(items: int = 9, corrupt: tuple[str, ...] = ("i1",), missing: tuple[str, ...] = ("i2",),
               extra: dict[str, bytes] | None = None, only: range | None = None) -> bytes:
    """A zip of covers/<item_id>.jpg (small JPEGs), one corrupt, one missing, plus `extra` members."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for member, body in {**cover_members(items, corrupt, missing, only), **(extra or {})}.items():
            z.writestr(member, body)
    return out.getvalue()


def covers_tar(compression: str = "", extra: dict[str, bytes] | None = None, **kw) -> bytes:
    """The same covers as a tar: compression '' (plain), 'gz' or 'zst'."""
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        for member, body in {**cover_members(**kw), **(extra or {})}.items():
            info = tarfile.TarInfo(member)
            info.size, info.mtime = len(body), 1_600_000_000
            tar.addfile(info, io.BytesIO(body))
    raw = plain.getvalue()
    if compression == "gz":
        import gzip

        return gzip.compress(raw, mtime=0)
    if compression == "zst":
        try:
            from compression import zstd
        except ImportError:
            from backports import zstd
        return zstd.compress(raw)
    return raw


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return out.getvalue()
