"""The crawl's pace when --rate / --concurrency are not given: full speed for a loopback target
(the simulator), politeness for a remote site; explicit values win and are still checked."""
import pytest

from crawler.run import LOOPBACK_PACE, REMOTE_PACE, CrawlOptions, validate
from schemas.errors import InputError


def options(url, tmp_path, **kw):
    return CrawlOptions(base_url=url, out=tmp_path / "raw", key_file=tmp_path / "key", **kw)


@pytest.mark.parametrize("url,pace", [("http://127.0.0.1:8800", LOOPBACK_PACE),
                                      ("http://localhost:9", LOOPBACK_PACE),
                                      ("https://example.org", REMOTE_PACE)])
def test_default_pace_follows_the_target(url, pace, tmp_path):
    opts = options(url, tmp_path)
    validate(opts)
    assert (opts.rate, opts.concurrency) == pace


def test_explicit_pace_wins_and_remote_limits_hold(tmp_path):
    opts = options("http://127.0.0.1:8800", tmp_path, rate=5.0, concurrency=2)
    validate(opts)
    assert (opts.rate, opts.concurrency) == (5.0, 2)
    with pytest.raises(InputError, match="--rate 0"):
        validate(options("https://example.org", tmp_path, rate=0))
    with pytest.raises(InputError, match="--concurrency 8"):
        validate(options("https://example.org", tmp_path, concurrency=8))
