"""Scrapy settings of the PixelRec crawler: polite by default.

run.py layers the command's options on top (rate, concurrency, Redis, output). The defaults are for
a real site: one request per second, one at a time, AutoThrottle on, robots.txt obeyed, and a
User-Agent that says who crawls and how to reach them.
"""
import sys

BOT_NAME = "pixelrec"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

CONTACT = "pixelrec-crawler@example.org"
USER_AGENT = (f"PixelRecCrawler/0.1 (+https://github.com/pixelrec/pixelrec-toolkit; "
              f"research dataset crawler; contact: {CONTACT})")
ROBOTSTXT_OBEY = True

# politeness: --rate and --concurrency replace these
DOWNLOAD_DELAY = 1.0
DOWNLOAD_DELAY_JITTER = 0          # a random delay could dip below 1/rate
CONCURRENT_REQUESTS = 1
CONCURRENT_REQUESTS_PER_DOMAIN = 1
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 30
COOKIES_ENABLED = False            # the public endpoints need no session

# our middleware reads the JSON code and decides retries and cool-downs; Scrapy's own retry and
# body decompression are off (list.so is raw deflate, decoded by the parser)
RETRY_ENABLED = False
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None,
    "scrapy.downloadermiddlewares.httpproxy.HttpProxyMiddleware": None,  # never through proxies
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware": None,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "crawler.middlewares.PlatformCodeMiddleware": 560,
}
SPIDER_MIDDLEWARES = {
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
}
ITEM_PIPELINES = {"crawler.pipelines.ShardPipeline": 300}

PIXELREC_COOLDOWN_S = 60.0         # first cool-down of the domain; doubles while blocks go on
PIXELREC_MAX_COOLDOWN_S = 3600.0
PIXELREC_MAX_RETRIES = 8
PIXELREC_SHARD_BYTES = 64 * 1024 * 1024
PIXELREC_FLUSH_SECONDS = 60.0      # commit finished videos at least this often

LOG_LEVEL = "WARNING"
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"

# A callback yields one or two requests or items: Scrapy starts CONCURRENT_ITEMS asyncio workers per
# callback output, so the default 100 costs more than the crawl itself.
CONCURRENT_ITEMS = 2

# Twisted's own epoll reactor: about twice the requests/s of the asyncio reactor on a busy machine
# (measured against the simulator); the crawler needs no asyncio library.
TWISTED_REACTOR = ("twisted.internet.epollreactor.EPollReactor" if sys.platform.startswith("linux")
                   else "twisted.internet.selectreactor.SelectReactor")
