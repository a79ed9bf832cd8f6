"""The Scrapy floor of bench/crawl_throughput.py: a bare spider fetching a fixed URL list.

    .venv/bin/python bench/_scrapy_floor.py URLS_FILE CONCURRENCY

No parsing, no items, no pipeline, no robots.txt, and the same loopback settings as the crawler
(crawler/settings.py LOOPBACK_OVERRIDES minus our own middleware): what Scrapy itself costs per
request on this machine. Prints one JSON line: requests, active seconds (first request sent ->
last response), requests/s.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import scrapy
from scrapy import signals
from scrapy.crawler import CrawlerProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from crawler import settings as crawler_settings  # noqa: E402


class FloorSpider(scrapy.Spider):
    name = "floor"
    times: list = []

    def __init__(self, urls, **kw):
        super().__init__(**kw)
        self.urls = urls

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.on_response, signal=signals.response_received)
        return spider

    def on_response(self, **_):  # a bound method: Scrapy's signals hold receivers weakly
        self.times.append(time.perf_counter())

    async def start(self):
        self.times.append(time.perf_counter())
        for url in self.urls:
            yield scrapy.Request(url, dont_filter=True, callback=self.parse)

    def parse(self, response):
        return None


def main() -> None:
    urls = Path(sys.argv[1]).read_text().split()
    concurrency = int(sys.argv[2])
    handler = sys.argv[3] if len(sys.argv) > 3 else "crawler"
    overrides = dict(crawler_settings.LOOPBACK_OVERRIDES)
    middlewares = {k: v for k, v in overrides["DOWNLOADER_MIDDLEWARES"].items()
                   if not k.startswith("crawler.")}
    settings = {
        "CONCURRENT_REQUESTS": concurrency, "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "ROBOTSTXT_OBEY": False,
        "RETRY_ENABLED": False, "COOKIES_ENABLED": False, "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False, "REMOTE_CONTROL_ENABLED": False,
        "TWISTED_REACTOR": crawler_settings.TWISTED_REACTOR,
        "CONCURRENT_ITEMS": crawler_settings.CONCURRENT_ITEMS,
        "WARN_ON_GENERATOR_RETURN_VALUE": False,
        "DOWNLOADER_MIDDLEWARES": middlewares,
        "SPIDER_MIDDLEWARES": overrides["SPIDER_MIDDLEWARES"], "EXTENSIONS": overrides["EXTENSIONS"],
        "SCHEDULER_PRIORITY_QUEUE": overrides["SCHEDULER_PRIORITY_QUEUE"],
        "LOG_FORMATTER": overrides["LOG_FORMATTER"],
    }
    if handler == "crawler" and "DOWNLOAD_HANDLERS" in overrides:
        settings["DOWNLOAD_HANDLERS"] = overrides["DOWNLOAD_HANDLERS"]
    process = CrawlerProcess(settings)
    process.crawl(FloorSpider, urls=urls)
    process.start()
    times = FloorSpider.times
    active = times[-1] - times[0]
    print(json.dumps({"requests": len(times) - 1, "active_s": active,
                      "requests_s": (len(times) - 1) / active}))


if __name__ == "__main__":
    main()
