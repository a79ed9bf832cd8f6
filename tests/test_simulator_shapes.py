"""Conformance: every simulator response has the keys, nesting and JSON types of the platform's.

Checked against the real examples in ../shared/fixtures/bilibili (skipped when ../shared is absent)
and against the shape-only copies in tests/fixture_shapes (always).
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from test_simulator_world import get_json, http_get, tiny_simulator

SHAPES = Path(__file__).parent / "fixture_shapes"
# Keys the platform itself sends only sometimes (the simulator leaves them out, or sends them where
# the platform does: the reply texts of a root with replies). The comment keys vary inside the
# examples themselves: content.emote only with emotes in the text (reply.json), vip's
# avatar_subscript_url on some members only, card_label and up_reply on a few roots (reply_reply.json).
OPTIONAL = {"data.staff", "data.mission_id", "data.archives[].mission_id", "data[].mission_id",
            "data.honor_reply.honor", "data.replies[].content.emote",
            "data.replies[].member.vip.avatar_subscript_url", "data.root.member.vip.avatar_subscript_url",
            "data.replies[].reply_control.sub_reply_entry_text",
            "data.replies[].reply_control.sub_reply_title_text",
            "data.root.card_label", "data.root.reply_control.up_reply"}
# Responses without an example of their own, held against the example of the same shape.
SHAPED_LIKE = {"error_62002_like_12002": "error_62002.json", "reply_with_threads": "reply.json"}
# Objects whose keys are data (emote names, ...), not schema.
FREE_MAPS = {"emote", "jump_url", "icon_resource"}


def shape_errors(expected, actual, path="") -> list[str]:
    """Differences in keys, nesting and types (a null in the example matches anything)."""
    if expected is None:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: want object, got {type(actual).__name__}"]
        if path.rsplit(".", 1)[-1] in FREE_MAPS:
            return []
        errors = []
        for key in expected.keys() | actual.keys():
            sub = f"{path}.{key}" if path else key
            if key not in actual and sub not in OPTIONAL:
                errors.append(f"{sub}: missing")
            elif key not in expected and sub not in OPTIONAL:
                errors.append(f"{sub}: not in the platform's response")
            elif key in expected and key in actual:
                errors += shape_errors(expected[key], actual[key], sub)
        return errors
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: want list, got {type(actual).__name__}"]
        errors = []
        for item in actual[:5]:
            for model in expected[:1]:
                errors += shape_errors(model, item, path + "[]")
        return errors
    if type(expected) is not type(actual):
        return [f"{path}: want {type(expected).__name__}, got {type(actual).__name__}"]
    return []


@pytest.fixture(scope="module")
def server():
    with tiny_simulator() as served:
        yield served


def _ids(world, k):
    return (world.videos.column("aid")[k].as_py(), world.videos.column("platform_video_id")[k].as_py(),
            int(world.cid[k]))


def _busiest_root(url, world) -> tuple[int, int, int]:
    """(aid, rpid, position in the sort=0 listing) of the root with the most replies in the world."""
    best = (0, 0, 0, 0)
    for k in range(world.videos.num_rows):
        aid = _ids(world, k)[0]
        for pn in range(1, 100):
            replies = (get_json(f"{url}/x/v2/reply?type=1&oid={aid}&ps=20&pn={pn}")[1].get("data") or {}
                       ).get("replies")
            if not replies:
                break
            for j, r in enumerate(replies):
                best = max(best, (r["rcount"], aid, r["rpid"], (pn - 1) * 20 + j))
    assert best[0] > 3, "the tiny world has no thread longer than its preview"
    return best[1:]


def responses(server) -> dict[str, dict]:
    """One simulator response per example file name (or per SHAPED_LIKE name)."""
    url, world = server
    aid, bvid, cid = _ids(world, 0)
    closed_aid = _ids(world, 2)[0]
    removed_aid = _ids(world, 3)[0]
    thread_aid, root, position = _busiest_root(url, world)
    out = {
        "view.json": get_json(f"{url}/x/web-interface/view?bvid={bvid}")[1],
        "archive_stat.json": get_json(f"{url}/x/web-interface/archive/stat?aid={aid}")[1],
        "tags.json": get_json(f"{url}/x/web-interface/view/detail/tag?aid={aid}&cid={cid}")[1],
        "related.json": get_json(f"{url}/x/web-interface/archive/related?aid={aid}")[1],
        "region.json": get_json(f"{url}/x/web-interface/dynamic/region?rid=0&ps=3&pn=1")[1],
        "reply.json": get_json(f"{url}/x/v2/reply?type=1&oid={aid}&sort=0&ps=20&pn=1")[1],
        "reply_count.json": get_json(f"{url}/x/v2/reply/count?type=1&oid={aid}")[1],
        "reply_reply.json": get_json(f"{url}/x/v2/reply/reply?type=1&oid={thread_aid}&root={root}"
                                     f"&ps=20&pn=1")[1],
        # a page holding only that root, so that its reply texts and preview are held against it
        "reply_with_threads": get_json(f"{url}/x/v2/reply?type=1&oid={thread_aid}&sort=0&ps=1"
                                       f"&pn={position + 1}")[1],
        "error_404.json": get_json(f"{url}/x/web-interface/view?aid=1")[1],
    }
    removed = get_json(f"{url}/x/web-interface/view?aid={removed_aid}")[1]
    out["error_404.json" if removed["code"] == -404 else "error_62002.json"] = removed
    out["error_62002_like_12002"] = get_json(f"{url}/x/v2/reply?type=1&oid={closed_aid}&pn=1")[1]
    return out


def _check_against(folder: Path, server):
    got = responses(server)
    assert got["reply_with_threads"]["data"]["replies"][0]["replies"]  # a root with its preview
    for name, actual in got.items():
        example = folder / SHAPED_LIKE.get(name, name)
        errors = shape_errors(json.loads(example.read_text(encoding="utf-8")), actual)
        assert not errors, f"{name}: {errors[:10]}"
        assert actual["code"] == json.loads(example.read_text(encoding="utf-8"))["code"] or \
            name.startswith("error_62002_like"), name
    _check_dm(folder, server)
    _check_blocked(folder, server[1])


def _check_blocked(folder: Path, world):
    """412/-412 then -352: shaped like error_412.json and error_352_vvoucher.json."""
    aid = _ids(world, 0)[0]
    seen = {}
    with tiny_simulator(rate=2.0, limiter_options={"block_s": 30.0, "abuse_limit": 2}) as (url, _):
        for _ in range(8):
            status, body = get_json(f"{url}/x/web-interface/archive/stat?aid={aid}")
            seen.setdefault(body["code"], (status, body))
    assert seen[-412][0] == 412 and -352 in seen, sorted(seen)
    for code, name in ((-412, "error_412.json"), (-352, "error_352_vvoucher.json")):
        example = json.loads((folder / name).read_text(encoding="utf-8"))
        assert not shape_errors(example, seen[code][1]), name


def dm_shape(root: ET.Element) -> tuple:
    children = sorted({child.tag for child in root})
    fields = set()
    for d in root.iter("d"):
        parts = d.attrib["p"].split(",")
        assert len(parts) in (8, 9)
        float(parts[0]), [int(p) for p in parts[1:6]], int(parts[6], 16), int(parts[7])
        fields.add(len(parts))
    return root.tag, children, bool(fields)


def _check_dm(folder: Path, server):
    url, world = server
    cid = _ids(world, 0)[2]
    status, headers, body = http_get(f"{url}/x/v1/dm/list.so?oid={cid}")
    assert status == 200 and headers["Content-Encoding"] == "deflate"
    root = ET.fromstring(zlib.decompress(body, -zlib.MAX_WBITS))
    example = ET.fromstring((folder / "dm_list.xml").read_bytes())
    assert dm_shape(root) == dm_shape(example)


def test_shapes_match_real_examples(shared_dir, server):
    _check_against(shared_dir / "fixtures" / "bilibili", server)


def test_shapes_match_shape_copies(server):
    _check_against(SHAPES, server)


def test_shape_checker_catches_differences():
    example = {"data": {"mid": 1, "member": {"mid": "1"}, "list": [{"a": 1}]}}
    assert not shape_errors(example, {"data": {"mid": 5, "member": {"mid": "9"}, "list": []}})
    assert shape_errors(example, {"data": {"mid": "5", "member": {"mid": "9"}, "list": []}})
    assert shape_errors(example, {"data": {"mid": 5, "member": {"mid": 9}, "list": []}})
    assert shape_errors(example, {"data": {"mid": 5, "member": {"mid": "9"}, "list": [{"b": 1}]}})
    assert shape_errors(example, {"data": {"mid": 5, "member": {"mid": "9"}, "list": [], "x": 0}})
