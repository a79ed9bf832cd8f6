"""The simulator's API against the world it serves: paging, danmaku, listings, view fields, errors."""
from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from urllib.robotparser import RobotFileParser

import pytest

from pixelrec_data.simulator import start_simulator
from pixelrec_data.simulator.channels import MAIN_RID
from pixelrec_data.synthetic import generate_world
from pixelrec_data.synthetic_catalog import CHANNEL_RID
from test_simulator_world import get_json, http_get, tiny_simulator

SEED = 11


@pytest.fixture(scope="module")
def served():
    world = generate_world(seed=SEED, users=400, videos=150)
    url, stop = start_simulator(seed=SEED, world=world)
    yield url, world
    stop()


@pytest.fixture(scope="module")
def tiny():
    with tiny_simulator() as served:
        yield served


def _events(world, source):
    by_video = {}
    for row in world.events.to_pylist():
        if row["source"] == source:
            by_video.setdefault(row["platform_video_id"], []).append(row)
    return by_video


def _visible(world):
    rows = world.videos.to_pylist()
    return [(k, r) for k, r in enumerate(rows) if not world.removed[k]]


def test_reply_pages_cover_every_comment(served):
    url, world = served
    truth = _events(world, "comment")
    multi_page = 0
    for k, video in _visible(world):
        if world.comments_closed[k]:
            continue
        got, pn = [], 1
        while pn < 1000:
            status, body = get_json(f"{url}/x/v2/reply?type=1&oid={video['aid']}&sort=0&ps=20&pn={pn}")
            assert status == 200 and body["code"] == 0
            replies = body["data"]["replies"]
            if not replies:
                break
            for reply in replies:
                assert isinstance(reply["mid"], int) and reply["member"]["mid"] == str(reply["mid"])
                assert reply["oid"] == video["aid"]
            got += [(r["mid"], r["ctime"]) for r in replies]
            pn += 1
        multi_page += pn > 2
        want = [(e["mid"], e["timestamp"]) for e in truth.get(video["platform_video_id"], [])]
        assert Counter(got) == Counter(want), video["platform_video_id"]
        assert [t for _, t in got] == sorted((t for _, t in got), reverse=True)  # sort=0: newest first
        assert body["data"]["page"]["count"] == len(want)
    assert multi_page > 0


def test_dm_list_decompresses_and_holds_every_danmaku(served):
    url, world = served
    truth = _events(world, "danmaku")
    for k, video in _visible(world):
        status, headers, body = http_get(f"{url}/x/v1/dm/list.so?oid={int(world.cid[k])}")
        assert status == 200 and headers["Content-Encoding"] == "deflate"
        root = ET.fromstring(zlib.decompress(body, -zlib.MAX_WBITS))
        assert int(root.findtext("chatid")) == int(world.cid[k])
        got = []
        for d in root.iter("d"):
            p = d.attrib["p"].split(",")
            got.append((p[6], int(p[4])))
        want = [(e["mid_hash"], e["timestamp"]) for e in truth.get(video["platform_video_id"], [])]
        assert int(root.findtext("maxlimit")) >= len(want)
        assert Counter(got) == Counter(want)


def test_every_video_reachable_from_the_listings(served):
    url, world = served
    bvids = world.videos.column("platform_video_id").to_pylist()
    channel_of = dict(zip(bvids, world.videos.column("channel").to_pylist()))
    seen_verticals, seen_main = set(), []
    for rid in sorted(set(CHANNEL_RID.values()) | {MAIN_RID}):
        pn, count = 1, None
        while pn < 500:
            status, body = get_json(f"{url}/x/web-interface/dynamic/region?rid={rid}&ps=7&pn={pn}")
            assert status == 200 and body["code"] == 0
            count = body["data"]["page"]["count"]
            archives = body["data"]["archives"]
            if not archives:
                break
            for a in archives:
                if rid == MAIN_RID:
                    seen_main.append(a["bvid"])
                else:
                    assert CHANNEL_RID[channel_of[a["bvid"]]] == rid == a["tid"]
                    seen_verticals.add(a["bvid"])
            pn += 1
        assert pn - 1 == -(-count // 7)
    assert sorted(seen_main) == sorted(bvids)  # the main channel lists everything, once
    main_only = {b for b in bvids if CHANNEL_RID[channel_of[b]] == MAIN_RID}
    assert seen_verticals | main_only == set(bvids)


def test_view_and_tags_carry_the_world_fields(served):
    url, world = served
    for k, video in _visible(world)[:40]:
        _, by_aid = get_json(f"{url}/x/web-interface/view?aid={video['aid']}")
        _, by_bvid = get_json(f"{url}/x/web-interface/view?bvid={video['platform_video_id']}")
        assert by_aid == by_bvid and by_aid["code"] == 0
        d = by_aid["data"]
        assert (d["bvid"], d["aid"], d["title"], d["desc"], d["tname"], d["pubdate"], d["duration"]) == (
            video["platform_video_id"], video["aid"], video["title"], video["description"],
            video["channel"], video["release_time"], video["duration_s"])
        s = d["stat"]
        assert (s["view"], s["reply"], s["like"], s["share"], s["coin"], s["favorite"], s["danmaku"]) == (
            video["view_number"], video["comment_number"], video["thumbup_number"], video["share_number"],
            video["coin_number"], video["favorite_number"], video["barrage_number"])
        assert d["pic"] == f"{url}/bfs/archive/{video['cover_url']}.jpg" and d["cid"] == int(world.cid[k])
        _, tags = get_json(f"{url}/x/web-interface/view/detail/tag?aid={video['aid']}&cid={d['cid']}")
        assert ",".join(t["tag_name"] for t in tags["data"]) == video["tag"]


def test_related_is_deterministic_bounded_and_visible(served):
    url, world = served
    visible = {r["aid"] for _, r in _visible(world)}
    sizes = set()
    for _, video in _visible(world)[:30]:
        first = get_json(f"{url}/x/web-interface/archive/related?aid={video['aid']}")[1]
        again = get_json(f"{url}/x/web-interface/archive/related?bvid={video['platform_video_id']}")[1]
        assert first == again and 1 <= len(first["data"]) <= 40
        aids = [a["aid"] for a in first["data"]]
        assert video["aid"] not in aids and set(aids) <= visible and len(set(aids)) == len(aids)
        sizes.add(len(aids))
    assert len(sizes) > 1


def test_error_envelopes(tiny):
    url, world = tiny
    aid = world.videos.column("aid").to_pylist()
    removed = get_json(f"{url}/x/web-interface/view?aid={aid[3]}")[1]["code"]
    assert removed in (-404, 62002)
    assert get_json(f"{url}/x/web-interface/view?aid=1")[1]["code"] == -404
    assert get_json(f"{url}/x/web-interface/view?bvid=BV1xxxxxxxxx")[1]["code"] == -404
    assert get_json(f"{url}/x/v2/reply?type=1&oid={aid[2]}&pn=1")[1]["code"] == 12002
    assert get_json(f"{url}/x/v2/reply?type=1&oid={aid[3]}&pn=1")[1]["code"] == removed
    for bad in ("/x/web-interface/view", "/x/web-interface/view?aid=x",
                f"/x/v2/reply?type=2&oid={aid[0]}", f"/x/v2/reply?type=1&oid={aid[0]}&ps=21",
                "/x/web-interface/dynamic/region?rid=3&ps=51", "/x/web-interface/dynamic/region"):
        status, body = get_json(url + bad)
        assert (status, body["code"]) == (200, -400), bad
    assert http_get(f"{url}/x/v1/dm/list.so?oid=5")[0] == 404


def test_robots_allows_the_api(tiny):
    url, world = tiny
    robots = RobotFileParser()
    robots.parse(http_get(f"{url}/robots.txt")[2].decode().splitlines())
    for path in ("/x/web-interface/view?aid=1", "/x/web-interface/dynamic/region?rid=1",
                 "/x/web-interface/archive/related?aid=1", "/x/web-interface/view/detail/tag?aid=1",
                 "/x/v2/reply?type=1&oid=1", "/x/v1/dm/list.so?oid=1", "/bfs/archive/a.jpg"):
        assert robots.can_fetch("pixelrec-crawler", url + path), path
    assert not robots.can_fetch("pixelrec-crawler", url + "/account/login")


def test_a_video_above_the_cap_pages_completely():
    world = generate_world(seed=2, users=9000, videos=40, hot_videos=1)
    url, stop = start_simulator(seed=2, world=world)
    try:
        sim = stop.simulator.world
        counts = [sim.comments.rows(k).stop - sim.comments.rows(k).start for k in range(sim.n)]
        k = max(range(sim.n), key=counts.__getitem__)
        users = set(sim.comments.mid[sim.comments.rows(k)].tolist())
        assert len(users) > 5000  # many hundreds of pages
        seen, pn = set(), 1
        while pn < 2000:
            data = get_json(f"{url}/x/v2/reply?type=1&oid={sim.cols['aid'][k]}&sort=0&ps=20&pn={pn}")[1]["data"]
            if not data["replies"]:
                break
            seen |= {(r["rpid"], r["mid"]) for r in data["replies"]}
            pn += 1
        assert len(seen) == counts[k] == data["page"]["count"] and {m for _, m in seen} == users
    finally:
        stop()
