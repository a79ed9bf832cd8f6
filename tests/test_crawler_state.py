"""The crawl state's commit protocol: a shard counts only once its commit record is in the journal."""
import json
import multiprocessing

import pyarrow.parquet as pq

from crawler.items import ListingPage, VideoDone
from crawler.pipelines import Anonymizer, ShardPipeline
from crawler.state import Worker, load_known, read_journal
from schemas.keys import user_key_for_mid, user_key_for_midhash


def video_row(aid: int) -> dict:
    return {"platform_video_id": f"BV{aid}", "aid": aid, "title": "t", "description": "", "tag": "a,b",
            "channel": "c", "cover_url": f"http://127.0.0.1/bfs/archive/{aid:040d}.jpg",
            "view_number": 1, "comment_number": 2, "thumbup_number": 3, "share_number": 4,
            "coin_number": 5, "favorite_number": 6, "barrage_number": 7, "release_time": 100,
            "duration_s": 30, "crawled_at": 200}


def test_commit_then_torn_line_and_orphan_shards(tmp_path):
    worker = Worker(tmp_path)
    pipeline = ShardPipeline(worker, shard_bytes=10**9, flush_seconds=3600)
    pipeline.process_item(ListingPage(rid=1, pn=1, count=3, found=[1, 2, 3]))
    pipeline.process_item(VideoDone(aid=1, row=video_row(1), events=[(11, 5, "comment")],
                                    related=[4], reason=""))
    pipeline.process_item(VideoDone(aid=2, row=None, events=[], related=[], reason="long"))
    pipeline.flush()
    assert (tmp_path / "videos" / "part-w0000-00000.parquet").exists()
    # a second flush whose commit record is torn: its shards are orphans
    pipeline.process_item(VideoDone(aid=3, row=video_row(3), events=[(12, 6, "danmaku")],
                                    related=[], reason=""))
    pipeline.flush()
    journal = worker.journal_path.read_bytes()
    worker.journal_path.write_bytes(journal[:-5])
    worker.release()

    known = load_known(tmp_path / "state")
    assert known.done == {1, 2} and known.kept == {1} and known.events == 1
    assert known.discovered == {1, 2, 3, 4} and known.pending_videos() == [3, 4]
    resumed = Worker(tmp_path)
    assert resumed.name == "w0000"  # the dead worker's id is taken over ...
    resumed.recover(known)          # ... and its uncommitted shard removed
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["part-w0000-00000.parquet"]
    assert sorted(p.name for p in (tmp_path / "interactions").iterdir()) == ["part-w0000-00000.parquet"]
    assert resumed.next_seq == 1
    events = pq.read_table(tmp_path / "interactions" / "part-w0000-00000.parquet").to_pylist()
    assert events == [{"platform_video_id": "BV1", "user_key": 11, "timestamp": 5, "source": "comment"}]
    resumed.release()


def _hold_lock(path, ready, done):
    worker = Worker(path)
    ready.set()
    done.wait(20)
    worker.release()


def test_live_worker_keeps_its_id(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, ready, done))
    holder.start()
    try:
        assert ready.wait(20)
        second = Worker(tmp_path)
        assert second.name == "w0001" and second.live_workers() == {"w0000", "w0001"}
        second.release()
    finally:
        done.set()
        holder.join(20)
    third = Worker(tmp_path)
    assert third.name == "w0000" and third.live_workers() == {"w0000"}
    third.release()


def test_journal_lines_are_records_and_keys_follow_the_contract(tmp_path):
    path = tmp_path / "journal-w0000.jsonl"
    path.write_bytes(b'{"t":"listing","rid":1,"pn":1,"count":0,"found":[]}\n{"t":"comm')
    assert read_journal(path) == [json.loads('{"t":"listing","rid":1,"pn":1,"count":0,"found":[]}')]
    key = b"k" * 32
    assert Anonymizer(key, False).commenter(616368979) == user_key_for_mid(key, 616368979)
    assert Anonymizer(key, True).commenter(616368979) == user_key_for_midhash(key, "445e7035")
    assert Anonymizer(key, False).danmaku_sender("4FE08D3") == user_key_for_midhash(key, "4fe08d3")


def test_one_event_per_user_earliest_and_the_per_video_cap():
    from crawler.spiders.bilibili import BilibiliSpider

    spider = BilibiliSpider()
    spider.cap, spider.done, spider.kept, spider.max_videos = 3, set(), 0, None
    events = {}
    for user, ts, source in [(1, 50, "danmaku"), (1, 40, "comment"), (2, 10, "danmaku"),
                             (2, 10, "comment"), (3, 30, "comment"), (4, 20, "danmaku"),
                             (5, 60, "comment")]:
        spider._add_event(events, user, ts, source)
    assert events == {1: (40, "comment"), 2: (10, "comment"), 3: (30, "comment"),
                      4: (20, "danmaku"), 5: (60, "comment")}
    done = spider._finish_kept({"aid": 9, "row": {"platform_video_id": "BV9", "cid": 1},
                                "events": events, "related": [7, 7]})
    assert done["events"] == [(2, 10, "comment"), (4, 20, "danmaku"), (3, 30, "comment")]
    assert done["related"] == [7] and "cid" not in done["row"] and done["row"]["tag"] == ""
    assert spider.done == {9} and spider.kept == 1


def test_a_failed_thread_ends_only_that_thread():
    """A 12022 on one root's reply/reply drops that root's pages, not the page's other threads."""
    import scrapy
    from scrapy.http import Response

    from crawler.middlewares import CODE, DOC, KIND
    from crawler.spiders.bilibili import BilibiliSpider

    spider = BilibiliSpider()
    spider.base_url, spider.sequential, spider.done, spider.running = "http://h", False, set(), 1
    state = {"aid": 9, "row": {"cid": 1}, "events": {}, "related": [],
             "branches": {"reply": [("subreply", 11, 3), ("subreply", 12, 1), ("reply", 3)],
                          "dm": [("dm",)]}}
    request = scrapy.Request("http://h/x/v2/reply/reply", meta={
        "video": state, "step": ("subreply", 11, 2), "branch": "reply",
        DOC: None, KIND: "final", CODE: 12022})
    follow = list(spider.parse_step(Response(request.url, request=request)))
    assert [r.meta["step"] for r in follow] == [("subreply", 12, 1)]
    assert state["branches"]["reply"] == [("reply", 3)]


def test_remote_targets_keep_the_polite_stack_and_loopback_drops_only_extras(tmp_path):
    from crawler.run import CrawlOptions, build_settings

    def settings_for(url):
        return build_settings(CrawlOptions(base_url=url, out=tmp_path / "raw",
                                           key_file=tmp_path / "key"), None)
    remote, local = settings_for("https://api.example.org"), settings_for("http://127.0.0.1:9")
    assert (remote["DOWNLOAD_DELAY"], remote["CONCURRENT_REQUESTS"],
            remote["CONCURRENT_REQUESTS_PER_DOMAIN"]) == (1.0, 1, 1)
    assert remote["ROBOTSTXT_OBEY"] and remote["AUTOTHROTTLE_ENABLED"]
    assert "LOG_FORMATTER" not in remote and "EXTENSIONS" not in remote
    # a remote site keeps Scrapy's own HTTP client (TLS, proxies); loopback gets the lean one
    assert "DOWNLOAD_HANDLERS" not in remote
    assert local["DOWNLOAD_HANDLERS"] == {"http": "crawler.transport.keepalive.KeepAliveHandler"}
    assert "scrapy.downloadermiddlewares.stats.DownloaderStats" not in remote["DOWNLOADER_MIDDLEWARES"]
    # the loopback fast path never removes what makes the crawl polite or correct
    assert local["ROBOTSTXT_OBEY"] and local["PIXELREC_COUNT_DOWNLOADS"]
    assert local["DOWNLOADER_MIDDLEWARES"]["crawler.middlewares.PlatformCodeMiddleware"] == 560
    assert "scrapy.spidermiddlewares.httperror.HttpErrorMiddleware" not in local["SPIDER_MIDDLEWARES"]
    assert "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware" not in \
        local["DOWNLOADER_MIDDLEWARES"]


def test_api_paths_follow_the_base_url_with_one_slash():
    """Whatever w3lib writes for an empty path ("" up to 2.5, "/" from 2.6 on), an API path is
    appended with one slash: "//x/..." is another path to robots.txt and to the platform."""
    from crawler.spiders.bilibili import api_base

    for url in ("http://127.0.0.1:8000", "http://127.0.0.1:8000/", "https://api.bilibili.com",
                "https://api.bilibili.com/"):
        assert api_base(url) + "/x/web-interface/view" == url.rstrip("/") + "/x/web-interface/view"
