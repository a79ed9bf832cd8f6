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
from pixelrec_data.synthetic.catalog import CHANNEL_RID
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


def _roots(url, aid, sort=0):
    """Every root of /x/v2/reply (page after page until an empty one) and the last page's data."""
    roots, pn = [], 1
    while pn < 1000:
        status, body = get_json(f"{url}/x/v2/reply?type=1&oid={aid}&sort={sort}&ps=20&pn={pn}")
        assert status == 200 and body["code"] == 0
        data = body["data"]
        if not data["replies"]:
            return roots, data
        roots += data["replies"]
        pn += 1
    raise AssertionError("reply pages do not end")


def _thread(url, aid, root, ps):
    """Every reply of one root through /x/v2/reply/reply, and the number of non-empty pages."""
    replies, pn = [], 1
    while pn < 1000:
        status, body = get_json(f"{url}/x/v2/reply/reply?type=1&oid={aid}&root={root}&ps={ps}&pn={pn}")
        assert status == 200 and body["code"] == 0
        data = body["data"]
        assert data["root"]["rpid"] == root and data["root"]["rcount"] == data["page"]["count"]
        assert (data["page"]["num"], data["page"]["size"]) == (pn, ps)
        if not data["replies"]:
            return replies, pn - 1
        replies += data["replies"]
        pn += 1
    raise AssertionError("reply/reply pages do not end")


def _check_thread(root, thread):
    """A thread as the platform nests it: oldest first, after its root, parents inside the thread."""
    assert [r["rpid"] for r in thread[:3]] == [r["rpid"] for r in root["replies"]]  # the preview
    assert thread[:3] == root["replies"]
    rpids = [r["rpid"] for r in thread]
    assert rpids == sorted(rpids) and all(r["ctime"] >= root["ctime"] for r in thread)
    assert [r["ctime"] for r in thread] == sorted(r["ctime"] for r in thread)
    dialogs = {}
    for r in thread:
        assert (r["root"], r["root_str"], r["replies"]) == (root["rpid"], str(root["rpid"]), None)
        assert r["parent_str"] == str(r["parent"]) and r["oid"] == root["oid"]
        if r["parent"] == root["rpid"]:
            assert r["dialog"] == r["rpid"]  # answering the root opens a dialog
        else:
            assert r["dialog"] == dialogs[r["parent"]]  # answering an earlier reply joins its dialog
        dialogs[r["rpid"]] = r["dialog"]


def test_roots_and_threads_cover_every_comment(served):
    url, world = served
    truth = _events(world, "comment")
    rcounts, multi_page, answers = [], 0, 0
    for k, video in _visible(world):
        if world.comments_closed[k]:
            continue
        roots, last = _roots(url, video["aid"])
        got = []
        for root in roots:
            assert isinstance(root["mid"], int) and root["member"]["mid"] == str(root["mid"])
            assert (root["oid"], root["root"], root["parent"]) == (video["aid"], 0, 0)
            assert root["count"] == root["rcount"] and len(root["replies"]) == min(3, root["rcount"])
            got.append((root["mid"], root["ctime"]))
            rcounts.append(root["rcount"])
            if root["rcount"]:
                thread, pages = _thread(url, video["aid"], root["rpid"], ps=5)
                assert len(thread) == root["rcount"] and pages == -(-root["rcount"] // 5)
                _check_thread(root, thread)
                multi_page += pages > 1
                answers += sum(r["parent"] != root["rpid"] for r in thread)
                got += [(r["mid"], r["ctime"]) for r in thread]
        want = [(e["mid"], e["timestamp"]) for e in truth.get(video["platform_video_id"], [])]
        assert Counter(got) == Counter(want), video["platform_video_id"]
        assert [r["ctime"] for r in roots] == sorted((r["ctime"] for r in roots), reverse=True)
        assert (last["page"]["count"], last["page"]["acount"]) == (len(roots), len(want))
    # most roots have no reply, some a few (all in the preview), some more than the preview shows
    assert sum(c == 0 for c in rcounts) > 0.6 * len(rcounts)
    assert any(1 <= c <= 3 for c in rcounts) and any(c > 5 for c in rcounts)
    assert multi_page > 0 and answers > 0


def test_like_sort_lists_the_same_roots(served):
    url, world = served
    counts = Counter(e["platform_video_id"] for e in world.events.to_pylist() if e["source"] == "comment")
    open_videos = [(k, v) for k, v in _visible(world) if not world.comments_closed[k]]
    for k, video in sorted(open_videos, key=lambda kv: -counts[kv[1]["platform_video_id"]])[:5]:
        newest, _ = _roots(url, video["aid"])
        liked, _ = _roots(url, video["aid"], sort=1)
        assert sorted(r["rpid"] for r in liked) == sorted(r["rpid"] for r in newest)
        assert [r["like"] for r in liked] == sorted((r["like"] for r in liked), reverse=True)


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
    threads = {k: _roots(url, aid[k])[0] for k in (0, 10)}
    nested = next(r for r in threads[10] if r["rcount"])
    thread = f"/x/v2/reply/reply?type=1&oid={aid[10]}&root={nested['rpid']}"
    assert get_json(url + thread)[1]["code"] == 0
    assert get_json(f"{url}/x/v2/reply/reply?type=1&oid={aid[2]}&root=1")[1]["code"] == 12002
    assert get_json(f"{url}/x/v2/reply/reply?type=1&oid={aid[3]}&root=1")[1]["code"] == removed
    for root in (1, threads[0][0]["rpid"], nested["replies"][0]["rpid"]):  # unknown, other video's, nested
        missing = get_json(f"{url}/x/v2/reply/reply?type=1&oid={aid[10]}&root={root}")[1]
        assert missing == {"code": 12022, "message": "已经被删除了", "ttl": 1, "data": None}
    for bad in ("/x/web-interface/view", "/x/web-interface/view?aid=x",
                f"/x/v2/reply?type=2&oid={aid[0]}", f"/x/v2/reply?type=1&oid={aid[0]}&ps=21",
                thread.replace("type=1", "type=2"), thread + "&ps=21", thread + "&pn=0",
                f"/x/v2/reply/reply?type=1&oid={aid[10]}",
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
                 "/x/v2/reply?type=1&oid=1", "/x/v2/reply/reply?type=1&oid=1&root=1",
                 "/x/v1/dm/list.so?oid=1", "/bfs/archive/a.jpg"):
        assert robots.can_fetch("pixelrec-crawler", url + path), path
    assert not robots.can_fetch("pixelrec-crawler", url + "/account/login")


def test_a_video_above_the_cap_pages_completely():
    """Thousands of commenters: the roots' pages plus the threads the previews do not show (followed
    as the crawler follows them) hold every comment; some threads need several reply/reply pages."""
    world = generate_world(seed=2, users=9000, videos=40, hot_videos=1)
    url, stop = start_simulator(seed=2, world=world)
    try:
        sim = stop.simulator.world
        counts = [sim.comments.rows(k).stop - sim.comments.rows(k).start for k in range(sim.n)]
        k = max(range(sim.n), key=counts.__getitem__)
        users = set(sim.comments.mid[sim.comments.rows(k)].tolist())
        assert len(users) > 5000  # many hundreds of pages
        aid = sim.cols["aid"][k]
        roots, last = _roots(url, aid)
        seen, long_threads = set(), 0
        for root in roots:
            seen |= {(r["rpid"], r["mid"]) for r in [root, *root["replies"]]}
            if root["rcount"] > len(root["replies"]):
                thread, pages = _thread(url, aid, root["rpid"], ps=20)
                seen |= {(r["rpid"], r["mid"]) for r in thread}
                long_threads += pages > 1
        assert len(roots) == last["page"]["count"] < last["page"]["acount"] == counts[k]
        assert len(seen) == counts[k] and {m for _, m in seen} == users and long_threads > 0
    finally:
        stop()
