"""The platform simulator: an aiohttp app serving a synthetic world over the platform's API shapes.

Paths, parameters, envelopes and paging follow the real responses (see payloads.py / comments.py):
  GET /x/web-interface/dynamic/region?rid=&pn=&ps=   channel listing, data.page{num,size,count}, ps <= 50;
                                                     rid 0 (the main channel) lists every video
  GET /x/web-interface/view?aid= | bvid=             video; -404 / 62002 for removed videos
  GET /x/web-interface/view/detail/tag?aid=&cid=     data[] with one tag_name per part of the tag
  GET /x/web-interface/archive/related?aid= | bvid=  data[]: 1-40 archives, deterministic
  GET /x/web-interface/archive/stat?aid= | bvid=     counts, flat
  GET /x/v2/reply?type=1&oid=<aid>&sort=0&ps<=20&pn= root comments newest first (sort 1, 2: by likes),
                                                     each with rcount and a preview of its first 3
                                                     replies; page.count roots, page.acount all;
                                                     [] past the end; 12002 comments closed
  GET /x/v2/reply/reply?type=1&oid=&root=<rpid>&ps<=20&pn=
                                                     one root's nested replies, oldest first; [] past
                                                     the end; 12022 when root is not a root of oid
  GET /x/v2/reply/count?type=1&oid=<aid>             data.count
  GET /x/v1/dm/list.so?oid=<cid>                     raw-deflate XML, current pool (maxlimit)
  GET /bfs/archive/<40 hex>.jpg[@<w>w_<h>h[.fmt]]   cover JPEG (webp/png on request)
  GET /robots.txt, GET /__simulator/stats (counters, per route too; not a platform endpoint)
Malformed queries get the -400 envelope.
Requests pass a per-client rate limiter (API paths only; 412/-412, then -352) and deterministic fault
injection (faults.py) before reaching the handlers. Usable in-process (`start_simulator`, a background
thread on a free port) or in the foreground (`serve`, until SIGINT/SIGTERM).
"""
from __future__ import annotations

import asyncio
import json
from collections import Counter

from aiohttp import web

from . import comments, payloads
from .covers import FORMATS, MAX_SIDE, CoverCache, corrupt, feature_dict, parse_cover_name
from .faults import FaultPlan, FaultSpec, canonical_query
from .ratelimit import BLOCKED, CHALLENGED
from .world import SimWorld

ROBOTS = """User-agent: *
Allow: /x/web-interface/dynamic/region
Allow: /x/web-interface/view
Allow: /x/web-interface/archive/
Allow: /x/v2/reply
Allow: /x/v1/dm/list.so
Allow: /bfs/
Disallow: /
"""
MAX_REGION_PS = 50
STATS_PATH = "/__simulator/stats"


class BadRequest(Exception):
    """A malformed query: answered with the -400 envelope."""


def json_response(payload, status: int = 200) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def _int(query, name, default=None, low=None, high=None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequest(name)
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(name) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadRequest(name)
    return value


class Simulator:
    def __init__(self, world, seed: int, faults: FaultSpec | str | None = None, limiter=None):
        self.world = world if isinstance(world, SimWorld) else SimWorld(world, seed)
        self.seed = int(seed)
        spec = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self.faults = FaultPlan(spec, self.seed)
        self.limiter = limiter
        self.covers = CoverCache(self._features_of)
        # requests, "requests <route>", blocked_412, challenged_352, fault_<kind>: /__simulator/stats
        self.stats = Counter()

    def _features_of(self, cover_hash: str):
        i = self.world.by_cover.get(cover_hash)
        if i is None:
            return None
        return feature_dict(self.world.visual[i])

    # -- the app ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        routes = [
            ("/robots.txt", self.robots), ("/x/web-interface/dynamic/region", self.region),
            ("/x/web-interface/view", self.view), ("/x/web-interface/view/detail/tag", self.tags),
            ("/x/web-interface/archive/related", self.related),
            ("/x/web-interface/archive/stat", self.archive_stat), ("/x/v2/reply", self.reply),
            ("/x/v2/reply/reply", self.reply_reply), ("/x/v2/reply/count", self.reply_count),
            ("/x/v1/dm/list.so", self.dm_list),
            ("/bfs/archive/{name}", self.cover), (STATS_PATH, self.stats_page),
        ]
        for path, handler in routes:
            app.router.add_get(path, handler)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        """Rate limit (API paths), then the attempt's transient fault, then the handler."""
        path = request.path
        if path in (STATS_PATH, "/robots.txt"):
            return await handler(request)
        self.stats["requests"] += 1
        resource = request.match_info.route.resource
        if resource is not None:  # per route ("/bfs/archive/{name}"), never per URL
            self.stats[f"requests {resource.canonical}"] += 1
        is_api = path.startswith("/x/")
        refusal = self._rate_limited(request) if is_api else None
        if refusal is not None:
            return refusal
        fault = None
        if self.faults.transient_kinds:  # no transient faults: no per-URL attempt count to keep
            query = canonical_query(request.query)
            attempt = self.faults.next_attempt(path, query)
            fault = self.faults.transient(path, query, attempt)
        if fault in ("challenge", "voucher") and not is_api:
            fault = None  # the image server has no risk control
        if fault:
            self.stats[f"fault_{fault}"] += 1
        if fault in ("5xx", "challenge", "voucher"):
            return self._fault_response(fault, path, query, attempt)
        if fault == "slow":
            await asyncio.sleep(self.faults.spec.slow_s)
        try:
            response = await handler(request)
        except BadRequest:
            response = json_response(payloads.ERRORS[-400])
        if fault == "truncate" and isinstance(response, web.Response) and response.body:
            return await _truncated(request, response)
        return response

    def _rate_limited(self, request) -> web.Response | None:
        if self.limiter is None:
            return None
        verdict = self.limiter.check(request.remote or "?")
        if verdict == BLOCKED:
            self.stats["blocked_412"] += 1
            return json_response(payloads.ERRORS[-412], status=412)
        if verdict == CHALLENGED:
            self.stats["challenged_352"] += 1
            return json_response(payloads.challenge(f"{self.seed}|{request.remote}"))
        return None

    def _fault_response(self, fault: str, path: str, query: str, attempt: int) -> web.Response:
        token = f"{self.seed}|{path}|{query}|{attempt}"
        if fault == "challenge":
            return json_response(payloads.challenge(token))
        if fault == "voucher":
            return json_response(payloads.voucher_only(token))
        status = self.faults.server_error_status(path, query, attempt)
        return web.Response(status=status, text=f"<html><body><h1>{status}</h1></body></html>",
                            content_type="text/html")

    # -- handlers --------------------------------------------------------------------------------
    async def stats_page(self, request):
        """Counters for tests and benchmarks (not a platform endpoint; robots.txt disallows it)."""
        return json_response(dict(sorted(self.stats.items())))

    async def robots(self, request):
        return web.Response(text=ROBOTS, content_type="text/plain")

    def _base(self, request) -> str:
        return f"{request.scheme}://{request.host}"

    def _video(self, query, aid_name="aid"):
        """The video a query names (aid or bvid): (index, error response or None)."""
        bvid = query.get("bvid")
        aid = None if bvid else _int(query, aid_name)
        i = self.world.lookup(aid=aid, bvid=bvid)
        if i is None:
            return None, json_response(payloads.ERRORS[-404])
        code = self.world.error_code(i)
        if code is not None:
            return i, json_response(payloads.ERRORS[code])
        return i, None

    async def region(self, request):
        q = request.query
        rid = _int(q, "rid", low=0)
        pn = _int(q, "pn", 1, low=1)
        ps = _int(q, "ps", 5, low=1, high=MAX_REGION_PS)
        rows = self.world.listing.get(rid, ())
        base = self._base(request)
        archives = [payloads.archive(self.world, int(i), base) for i in rows[(pn - 1) * ps: pn * ps]]
        return json_response(payloads.envelope(
            {"page": {"num": pn, "size": ps, "count": len(rows)}, "archives": archives}))

    async def view(self, request):
        i, error = self._video(request.query)
        return error or json_response(payloads.envelope(payloads.view(self.world, i, self._base(request))))

    async def tags(self, request):
        i, error = self._video(request.query)
        return error or json_response(payloads.envelope(payloads.tags(self.world, i)))

    async def related(self, request):
        i, error = self._video(request.query)
        if error:
            return error
        base = self._base(request)
        return json_response(payloads.envelope(
            [payloads.archive(self.world, j, base) for j in self.world.related(i)]))

    async def archive_stat(self, request):
        i, error = self._video(request.query)
        return error or json_response(payloads.envelope(payloads.archive_stat(self.world, i)))

    def _comment_target(self, query):
        if _int(query, "type") != 1:
            raise BadRequest("type")
        i, error = self._video(query, aid_name="oid")
        if error is None and self.world.comments_closed[i]:
            error = json_response(payloads.ERRORS[12002])
        return i, error

    async def reply(self, request):
        q = request.query
        i, error = self._comment_target(q)
        pn = _int(q, "pn", 1, low=1)
        ps = _int(q, "ps", comments.MAX_REPLY_PS, low=1, high=comments.MAX_REPLY_PS)
        sort = _int(q, "sort", 0, low=0, high=2)
        return error or json_response(payloads.envelope(comments.reply_page(self.world, i, pn, ps, sort)))

    async def reply_reply(self, request):
        q = request.query
        i, error = self._comment_target(q)
        root = _int(q, "root", low=1)
        pn = _int(q, "pn", 1, low=1)
        ps = _int(q, "ps", comments.MAX_REPLY_PS, low=1, high=comments.MAX_REPLY_PS)
        if error:
            return error
        k = self.world.threads(i).find_root(root)
        if k is None:  # unknown, a nested reply, or a root of another video
            return json_response(payloads.ERRORS[12022])
        return json_response(payloads.envelope(comments.reply_reply_page(self.world, i, k, pn, ps)))

    async def reply_count(self, request):
        i, error = self._comment_target(request.query)
        if error:
            return error
        rows = self.world.comments.rows(i)
        return json_response(payloads.envelope({"count": rows.stop - rows.start}))

    async def dm_list(self, request):
        i = self.world.by_cid.get(_int(request.query, "oid"))
        if i is None or self.world.removed[i]:
            return web.Response(status=404, text="not found")
        body = comments.raw_deflate(comments.dm_xml(self.world, i))
        return web.Response(body=body, headers={"Content-Type": "text/xml",
                                                "Content-Encoding": "deflate"})

    async def cover(self, request):
        parsed = parse_cover_name(request.match_info["name"])
        if parsed is None or parsed[3] not in FORMATS or parsed[1] != "jpg":
            return web.Response(status=404, text="not found")
        cover_hash, _, params, fmt = parsed
        if any(params.get(k, 1) > MAX_SIDE or params.get(k, 1) < 1 for k in ("w", "h")):
            return web.Response(status=400, text="bad size")
        fault = self.faults.cover(cover_hash)
        if fault:
            self.stats[f"fault_{fault}"] += 1
        if fault == "missing_cover":
            return web.Response(status=404, text="not found")
        data = self.covers.get(cover_hash, params, fmt)
        if data is None:
            return web.Response(status=404, text="not found")
        if fault == "corrupt_cover":
            data = corrupt(data)
        return web.Response(body=data, content_type=FORMATS[fmt][1],
                            headers={"Cache-Control": "max-age=31536000"})


async def _truncated(request: web.Request, response: web.Response) -> web.StreamResponse:
    """Send the headers of the full body, half of the body, then drop the connection."""
    body = response.body
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return stream
