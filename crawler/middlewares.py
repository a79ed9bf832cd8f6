"""The downloader middleware that reads the platform's JSON code (and the danmaku body).

Most errors of this platform come inside HTTP 200 bodies, so the decision is made on the decoded
body, not only on the status:
- cool-down (-412/-509/-799/-503, HTTP 412/429/5xx, connection errors): the whole domain pauses,
  for longer after each consecutive block, and the request is retried later;
- broken body (truncated JSON or deflate): retried without a cool-down;
- final (-404/-403/62002/62004/62012/12002/12022, unknown codes): handed to the spider, never
  retried;
- challenge (-352, or code 0 with only data.v_voucher): the crawl stops, with a reason. A challenge
  is never solved and requests are never signed: a block is a signal, not an obstacle.
"""
from __future__ import annotations

import collections
import time
from urllib.parse import urlsplit

import orjson
from scrapy import signals
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest
from scrapy.logformatter import LogFormatter
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.task import deferLater

from . import decoding
from .parsers import ParseError, classify, parse_danmaku

DOC = "pixelrec_doc"        # request.meta key: the decoded body handed to the spider
KIND = "pixelrec_kind"      # request.meta key: 'ok' | 'final' | 'error'
CODE = "pixelrec_code"      # request.meta key: the platform's code (or -HTTP status)


class RateProbe:
    """Counts requests as they leave for the network and the busiest one-second window."""

    def __init__(self):
        self.sent = 0
        self.peak_per_s = 0
        self.first = self.last = None   # monotonic times of the first and last request sent
        self._window = collections.deque()

    def note(self) -> None:
        now = time.monotonic()
        self.sent += 1
        self.first = now if self.first is None else self.first
        self.last = now
        self._window.append(now)
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        self.peak_per_s = max(self.peak_per_s, len(self._window))


class PlatformCodeMiddleware:
    def __init__(self, crawler):
        settings = crawler.settings
        self.crawler = crawler
        self.stats = crawler.stats
        self.base_cooldown = settings.getfloat("PIXELREC_COOLDOWN_S")
        self.max_cooldown = settings.getfloat("PIXELREC_MAX_COOLDOWN_S")
        self.max_retries = settings.getint("PIXELREC_MAX_RETRIES")
        self.cooldown_until: dict[str, float] = {}
        self.strikes: dict[str, int] = {}
        self.stopped = False
        self.probe = RateProbe()
        self.count_downloads = settings.getbool("PIXELREC_COUNT_DOWNLOADS")
        self._note = None
        if settings.getfloat("DOWNLOAD_DELAY") > 0:
            crawler.signals.connect(self._reached, signal=signals.request_reached_downloader)
        else:  # no delay: a request leaves when it passes here (and a signal costs a dispatch)
            self._note = self.probe.note

    @classmethod
    def from_crawler(cls, crawler):
        middleware = cls(crawler)
        crawler.settings.get("PIXELREC_RUNTIME").probe = middleware.probe
        return middleware

    def _reached(self, request, spider=None):
        if not request.url.endswith("/robots.txt"):
            self.probe.note()

    async def process_request(self, request):
        if self.stopped:
            raise IgnoreRequest("crawl stopped")
        if self.cooldown_until:  # only after a block: most requests skip the lookup
            domain = urlparse_cached(request).netloc
            wait = self.cooldown_until.get(domain, 0.0) - time.monotonic()
            if wait > 0:
                from twisted.internet import reactor  # imported late: Scrapy installs the reactor

                await maybe_deferred_to_future(deferLater(reactor, wait, lambda: None))
        if self._note is not None and not request.url.endswith("/robots.txt"):
            self._note()
        if self.count_downloads:  # what DownloaderStats counts, without measuring sizes
            self.stats.inc_value("downloader/request_count")
        return None

    def process_response(self, request, response):
        if self.count_downloads:
            self.stats.inc_value("downloader/response_count")
            self.stats.inc_value(f"downloader/response_status_count/{response.status}")
        if response.url.endswith("/robots.txt") or request.meta.get("pixelrec_raw"):
            return response
        if response.status in (412, 429) or response.status >= 500:
            return self._cooldown(request, f"http_{response.status}")
        try:
            doc = _decode(request, response)
        except ParseError:
            if 400 <= response.status < 500:  # e.g. a plain 404 page: final, like -404
                self.stats.inc_value(f"pixelrec/errors/final_http_{response.status}")
                return _hand_over(request, response, None, "final", -response.status)
            return self._retry(request, "broken_body")
        if isinstance(doc, list):  # danmaku: already the parsed events
            self._calm(request)
            return _hand_over(request, response, doc, "ok", 0)
        try:
            envelope = classify(doc, response.status)
        except ParseError:
            return self._retry(request, "broken_body")
        if envelope.kind == "stop":
            return self._stop(envelope.code, request)
        if envelope.kind == "cooldown":
            return self._cooldown(request, f"code_{envelope.code}")
        if envelope.kind != "ok":
            self.stats.inc_value(f"pixelrec/errors/{envelope.kind}_{envelope.code}")
        else:
            self._calm(request)
        return _hand_over(request, response, envelope.data, envelope.kind, envelope.code)

    def process_exception(self, request, exception):
        if self.count_downloads:
            self.stats.inc_value("downloader/exception_count")
        if isinstance(exception, IgnoreRequest) or self.stopped:
            return None
        return self._cooldown(request, f"net_{type(exception).__name__}")

    def _calm(self, request) -> None:
        if self.strikes:
            self.strikes.pop(urlparse_cached(request).netloc, None)

    def _cooldown(self, request, kind: str):
        """Pause the whole domain (longer after each consecutive block), then retry."""
        domain = urlparse_cached(request).netloc
        strikes = self.strikes.get(domain, 0)
        self.strikes[domain] = strikes + 1
        pause = min(self.max_cooldown, self.base_cooldown * (2 ** min(strikes, 16)))
        self.cooldown_until[domain] = max(self.cooldown_until.get(domain, 0.0),
                                          time.monotonic() + pause)
        self.stats.inc_value("pixelrec/cooldowns")
        return self._retry(request, kind)

    def _retry(self, request, kind: str):
        self.stats.inc_value(f"pixelrec/errors/{kind}")
        retry = get_retry_request(request, spider=self.crawler.spider, reason=kind,
                                  max_retry_times=self.max_retries,
                                  stats_base_key="pixelrec/retries")
        if retry is None:
            self.stats.inc_value("pixelrec/gave_up")
            raise IgnoreRequest(f"gave up after {self.max_retries} retries ({kind})")
        return retry

    def _stop(self, code: int, request):
        if not self.stopped:
            self.stopped = True
            path = urlsplit(request.url).path
            reason = (f"challenge: the platform answered code {code} (risk-control challenge) "
                      f"on {path}; the crawl stopped and does not solve challenges: wait, "
                      f"lower --rate, then rerun the same command to continue")
            self.stats.set_value("pixelrec/stop_reason", reason)
            deferred_from_coro(self.crawler.engine.close_spider_async(reason=reason))
        raise IgnoreRequest("challenge")


def _hand_over(request, response, doc, kind: str, code: int):
    request.meta[DOC], request.meta[KIND], request.meta[CODE] = doc, kind, code
    return response


def _decode(request, response):
    """The JSON document, or the danmaku events for list.so (raw deflate XML)."""
    path = urlparse_cached(request).path
    if path.endswith("/dm/list.so") and response.body.lstrip()[:1] != b"{":
        return parse_danmaku(response.body)
    try:
        return decoding.decode(path, response.body)
    except orjson.JSONDecodeError:
        raise ParseError("body is not JSON") from None


class QuietLogFormatter(LogFormatter):
    """No per-response and per-item DEBUG records (built even when the level drops them)."""

    def crawled(self, request, response, spider):
        return None

    def scraped(self, item, response, spider):
        return None
