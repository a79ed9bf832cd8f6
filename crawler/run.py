"""Programmatic entry of the crawler: options -> Scrapy settings -> one crawl -> raw/.

`run_crawl(CrawlOptions(...))` runs the spider in this process (it installs Twisted's reactor, so
call it once per process) and returns why the crawl closed and its statistics. The command
`pixelrec crawl` is a thin wrapper around it.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from schemas.errors import InputError
from pixelrec_data.net.addresses import is_loopback
from schemas.atomic import atomic_write_text
from schemas.keys import load_or_create_key
from schemas.protocol import ITEM_USER_CAP

from . import settings as defaults
from .pipelines import Anonymizer, output_dirs
from .state import Known, Worker, load_known, read_journal

MAX_REMOTE_RATE = 2.0          # requests/s: the most a non-loopback target may be asked for
MAX_REMOTE_CONCURRENCY = 2
# pace when --rate / --concurrency are not given: politeness for a real site (settings.py), full
# speed for a loopback target (the simulator on this machine has no one to be polite to)
REMOTE_PACE = (1.0, 1)
LOOPBACK_PACE = (0.0, 8)
PER_VIDEO_CAP = ITEM_USER_CAP  # users per video (the paper's cap)
MAX_DURATION_S = 600           # micro-videos only: shorter than 10 minutes


@dataclass
class CrawlOptions:
    base_url: str
    out: Path
    key_file: Path
    max_videos: int | None = None
    seed: int = 0
    rate: float | None = None         # None: LOOPBACK_PACE or REMOTE_PACE by the target
    concurrency: int | None = None
    redis_url: str | None = None
    join_danmaku: bool = False
    shard_mb: float = 64.0
    flush_seconds: float = 60.0
    cap: int = PER_VIDEO_CAP
    max_duration_s: int = MAX_DURATION_S
    idle_grace_s: float = 0.0
    cooldown_s: float | None = None


@dataclass
class Runtime:
    """Objects shared by the spider, middleware and pipeline of one crawl (not settings values)."""
    options: CrawlOptions
    worker: Worker
    known: Known
    anonymizer: Anonymizer
    claim: object = None
    probe: object = None
    progress: object = None

    def __deepcopy__(self, memo):  # Scrapy copies settings; this object is shared, not copied
        return self


@dataclass
class CrawlResult:
    reason: str
    stats: dict = field(default_factory=dict)

    @property
    def stopped_by_platform(self) -> bool:
        return self.reason.startswith("challenge")


def resolve_pace(options: CrawlOptions) -> None:
    """Fill rate / concurrency left unset with the target's default pace."""
    rate, concurrency = LOOPBACK_PACE if is_loopback(options.base_url) else REMOTE_PACE
    if options.rate is None:
        options.rate = rate
    if options.concurrency is None:
        options.concurrency = concurrency


def validate(options: CrawlOptions) -> None:
    parts = urlsplit(options.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"--base-url {options.base_url!r}: expected http(s)://host[:port]")
    local = is_loopback(options.base_url)
    resolve_pace(options)
    if options.rate < 0 or (options.rate == 0 and not local):
        raise InputError(f"--rate {options.rate}: must be > 0 (0, unlimited, only for a loopback "
                         f"target such as the simulator)")
    if not local and options.rate > MAX_REMOTE_RATE:
        raise InputError(f"--rate {options.rate}: at most {MAX_REMOTE_RATE} requests/s for a "
                         f"remote site")
    if options.concurrency < 1 or (not local and options.concurrency > MAX_REMOTE_CONCURRENCY):
        limit = "" if local else f" and at most {MAX_REMOTE_CONCURRENCY} for a remote site"
        raise InputError(f"--concurrency {options.concurrency}: must be >= 1{limit}")
    if options.max_videos is not None and options.max_videos < 1:
        raise InputError(f"--max-videos {options.max_videos}: must be >= 1")
    if options.shard_mb <= 0:
        raise InputError(f"--shard-mb {options.shard_mb}: must be > 0")
    out, key = Path(options.out).resolve(), Path(options.key_file).resolve()
    if out == key or out in key.parents:
        raise InputError(f"--key-file {options.key_file}: must live outside the output folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {options.out}: exists and is not a folder")


def build_settings(options: CrawlOptions, runtime: Runtime) -> dict:
    resolve_pace(options)
    local = is_loopback(options.base_url)
    values = {name: getattr(defaults, name) for name in dir(defaults) if name.isupper()}
    loopback = values.pop("LOOPBACK_OVERRIDES")
    if local:
        values.update(loopback)
    delay = 0.0 if options.rate == 0 else 1.0 / options.rate
    values.update({
        "DOWNLOAD_DELAY": delay,
        "CONCURRENT_REQUESTS": options.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": options.concurrency,
        "AUTOTHROTTLE_ENABLED": delay > 0,
        "AUTOTHROTTLE_START_DELAY": max(delay, 0.01),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(options.concurrency),
        "PIXELREC_SHARD_BYTES": int(options.shard_mb * 1024 * 1024),
        "PIXELREC_FLUSH_SECONDS": options.flush_seconds,
        "PIXELREC_RUNTIME": runtime,
    })
    if options.cooldown_s is not None:
        values["PIXELREC_COOLDOWN_S"] = options.cooldown_s
    elif local:  # the simulator blocks for about a second: no need to wait a minute
        values["PIXELREC_COOLDOWN_S"] = 0.25
        values["PIXELREC_MAX_COOLDOWN_S"] = 8.0
    if options.redis_url:
        namespace = redis_namespace(options)
        values.update({
            "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": True,
            "SCHEDULER_QUEUE_KEY": f"{namespace}:requests",
            "SCHEDULER_DUPEFILTER_KEY": f"{namespace}:dupefilter",
            "REDIS_URL": options.redis_url,
        })
    return values


def redis_namespace(options: CrawlOptions) -> str:
    """One crawl = one set of Redis keys: same target, seed and output folder."""
    ident = f"{options.base_url.rstrip('/')}|{options.seed}|{Path(options.out).resolve()}"
    return "pixelrec:" + hashlib.sha1(ident.encode()).hexdigest()[:12]


def redis_claim(options: CrawlOptions, worker: Worker, known: Known):
    """A cross-process 'who writes this video' guard (a resumed crawl may run a video twice)."""
    import redis

    try:
        server = redis.Redis.from_url(options.redis_url, socket_connect_timeout=5)
        server.ping()
    except (redis.RedisError, ValueError) as exc:
        raise InputError(f"--redis-url {options.redis_url}: cannot connect ({exc})") from None
    key = f"{redis_namespace(options)}:claims"
    live = worker.live_workers()
    for aid, owner in server.hgetall(key).items():  # claims of dead workers that never committed
        if int(aid) not in known.done and owner.decode() not in live:
            server.hdel(key, aid)

    def claim(aid: int) -> bool:
        return bool(server.hsetnx(key, aid, worker.name))
    return claim


def run_crawl(options: CrawlOptions, progress=None) -> CrawlResult:
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess

    from .spiders.bilibili import BilibiliSpider

    validate(options)
    out = Path(options.out)
    output_dirs(out)
    key = load_or_create_key(options.key_file)
    worker = Worker(out)
    try:
        known = load_known(worker.state_dir)
        worker.recover(known)
        claim = redis_claim(options, worker, known) if options.redis_url else None
        if options.redis_url and not options.idle_grace_s:
            options.idle_grace_s = 3.0
        runtime = Runtime(options, worker, known, Anonymizer(key, options.join_danmaku), claim,
                          progress=progress)
        process = CrawlerProcess(build_settings(options, runtime))
        crawler = process.create_crawler(BilibiliSpider)
        closed = {"reason": "unknown"}

        def on_closed(spider, reason):
            closed["reason"] = reason
        crawler.signals.connect(on_closed, signal=signals.spider_closed)  # held: signals are weak
        process.crawl(crawler)
        with _quiet_gc():
            process.start()
        stats = write_stats(out, worker, crawler.stats.get_stats(), closed["reason"], runtime)
        return CrawlResult(closed["reason"], stats)
    finally:
        worker.release()


@contextlib.contextmanager
def _quiet_gc():
    """Move the objects of start-up (modules, settings, the known state) out of the collector's
    reach: otherwise each full collection walks all of them again while the crawl allocates.

    Each decoded JSON page is a few thousand dicts and lists, freed by reference counting a moment
    later; at the default threshold (700) the collector runs several times per page for nothing.
    A larger first generation cut the crawler's CPU per request by about 6% (simulator bench)."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 1_000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def write_stats(out: Path, worker: Worker, scrapy_stats: dict, reason: str, runtime: Runtime) -> dict:
    """raw/crawl_stats.json: counters summed over every run of every worker, plus this run's.

    Each worker appends its runs to its own raw/state/runs-<worker>.jsonl (so processes sharing a
    crawl never overwrite each other's counts); crawl_stats.json is the sum, written atomically.
    """
    run = _run_counters(scrapy_stats)
    run["close_reason"] = reason
    probe = runtime.probe
    run["peak_requests_per_s"] = probe.peak_per_s if probe else 0
    run["active_s"] = (probe.last - probe.first) if probe and probe.first is not None else 0.0
    run["rate_limit_per_s"] = runtime.options.rate
    line = json.dumps({"worker": worker.name, **run}, sort_keys=True) + "\n"
    with open(worker.state_dir / f"runs-{worker.name}.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line)
    runs = [r for path in sorted(worker.state_dir.glob("runs-w*.jsonl")) for r in read_journal(path)]
    errors: dict = {}
    for past in runs:
        for kind, count in past["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    known = load_known(worker.state_dir)
    stats = {
        "runs": len(runs),
        "requests": sum(r["requests"] for r in runs),
        "retries": sum(r["retries"] for r in runs),
        "errors": errors,
        "videos": len(known.kept),
        "videos_rejected": len(known.done - known.kept),
        "videos_pending": len(known.pending_videos()),
        "events": known.events,
        "close_reason": reason,
        "last_run": run,
    }
    atomic_write_text(out / "crawl_stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    return stats


def _run_counters(s: dict) -> dict:
    prefix = "pixelrec/errors/"
    return {
        "requests": int(s.get("downloader/request_count", 0)),
        "robots_txt_requests": int(s.get("robotstxt/request_count", 0)),
        "retries": int(s.get("pixelrec/retries/count", 0)),
        "cooldowns": int(s.get("pixelrec/cooldowns", 0)),
        "gave_up": int(s.get("pixelrec/gave_up", 0)),
        "errors": {k[len(prefix):]: int(v) for k, v in s.items() if k.startswith(prefix)},
        "rejected": {k.split("/", 2)[2]: int(v) for k, v in s.items()
                     if k.startswith("pixelrec/rejected/")},
        "failed": {k.split("/", 2)[2]: int(v) for k, v in s.items()
                   if k.startswith("pixelrec/failed/")},
        "elapsed_s": float(s.get("elapsed_time_seconds", 0.0)),
    }
