"""Fetch URLs through crawler.transport.keepalive.KeepAliveHandler inside a real Scrapy crawl; print results.

    python tests/keepalive_probe.py '{"requests": [{"url": ..., "method": "GET", "meta": {}}],
                                      "concurrency": 1, "settings": {}}'

One JSON line per request, in request order: {"status", "body", "flags", "error"} (body as text,
error as the exception's class name). A helper of tests/test_keepalive.py: Twisted's reactor runs
once per process, so each case list runs in its own process.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import scrapy
from scrapy.crawler import CrawlerProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class ProbeSpider(scrapy.Spider):
    name = "probe"

    def __init__(self, cases, **kw):
        super().__init__(**kw)
        self.cases = cases
        self.results = [None] * len(cases)

    async def start(self):
        for i, case in enumerate(self.cases):
            yield scrapy.Request(case["url"], method=case.get("method", "GET"),
                                 body=case.get("body", ""), meta={**case.get("meta", {}), "i": i},
                                 callback=self.parse, errback=self.failed, dont_filter=True,
                                 priority=-i)

    def parse(self, response):
        self.results[response.meta["i"]] = {"status": response.status,
                                            "body": response.body.decode("latin-1"),
                                            "flags": response.flags, "error": None,
                                            "headers": {k.decode(): v[0].decode() for k, v in
                                                        response.headers.items()}}

    def failed(self, failure):
        self.results[failure.request.meta["i"]] = {"status": None, "body": None, "flags": [],
                                                   "error": failure.type.__name__,
                                                   "message": str(failure.value)}


def main() -> None:
    spec = json.loads(sys.argv[1])
    concurrency = spec.get("concurrency", 1)
    settings = {
        "DOWNLOAD_HANDLERS": {"http": "crawler.transport.keepalive.KeepAliveHandler"},
        "CONCURRENT_REQUESTS": concurrency, "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "RETRY_ENABLED": False, "ROBOTSTXT_OBEY": False, "COOKIES_ENABLED": False,
        "LOG_LEVEL": "ERROR", "TELNETCONSOLE_ENABLED": False, "REMOTE_CONTROL_ENABLED": False,
        "HTTPERROR_ALLOW_ALL": True, "DOWNLOAD_TIMEOUT": 5,
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
            "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None},
        "TWISTED_REACTOR": "twisted.internet.epollreactor.EPollReactor",
        **spec.get("settings", {}),
    }
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(ProbeSpider)
    process.crawl(crawler, cases=spec["requests"])
    process.start()
    for result in crawler.spider.results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
