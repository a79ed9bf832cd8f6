"""Parsers of platform responses the crawler does not use (the archive/stat and newlist_rank
endpoints, reply/count, seg.so's text form, the region table): the tests read the recorded real
responses with them, to check the fixtures' shapes and the spider's channel table against them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from crawler.parsers import ParseError, _int, _need, _ref

_CHINA_TZ = timezone(timedelta(hours=8))  # listing dates such as newlist_rank's are Beijing time


def parse_archive_stat(data: object) -> dict:
    """/x/web-interface/archive/stat data: the same counts as view.stat, flat."""
    return {name: _int(_need(data, key, "archive/stat"), key) for name, key in (
        ("view_number", "view"), ("comment_number", "reply"), ("thumbup_number", "like"),
        ("share_number", "share"), ("coin_number", "coin"), ("favorite_number", "favorite"),
        ("barrage_number", "danmaku"))}


def parse_newlist_rank(data: object) -> tuple[list[VideoRef], int]:
    """/x/web-interface/newlist_rank data -> (videos, number of pages). pubdate is a string there."""
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list):
        raise ParseError("newlist_rank: result is not a list")
    return [_ref(r, "newlist_rank.result", aid_key="id") for r in result], \
        _int(_need(data, "numPages", "newlist_rank"), "numPages")


def parse_listing_date(text: str) -> int:
    """'yyyy-MM-dd HH:mm:ss' (Beijing time, as the listing shows it) -> unix seconds."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_CHINA_TZ)
    except (TypeError, ValueError):
        raise ParseError(f"date {text!r} is not yyyy-MM-dd HH:mm:ss") from None
    return int(moment.timestamp())


def parse_reply_count(data: object) -> int:
    return _int(_need(data, "count", "reply/count"), "reply/count.count")


def parse_dm_seg_text(text: str) -> list[tuple[str, int]]:
    """The protobuf text form of seg.so elements (DanmakuElem) -> [(midHash, ctime)]."""
    events, current = [], {}
    for line in text.splitlines() + ["id: end"]:
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip().strip('"')
        if name == "id" and current:
            if "midHash" not in current or "ctime" not in current:
                raise ParseError("DanmakuElem without midHash or ctime")
            events.append((current["midHash"].lower(), _int(current["ctime"], "ctime")))
            current = {}
        if name:
            current[name] = value
    return events


def parse_regions_tsv(text: str) -> list[tuple[int, str, str]]:
    """The region table -> [(tid, name, code)] of the main zones (is_main == 1)."""
    lines = [line.split("\t") for line in text.splitlines() if line.strip()]
    header = lines[0]
    try:
        tid, is_main, name, code = (header.index(c) for c in ("tid", "is_main", "name", "code"))
    except ValueError as exc:
        raise ParseError(f"region table: {exc}") from None
    return [(int(row[tid]), row[name], row[code]) for row in lines[1:] if row[is_main] == "1"]
