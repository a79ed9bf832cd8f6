"""Pure parsers of the platform's public web API responses (no Scrapy, no network).

Every function takes an already decoded JSON document (or raw bytes for danmaku) in the shapes of
the platform's real responses and returns plain Python values. They never return comment text or
danmaku text: only the ids and times the dataset keeps. A parser that meets a shape it does not
know raises ParseError, which the crawler counts and retries as a broken response.
"""
from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

# JSON codes, from the platform documentation (fixtures/bilibili/README.md).
OK = 0
FINAL_CODES = frozenset({-404, -403, 62002, 62004, 62012, 12002, 12022})
COOLDOWN_CODES = frozenset({-412, -509, -799, -503})
STOP_CODES = frozenset({-352})

# The danmaku p attribute: 0 progress, 1 mode, 2 size, 3 colour, 4 send time, 5 pool, 6 midHash,
# 7 dmid, [8 weight in newer responses].
_DM_TIME, _DM_MIDHASH = 4, 6
_MIDHASH = re.compile(r"^[0-9a-f]{1,8}$")
_RESIZE_SUFFIX = re.compile(r"@[^/]*$")


class ParseError(ValueError):
    """A response that does not have the expected shape (truncated, changed, or not JSON)."""


@dataclass(frozen=True)
class Envelope:
    code: int
    data: object
    kind: str  # 'ok' | 'final' | 'cooldown' | 'stop' | 'error'


def classify(doc: object, http_status: int = 200) -> Envelope:
    """Read the {code, message, ttl, data} envelope: branch on code, never on message."""
    if not isinstance(doc, dict) or "code" not in doc:
        if http_status == 429 or http_status == 412 or http_status >= 500:
            return Envelope(http_status, None, "cooldown")
        raise ParseError("no JSON envelope with a 'code'")
    try:
        code = int(doc["code"])
    except (TypeError, ValueError):
        raise ParseError(f"envelope code {doc['code']!r} is not an integer") from None
    data = doc.get("data")
    if code in STOP_CODES or (code == OK and is_voucher_only(data)):
        return Envelope(code, data, "stop")
    if code in COOLDOWN_CODES or http_status in (412, 429) or http_status >= 500:
        return Envelope(code, data, "cooldown")
    if code in FINAL_CODES or (code != OK and http_status == 404):
        return Envelope(code, data, "final")
    if code != OK:
        return Envelope(code, data, "error")
    return Envelope(code, data, "ok")


def is_voucher_only(data: object) -> bool:
    """A risk-control challenge disguised as success: code 0 whose data holds only v_voucher."""
    return isinstance(data, dict) and set(data) == {"v_voucher"}


def _int(value, name: str) -> int:
    if isinstance(value, bool):
        raise ParseError(f"{name} is a boolean")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ParseError(f"{name} {value!r} is not an integer") from None


def _need(obj: object, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise ParseError(f"{where}: missing '{key}'")
    return obj[key]


def normalize_cover_url(url: str, base_scheme: str = "https") -> str:
    """Protocol-relative -> base scheme; strip the '@<params>[.fmt]' resize suffix."""
    url = (url or "").strip()
    if url.startswith("//"):
        url = f"{base_scheme}:{url}"
    parts = urlsplit(url)
    path = _RESIZE_SUFFIX.sub("", parts.path)
    return f"{parts.scheme}://{parts.netloc}{path}" if parts.scheme else path


def parse_view(data: object, base_scheme: str = "https") -> dict:
    """/x/web-interface/view data -> the raw/videos fields (all but tag and crawled_at) + cid."""
    stat = _need(data, "stat", "view")
    bvid = str(_need(data, "bvid", "view") or "")
    aid = _int(_need(data, "aid", "view"), "view.aid")
    return {
        "platform_video_id": bvid or f"av{aid}",
        "aid": aid,
        "cid": _int(_need(data, "cid", "view"), "view.cid"),
        "title": str(_need(data, "title", "view")),
        "description": str(data.get("desc") or ""),
        "channel": str(data.get("tname") or ""),
        "cover_url": normalize_cover_url(str(_need(data, "pic", "view")), base_scheme),
        "view_number": _int(_need(stat, "view", "view.stat"), "stat.view"),
        "comment_number": _int(_need(stat, "reply", "view.stat"), "stat.reply"),
        "thumbup_number": _int(_need(stat, "like", "view.stat"), "stat.like"),
        "share_number": _int(_need(stat, "share", "view.stat"), "stat.share"),
        "coin_number": _int(_need(stat, "coin", "view.stat"), "stat.coin"),
        "favorite_number": _int(_need(stat, "favorite", "view.stat"), "stat.favorite"),
        "barrage_number": _int(_need(stat, "danmaku", "view.stat"), "stat.danmaku"),
        "release_time": _int(_need(data, "pubdate", "view"), "view.pubdate"),
        "duration_s": _int(_need(data, "duration", "view"), "view.duration"),
    }


def parse_tags(data: object) -> str:
    """/x/web-interface/view/detail/tag data -> the tag names joined by ','."""
    if data is None:
        return ""
    if not isinstance(data, list):
        raise ParseError("tags: data is not a list")
    return ",".join(str(_need(t, "tag_name", "tag")) for t in data)


@dataclass(frozen=True)
class VideoRef:
    """A video seen in a listing or a related list: enough to decide whether to fetch it."""
    aid: int
    bvid: str
    duration_s: int | None


def _ref(obj: object, where: str, aid_key: str = "aid") -> VideoRef:
    duration = obj.get("duration") if isinstance(obj, dict) else None
    return VideoRef(aid=_int(_need(obj, aid_key, where), f"{where}.aid"),
                    bvid=str(obj.get("bvid") or ""),
                    duration_s=None if duration in (None, "") else _int(duration, "duration"))


def parse_region(data: object) -> tuple[list[VideoRef], int, int, int]:
    """/x/web-interface/dynamic/region data -> (videos, total count, page number, page size)."""
    page = _need(data, "page", "region")
    archives = data.get("archives") or []
    if not isinstance(archives, list):
        raise ParseError("region: archives is not a list")
    refs = [_ref(a, "region.archives") for a in archives]
    return (refs, _int(_need(page, "count", "region.page"), "page.count"),
            _int(_need(page, "num", "region.page"), "page.num"),
            _int(_need(page, "size", "region.page"), "page.size"))


def parse_related(data: object) -> list[VideoRef]:
    """/x/web-interface/archive/related data (a list, no paging) -> videos."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ParseError("related: data is not a list")
    return [_ref(v, "related") for v in data]


@dataclass(frozen=True)
class ReplyPage:
    events: list            # [(mid int, ctime int)] of the page's comments and their previews
    nested: list            # [(root rpid, rcount)] for roots whose sub-replies are not all shown
    num: int
    size: int
    count: int
    empty: bool
    full: bool = False      # as many comments as the page size: more may follow


def _reply_events(reply: object, events: list) -> None:
    mid = reply.get("mid") if isinstance(reply, dict) else None
    if mid is None:  # member.mid is the same id as a string
        mid = _need(_need(reply, "member", "reply"), "mid", "reply.member")
    events.append((_int(mid, "reply.mid"), _int(_need(reply, "ctime", "reply"), "reply.ctime")))


def parse_replies(data: object) -> ReplyPage:
    """/x/v2/reply data -> commenters and times; the comment text is never read."""
    page = _need(data, "page", "reply")
    if not isinstance(page, dict):
        raise ParseError("reply: page is not an object")
    replies = data.get("replies") or []
    if not isinstance(replies, list):
        raise ParseError("reply: replies is not a list")
    events, nested = [], []
    for reply in replies:
        _reply_events(reply, events)
        previews = reply.get("replies") or []
        for sub in previews:
            _reply_events(sub, events)
        rcount = _int(reply.get("rcount") or 0, "reply.rcount")
        if rcount > len(previews):
            nested.append((_int(_need(reply, "rpid", "reply"), "reply.rpid"), rcount))
    return ReplyPage(events, nested, _int(page.get("num", 0), "page.num"),
                     _int(page.get("size", 0), "page.size"),
                     _int(page.get("count", 0), "page.count"), not replies,
                     len(replies) >= _int(page.get("size", 0), "page.size") > 0)


def parse_reply_replies(data: object) -> ReplyPage:
    """/x/v2/reply/reply data (the nested replies of one root) -> commenters and times."""
    page = _need(data, "page", "reply/reply")
    if not isinstance(page, dict):
        raise ParseError("reply/reply: page is not an object")
    replies = data.get("replies") or []
    if not isinstance(replies, list):
        raise ParseError("reply/reply: replies is not a list")
    events: list = []
    for reply in replies:
        _reply_events(reply, events)
    return ReplyPage(events, [], _int(page.get("num", 0), "page.num"),
                     _int(page.get("size", 0), "page.size"),
                     _int(page.get("count", 0), "page.count"), not replies)


def inflate(body: bytes) -> bytes:
    """list.so bodies are raw deflate; accept zlib-wrapped and plain XML too."""
    if body.lstrip()[:1] == b"<":
        return body
    for wbits in (-15, 15):
        try:
            return zlib.decompress(body, wbits)
        except zlib.error:
            continue
    raise ParseError("danmaku body is neither deflate nor XML")


def parse_danmaku(body: bytes) -> list[tuple[str, int]]:
    """x/v1/dm/list.so body -> [(midHash, send time)]; the danmaku text is never read."""
    try:
        root = ET.fromstring(inflate(body))
    except ET.ParseError as exc:
        raise ParseError(f"danmaku XML: {exc}") from None
    if root.tag != "i":
        raise ParseError(f"danmaku XML root is <{root.tag}>, expected <i>")
    events = []
    for node in root.iter("d"):
        fields = (node.get("p") or "").split(",")
        if len(fields) not in (8, 9):
            raise ParseError(f"danmaku p has {len(fields)} fields, expected 8 or 9")
        midhash = fields[_DM_MIDHASH].strip().lower()
        if not _MIDHASH.match(midhash):
            raise ParseError(f"danmaku midHash {midhash!r} is not hex")
        events.append((midhash, _int(fields[_DM_TIME], "danmaku time")))
    return events


def now_s() -> int:
    return int(time.time())
