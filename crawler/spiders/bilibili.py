"""The site adapter for the platform's public web API (Bilibili's shapes): one spider.

Discovery: the dynamic/region listing of each main channel, paged, plus the related-video walk
(1 to 3 related videos picked per video page, seeded by --seed and the video, so the walk is the same
in every run). Per video, one chain of requests: view -> tags -> every comment page (and nested
reply pages) -> danmaku -> related. The chain's state (video row and the events so far, already
keyed-hashed) travels in the request, so any process sharing a Redis queue can continue it and no
platform id is ever serialised. A finished chain becomes one VideoDone item.

Only plain public endpoints are used: requests are never signed, challenges never solved.
"""
from __future__ import annotations

import math
import random
import time
from urllib.parse import urlencode, urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from w3lib.url import safe_url_string

from .. import parsers
from ..items import ListingPage, VideoDone
from ..middlewares import CODE, DOC, KIND

# The main channel (rid 0, every video) and the 22 old-style main zones of the platform's region
# table = the paper's main channel and 22 vertical channels.
CHANNEL_RIDS = (0, 1, 13, 167, 3, 129, 4, 36, 188, 234, 223, 160, 211, 217, 119, 155, 202, 165, 5,
                181, 177, 23, 11)
LISTING_PS = 50
REPLY_PS = 20
PRIORITY_LISTING, PRIORITY_VIEW, PRIORITY_STEP = 0, 10, 20
VIDEO_STEPS = (("tags",), ("reply", 1), ("dm",), ("related",))


def api_base(url: str) -> str:
    """The base every API path is appended to: `url` made safe, with no trailing slash (w3lib
    from 2.6 on writes an empty path as "/", as the URL standard does: "/x/..." must not become
    "//x/...", which robots.txt and the platform read as another path)."""
    return safe_url_string(url).rstrip("/")


class BilibiliSpider(scrapy.Spider):
    name = "bilibili"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runtime = None

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.runtime = crawler.settings.get("PIXELREC_RUNTIME")
        opts = spider.runtime.options
        spider.base_url = api_base(opts.base_url)
        spider.scheme = urlsplit(spider.base_url).scheme or "https"
        spider.seed = opts.seed
        spider.max_videos = opts.max_videos
        spider.cap = opts.cap
        spider.max_duration = opts.max_duration_s
        spider.anonymizer = spider.runtime.anonymizer
        spider.done = set(spider.runtime.known.done)
        spider.chains = set()        # aids whose chain started in this process
        spider.running = 0           # chains started and not finished (for --max-videos)
        spider.sequential = bool(opts.redis_url)
        spider.kept = len(spider.runtime.known.kept)
        spider.last_activity = time.monotonic()
        crawler.signals.connect(spider._on_idle, signal=signals.spider_idle)
        return spider

    # -- requests --------------------------------------------------------------------------------
    def _api(self, path: str, params: dict, callback, priority: int, meta=None, dont_filter=False):
        # verbatim: the URL is already safe (a safe base, ASCII paths, urlencode'd values), so
        # Scrapy need not re-quote it nor canonicalise it for the duplicate filter
        url = f"{self.base_url}{path}?{urlencode(params)}"
        meta = meta if meta is not None else {}
        meta["verbatim_url"] = True
        return scrapy.Request(url, callback=callback, errback=self.on_failure, priority=priority,
                              meta=meta, dont_filter=dont_filter)

    def listing_request(self, rid: int, pn: int):
        return self._api("/x/web-interface/dynamic/region", {"rid": rid, "ps": LISTING_PS, "pn": pn},
                         self.parse_listing, PRIORITY_LISTING, {"rid": rid, "pn": pn})

    def view_request(self, aid: int, dont_filter=False):
        return self._api("/x/web-interface/view", {"aid": aid}, self.parse_view, PRIORITY_VIEW,
                         {"aid": aid}, dont_filter)

    async def start(self):
        known = self.runtime.known
        for rid in CHANNEL_RIDS:
            pages_done = known.listing_pages.get(rid, set())
            if 1 not in pages_done:
                yield self.listing_request(rid, 1)
                continue
            pages = max(1, math.ceil(known.listing_counts.get(rid, 0) / LISTING_PS))
            for pn in range(2, pages + 1):
                if pn not in pages_done:
                    yield self.listing_request(rid, pn)
        # videos found before an interruption but not finished: their chains start again
        for aid in known.pending_videos():
            if not self._limit_reached():
                yield self.view_request(aid, dont_filter=True)

    # -- discovery -------------------------------------------------------------------------------
    def _keep_ref(self, ref: parsers.VideoRef) -> bool:
        return ref.duration_s is None or ref.duration_s < self.max_duration

    def parse_listing(self, response):
        self.last_activity = time.monotonic()
        doc = response.meta.pop(DOC, None)
        rid, pn = response.meta["rid"], response.meta["pn"]
        if response.meta.get(KIND) != "ok":
            return
        refs, count, _, _ = parsers.parse_region(doc)
        found = sorted({r.aid for r in refs if self._keep_ref(r)})
        yield ListingPage(rid=rid, pn=pn, count=count, found=found)
        if pn == 1:
            for page in range(2, math.ceil(count / LISTING_PS) + 1):
                yield self.listing_request(rid, page)
        for aid in found:
            if aid not in self.done and not self._limit_reached():
                yield self.view_request(aid)

    def _limit_reached(self, running: int = 0) -> bool:
        return self.max_videos is not None and self.kept + running >= self.max_videos

    # -- one video's chain -----------------------------------------------------------------------
    def parse_view(self, response):
        self.last_activity = time.monotonic()
        doc = response.meta.pop(DOC, None)
        aid = response.meta["aid"]
        if aid in self.done or aid in self.chains:
            return  # a chain of this video already runs here (a resumed crawl finds it twice)
        self.chains.add(aid)
        if response.meta.get(KIND) != "ok":
            yield self._finish_rejected(aid, f"code {response.meta.pop(CODE, '?')}")
            return
        row = parsers.parse_view(doc, self.scheme)
        if row["duration_s"] >= self.max_duration:
            yield self._finish_rejected(aid, "long")
            return
        if self._limit_reached(self.running):
            self.chains.discard(aid)  # left for a later run with a higher --max-videos
            return
        self.running += 1
        state = {"aid": aid, "row": row, "events": {}, "related": [],
                 "branches": {step[0]: [step] for step in VIDEO_STEPS}}
        # one process: the branches (tags, comment pages, danmaku, related) run side by side and
        # share `state`; with Redis a request may be continued by another process, so a video's
        # requests go one after the other and the state travels inside them
        starts = list(state["branches"]) if not self.sequential else list(state["branches"])[:1]
        for branch in starts:
            yield self._step_request(state, branch)

    def _step_request(self, state: dict, branch: str):
        step = state["branches"][branch].pop(0)
        row, aid = state["row"], state["aid"]
        if step[0] == "tags":
            path, params = "/x/web-interface/view/detail/tag", {"aid": aid, "cid": row["cid"]}
        elif step[0] == "reply":
            path, params = "/x/v2/reply", {"type": 1, "oid": aid, "sort": 0, "ps": REPLY_PS,
                                           "pn": step[1]}
        elif step[0] == "subreply":
            path, params = "/x/v2/reply/reply", {"type": 1, "oid": aid, "root": step[1],
                                                 "ps": REPLY_PS, "pn": step[2]}
        elif step[0] == "dm":
            path, params = "/x/v1/dm/list.so", {"oid": row["cid"]}
        else:
            path, params = "/x/web-interface/archive/related", {"aid": aid}
        return self._api(path, params, self.parse_step, PRIORITY_STEP,
                         {"video": state, "step": step, "branch": branch}, dont_filter=True)

    def _advance(self, state: dict, branch: str):
        """The branch's next request; when it has none left, the next branch or the end."""
        branches = state["branches"]
        if state.get("failed"):
            return
        if branches[branch]:
            yield self._step_request(state, branch)
            return
        del branches[branch]
        if not branches:
            self.running -= 1
            yield self._finish_kept(state)
        elif self.sequential:
            yield self._step_request(state, next(iter(branches)))

    def parse_step(self, response):
        self.last_activity = time.monotonic()
        doc = response.meta.pop(DOC, None)
        state, step, branch = response.meta["video"], response.meta["step"], response.meta["branch"]
        if state.get("failed"):
            return
        if response.meta.get(KIND) == "ok":
            yield from getattr(self, f"_on_{step[0]}")(state, step, doc, branch) or ()
        elif step[0] == "subreply":
            # 12022 (that comment was deleted meanwhile) ...: only this thread ends; the other
            # threads and comment pages of the branch are still read
            pending = state["branches"][branch]
            pending[:] = [s for s in pending if not (s[0] == "subreply" and s[1] == step[1])]
        else:
            # 12002 comments closed, -404 ...: nothing more to read on this branch
            state["branches"][branch].clear()
        yield from self._advance(state, branch)

    def _on_tags(self, state, step, doc, branch):
        state["row"]["tag"] = parsers.parse_tags(doc)
        return ()

    def _on_reply(self, state, step, doc, branch):
        page = parsers.parse_replies(doc)
        self._add_comments(state, page.events)
        follow = [("subreply", root, 1) for root, _ in page.nested]
        size, pn = max(page.size, 1), step[1]
        pages = math.ceil(page.count / size)
        if self.sequential or pn > 1:
            # the next page, one after the other (or past the last counted page, in case the
            # count was low: reading stops at an empty page)
            if not page.empty and (pn < pages if self.sequential else pn >= pages and page.full):
                follow.append(("reply", pn + 1))
        elif not page.empty:
            for other in range(2, pages + 1):  # once page 1 gave the count: the rest at once
                state["branches"][f"reply{other}"] = [("reply", other)]
                yield self._step_request(state, f"reply{other}")
        state["branches"][branch][:0] = follow

    def _on_subreply(self, state, step, doc, branch):
        page = parsers.parse_reply_replies(doc)
        self._add_comments(state, page.events)
        if not page.empty and page.num * max(page.size, 1) < page.count:
            state["branches"][branch].insert(0, ("subreply", step[1], step[2] + 1))
        return ()

    def _add_comments(self, state, events) -> None:
        for mid, ts in events:
            self._add_event(state["events"], self.anonymizer.commenter(mid), ts, "comment")

    def _on_dm(self, state, step, events, branch):
        for midhash, ts in events:
            self._add_event(state["events"], self.anonymizer.danmaku_sender(midhash), ts, "danmaku")
        return ()

    @staticmethod
    def _add_event(events: dict, user_key: int, ts: int, source: str) -> None:
        """One event per (video, user): the earliest (ties: 'comment' before 'danmaku')."""
        seen = events.get(user_key)
        if seen is None or (ts, source) < (seen[0], seen[1]):
            events[user_key] = (ts, source)

    def _on_related(self, state, step, doc, branch):
        refs = parsers.parse_related(doc)
        rng = random.Random(f"{self.seed}:related:{state['aid']}")
        picks = rng.sample(refs, min(rng.randint(1, 3), len(refs))) if refs else []
        for ref in picks:
            if self._keep_ref(ref):
                state["related"].append(ref.aid)
                if ref.aid not in self.done and not self._limit_reached():
                    yield self.view_request(ref.aid)

    def _finish_kept(self, state: dict) -> VideoDone:
        events = sorted((ts, uk, src) for uk, (ts, src) in state["events"].items())[: self.cap]
        row = dict(state["row"])
        row.pop("cid", None)
        row.setdefault("tag", "")
        row["crawled_at"] = parsers.now_s()
        self.done.add(state["aid"])
        self.kept += 1
        if self._limit_reached():
            self.crawler.stats.set_value("pixelrec/limit", "max_videos")
        return VideoDone(aid=state["aid"], row=row, events=[(uk, ts, src) for ts, uk, src in events],
                         related=sorted(set(state["related"])), reason="")

    def _finish_rejected(self, aid: int, reason: str) -> VideoDone:
        self.done.add(aid)
        self.crawler.stats.inc_value(f"pixelrec/rejected/{reason}")
        return VideoDone(aid=aid, row=None, events=[], related=[], reason=reason)

    # -- failures and idleness -------------------------------------------------------------------
    def on_failure(self, failure):
        """A request that could not be completed (retries exhausted, stop): its video stays
        unfinished, and a rerun of the same command crawls it again."""
        self.crawler.stats.inc_value(f"pixelrec/failed/{failure.type.__name__}")
        state = failure.request.meta.get("video")
        if state is not None and not state.get("failed"):
            state["failed"] = True  # its other branches stop; the video is never half-written
            self.running -= 1

    def _on_idle(self, spider):
        grace = self.runtime.options.idle_grace_s
        if grace and time.monotonic() - self.last_activity < grace:
            raise DontCloseSpider("other workers may still add requests to the shared queue")
