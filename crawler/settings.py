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
ROBOTSTXT_PARSER = "crawler.robots.CachingRobotParser"  # Protego, answers remembered per path

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
PIXELREC_COUNT_DOWNLOADS = False   # True: our middleware keeps downloader/request_count etc.

LOG_LEVEL = "WARNING"
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"

# A callback yields one or two requests or items: Scrapy starts CONCURRENT_ITEMS asyncio workers per
# callback output, so the default 100 costs more than the crawl itself.
CONCURRENT_ITEMS = 2

# Scrapy checks every callback for a generator with `return value` by parsing its source; its cache
# is keyed by the bound method, a new object per response, so it parses on every response.
WARN_ON_GENERATOR_RETURN_VALUE = False

# Twisted's own epoll reactor: about twice the requests/s of the asyncio reactor on a busy machine
# (measured against the simulator); the crawler needs no asyncio library.
TWISTED_REACTOR = ("twisted.internet.epollreactor.EPollReactor" if sys.platform.startswith("linux")
                   else "twisted.internet.selectreactor.SelectReactor")

# A loopback target (the simulator) gets these on top: the components below only cost time there
# (no redirects, no offsite links, no referer to send, no memory watchdog needed for a test run),
# and per-request DEBUG log records are never built. A remote target keeps every default above.
LOOPBACK_OVERRIDES = {
    "DOWNLOADER_MIDDLEWARES": {
        **DOWNLOADER_MIDDLEWARES,
        "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
        "scrapy.downloadermiddlewares.downloadtimeout.DownloadTimeoutMiddleware": None,
        "scrapy.downloadermiddlewares.defaultheaders.DefaultHeadersMiddleware": None,
        "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
        # measures every request's and response's size; PlatformCodeMiddleware counts them instead
        "scrapy.downloadermiddlewares.stats.DownloaderStats": None,
    },
    "SPIDER_MIDDLEWARES": {
        **SPIDER_MIDDLEWARES,
        "scrapy.spidermiddlewares.referer.RefererMiddleware": None,
        "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware": None,
        "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware": None,
    },
    "EXTENSIONS": {
        "scrapy.extensions.logstats.LogStats": None,
        "scrapy.extensions.memusage.MemoryUsage": None,
        "scrapy.extensions.memdebug.MemoryDebugger": None,
        "scrapy.extensions.logcount.LogCount": None,
        "scrapy.extensions.spiderstate.SpiderState": None,
        "scrapy.extensions.feedexport.FeedExporter": None,
        "scrapy.extensions.closespider.CloseSpider": None,
    },
    "LOG_FORMATTER": "crawler.middlewares.QuietLogFormatter",
    # a lean keep-alive HTTP/1.1 client instead of twisted.web's Agent (crawler/transport/keepalive.py)
    "DOWNLOAD_HANDLERS": {"http": "crawler.transport.keepalive.KeepAliveHandler"},
    # one domain: the per-downloader-slot queue only adds bookkeeping per request
    "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.ScrapyPriorityQueue",
    "PIXELREC_COUNT_DOWNLOADS": True,
}
