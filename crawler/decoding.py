"""JSON bodies -> documents, materialising only the fields the parsers read on the big pages.

A comment page is 20 comments of about 60 fields each (member, vip, pendant, content, ...), a
related list 40 video objects, a listing 50: decoding them whole made a few thousand Python objects
per page, which the crawler threw away at once. For those endpoints msgspec decodes into the
TypedDicts below: unknown keys are skipped while parsing, so the result is a plain dict tree with
only these keys, which crawler/parsers.py reads unchanged. Values stay `Any`: the parsers keep
checking types and presence (and raise ParseError) as they do on fully decoded documents.

Anything the typed decoder rejects (a body that is not JSON, a `data` that is not the usual shape)
and any `data.v_voucher` (the challenge test needs every key of data) is decoded again in full with
orjson, so the outcome is exactly what a full decode gives; tests/test_crawler_parsers.py checks that
on every fixture.
"""
from __future__ import annotations

from typing import Any, List, Optional, TypedDict

import msgspec
import orjson


class _Member(TypedDict, total=False):
    mid: Any


class _Preview(TypedDict, total=False):
    rpid: Any
    mid: Any
    ctime: Any
    member: _Member


class _Reply(_Preview, total=False):
    rcount: Any
    replies: Optional[List[_Preview]]


class _Paged(TypedDict, total=False):
    page: Any
    v_voucher: Any


class _ReplyData(_Paged, total=False):
    replies: Optional[List[_Reply]]


class _VideoRef(TypedDict, total=False):
    aid: Any
    bvid: Any
    duration: Any


class _RegionData(_Paged, total=False):
    archives: Optional[List[_VideoRef]]


class _Envelope(TypedDict, total=False):
    code: Any
    message: Any


class _ReplyDoc(_Envelope, total=False):
    data: Optional[_ReplyData]


class _RelatedDoc(_Envelope, total=False):
    data: Optional[List[_VideoRef]]


class _RegionDoc(_Envelope, total=False):
    data: Optional[_RegionData]


# URL path -> typed decoder; other endpoints (view, tags: small pages) are decoded whole
TYPED = {
    "/x/v2/reply": msgspec.json.Decoder(_ReplyDoc),
    "/x/v2/reply/reply": msgspec.json.Decoder(_ReplyDoc),
    "/x/web-interface/archive/related": msgspec.json.Decoder(_RelatedDoc),
    "/x/web-interface/dynamic/region": msgspec.json.Decoder(_RegionDoc),
}


def decode(path: str, body: bytes):
    """The JSON document of `body`; raises orjson.JSONDecodeError when it is not JSON."""
    decoder = TYPED.get(path)
    if decoder is not None:
        try:
            doc = decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return orjson.loads(body)
        data = doc.get("data")
        if not (isinstance(data, dict) and "v_voucher" in data):
            return doc
    return orjson.loads(body)
