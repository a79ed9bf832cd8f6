"""The crawler's parsers against real platform responses (../shared fixtures, unchanged) and against
the project's own shape-only copies (tests/crawler_shapes/, made-up values, always run)."""
import json
import zlib
from pathlib import Path

import pytest

import fixture_parsers
from crawler import parsers

SHAPES = Path(__file__).parent / "crawler_shapes"


def load(folder: Path, name: str):
    return json.loads((folder / name).read_text(encoding="utf-8"))


@pytest.fixture
def fixtures(shared_dir):
    return shared_dir / "fixtures" / "bilibili"


# -- real responses, every file of the fixture folder ---------------------------------------------
def test_every_fixture_file_is_covered(fixtures):
    covered = {"README.md", "archive_stat.json", "dm_list.xml", "dm_seg.proto", "dm_seg_elem.txt",
               "error_352_vvoucher.json", "error_404.json", "error_412.json",
               "error_412_banned_en.json", "error_62002.json", "region.json",
               "region_newlist_rank.json", "regions.tsv", "regions_v2.tsv", "related.json",
               "reply.json", "reply_count.json", "reply_reply.json", "tags.json", "view.json",
               "wbi_missing_vvoucher.json"}
    assert {p.name for p in fixtures.iterdir()} <= covered


def test_real_view_and_stat(fixtures):
    env = parsers.classify(load(fixtures, "view.json"))
    assert env.kind == "ok"
    row = parsers.parse_view(env.data)
    assert row["platform_video_id"] == "BV117411r7R1" and row["aid"] == 85440373
    assert row["cid"] == 146044693 and row["duration_s"] == 486 and row["release_time"] == 1580377255
    assert row["channel"] == "原创音乐" and "\n" in row["description"]
    assert row["cover_url"].startswith("https://") or row["cover_url"].startswith("http://")
    assert row["view_number"] == 2404179 and row["barrage_number"] == 12348
    stat = fixture_parsers.parse_archive_stat(parsers.classify(load(fixtures, "archive_stat.json")).data)
    assert stat["view_number"] == 26408224 and stat["thumbup_number"] == 628592


def test_real_listings_related_and_tags(fixtures):
    refs, count, num, size = parsers.parse_region(load(fixtures, "region.json")["data"])
    assert [r.aid for r in refs] == [56998612, 837503204] and (count, num, size) == (189, 1, 2)
    assert [r.duration_s for r in refs] == [1864, 295]
    rank, pages = fixture_parsers.parse_newlist_rank(load(fixtures, "region_newlist_rank.json")["data"])
    assert pages == 404 and rank[0].aid == 1406270001 and rank[0].duration_s == 14
    first = load(fixtures, "region_newlist_rank.json")["data"]["result"][0]
    assert fixture_parsers.parse_listing_date(first["pubdate"]) == 1721374043
    related = parsers.parse_related(load(fixtures, "related.json")["data"])
    assert related and all(r.aid > 0 for r in related) and related[0].bvid == ""
    tags = parsers.parse_tags(load(fixtures, "tags.json")["data"])
    assert tags.split(",")[1] == "异度侵入" and len(tags.split(",")) == 6


def test_real_replies_keep_ids_and_times_only(fixtures):
    page = parsers.parse_replies(load(fixtures, "reply.json")["data"])
    assert page.events[0] == (621197713, 1646205507) and len(page.events) == 5
    assert (page.num, page.size, page.count) == (1, 5, 60971) and not page.empty and page.full
    nested = parsers.parse_reply_replies(load(fixtures, "reply_reply.json")["data"])
    assert nested.events[0] == (172604528, 1592018067) and nested.count == 230
    assert fixture_parsers.parse_reply_count(load(fixtures, "reply_count.json")["data"]) == 65521


def test_real_danmaku_raw_deflate_and_plain(fixtures):
    xml = (fixtures / "dm_list.xml").read_bytes()
    events = parsers.parse_danmaku(xml)
    assert len(events) == 15 and events[1] == ("4fe08d3", 1584268920)
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert parsers.parse_danmaku(packer.compress(xml) + packer.flush()) == events
    seg = fixture_parsers.parse_dm_seg_text((fixtures / "dm_seg_elem.txt").read_text(encoding="utf-8"))
    assert seg == [("59417e95", 1418799826)]


def test_real_error_envelopes(fixtures):
    kinds = {name: parsers.classify(load(fixtures, name)).kind for name in (
        "error_352_vvoucher.json", "wbi_missing_vvoucher.json", "error_412.json",
        "error_412_banned_en.json", "error_404.json", "error_62002.json")}
    assert kinds == {"error_352_vvoucher.json": "stop", "wbi_missing_vvoucher.json": "stop",
                     "error_412.json": "cooldown", "error_412_banned_en.json": "cooldown",
                     "error_404.json": "final", "error_62002.json": "final"}


def test_real_region_tables(fixtures):
    zones = fixture_parsers.parse_regions_tsv((fixtures / "regions.tsv").read_text(encoding="utf-8"))
    from crawler.spiders.bilibili import CHANNEL_RIDS
    assert len(zones) == 22 and {tid for tid, _, _ in zones} == set(CHANNEL_RIDS) - {0}
    assert (fixtures / "regions_v2.tsv").read_text(encoding="utf-8").startswith("main_zone")


# -- shape-only copies, always run --------------------------------------------------------------
def test_shape_view_normalises_cover_url():
    row = parsers.parse_view(load(SHAPES, "view.json")["data"], base_scheme="http")
    cover = "http://i0.example.org/bfs/archive/0123456789abcdef0123456789abcdef01234567.jpg"
    assert row["cover_url"] == cover
    assert parsers.normalize_cover_url("https://i1.example.org/bfs/archive/ab.png@100w_50h_1e_1c.png") \
        == "https://i1.example.org/bfs/archive/ab.png"
    assert row["description"] == "line one\nline two" and row["comment_number"] == 3


def test_shape_listing_related_tags():
    refs, count, _, _ = parsers.parse_region(load(SHAPES, "region.json")["data"])
    assert [(r.aid, r.duration_s) for r in refs] == [(1001, 95), (1002, 1800)] and count == 3
    related = parsers.parse_related(load(SHAPES, "related.json")["data"])
    assert [r.bvid for r in related] == ["BV1yy411c7mE", ""]
    assert parsers.parse_tags(load(SHAPES, "tags.json")["data"]) == "alpha,beta"
    assert parsers.parse_tags(None) == "" and parsers.parse_related(None) == []


def test_shape_replies_member_mid_string_and_nested_roots():
    page = parsers.parse_replies(load(SHAPES, "reply.json")["data"])
    assert page.events == [(555, 1600000100), (777, 1600000300), (666, 1600000200)]
    assert page.nested == [(11, 2)] and not page.full
    doc = load(SHAPES, "reply.json")["data"]
    del doc["replies"][1]["mid"]  # only member.mid (a string) left: still an int id
    assert parsers.parse_replies(doc).events[-1] == (666, 1600000200)
    doc["replies"] = None
    assert parsers.parse_replies(doc).empty
    nested = parsers.parse_reply_replies(load(SHAPES, "reply_reply.json")["data"])
    assert nested.events == [(777, 1600000300), (888, 1600000400)]


def test_shape_danmaku_8_and_9_fields_and_broken_bodies():
    expected = [("1a2b3c4d", 1600000500), ("abc123", 1600000600)]
    assert parsers.parse_danmaku((SHAPES / "dm_list.xml").read_bytes()) == expected
    deflated = (SHAPES / "dm_list.deflate").read_bytes()
    assert parsers.parse_danmaku(deflated) == expected
    assert parsers.parse_danmaku(zlib.compress((SHAPES / "dm_list.xml").read_bytes())) == expected
    with pytest.raises(parsers.ParseError):
        parsers.parse_danmaku(deflated[: len(deflated) // 2])


def test_shape_envelopes_decide_retry_stop_final():
    assert parsers.classify(load(SHAPES, "error_352_vvoucher.json")).kind == "stop"
    assert parsers.classify(load(SHAPES, "wbi_missing_vvoucher.json")).kind == "stop"
    assert parsers.classify(load(SHAPES, "error_412.json"), 412).kind == "cooldown"
    for name in ("error_404.json", "error_62002.json", "error_12002.json"):
        assert parsers.classify(load(SHAPES, name)).kind == "final"
    for code in (-509, -799, -503):
        assert parsers.classify({"code": code, "data": None}).kind == "cooldown"
    assert parsers.classify({"code": 0, "data": {}}, 503).kind == "cooldown"
    assert parsers.classify("<html>", 502).kind == "cooldown"
    assert parsers.classify({"code": 0, "data": {"v_voucher": "x", "aid": 1}}).kind == "ok"
    with pytest.raises(parsers.ParseError):
        parsers.classify(["not", "an", "envelope"])
    with pytest.raises(parsers.ParseError):
        parsers.parse_view({"aid": 1})


TYPED_PARSERS = {"/x/v2/reply": parsers.parse_replies, "/x/v2/reply/reply": parsers.parse_reply_replies,
                 "/x/web-interface/archive/related": parsers.parse_related,
                 "/x/web-interface/dynamic/region": parsers.parse_region}


def outcome(doc, path):
    """What the crawler makes of a decoded document fetched from `path`."""
    try:
        envelope = parsers.classify(doc)
        return envelope.kind, envelope.code, TYPED_PARSERS[path](envelope.data) \
            if envelope.kind == "ok" else None
    except parsers.ParseError as exc:
        return "ParseError", str(exc)


def bodies(folder: Path):
    """Every JSON file of the folder, plus variants that must leave the typed fast path."""
    for path in sorted(folder.glob("*.json")):
        body = path.read_bytes()
        yield path.name, body
        yield path.name + " truncated", body[: len(body) // 2]
        doc = json.loads(body)
        if isinstance(doc.get("data"), dict):
            yield path.name + " +v_voucher", json.dumps(
                {**doc, "data": {**doc["data"], "v_voucher": "x"}}).encode()
            yield path.name + " data list", json.dumps({**doc, "data": [doc["data"]]}).encode()
            if "replies" in doc["data"]:
                yield path.name + " replies dict", json.dumps(
                    {**doc, "data": {**doc["data"], "replies": {"a": 1}}}).encode()


def check_typed_decoding_equals_full_decoding(folder: Path) -> int:
    from crawler import decoding

    checked = 0
    for name, body in bodies(folder):
        for path in TYPED_PARSERS:
            try:
                full = outcome(json.loads(body), path)
            except ValueError:
                with pytest.raises(ValueError):
                    decoding.decode(path, body)
                continue
            assert outcome(decoding.decode(path, body), path) == full, (name, path)
            checked += 1
    return checked


def test_typed_decoding_gives_what_a_full_decode_gives_on_every_shape():
    assert check_typed_decoding_equals_full_decoding(SHAPES) > 100


def test_typed_decoding_gives_what_a_full_decode_gives_on_every_fixture(fixtures):
    assert check_typed_decoding_equals_full_decoding(fixtures) > 100
