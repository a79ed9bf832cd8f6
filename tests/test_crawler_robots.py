"""crawler/robots.py: remembered robots.txt answers equal Protego's own, URL by URL."""
from scrapy.robotstxt import ProtegoRobotParser

from crawler.robots import CachingRobotParser, path_only_rules

PLAIN = b"""User-agent: *
Disallow: /x/internal
Allow: /x/v2/reply
Disallow: /x/v2   # comment
User-agent: BadBot
Disallow: /
"""
PATTERNS = PLAIN + b"User-agent: *\nDisallow: /x/web-interface/view?aid=7\nDisallow: /*.so$\n"
URLS = ["http://h/x/v2/reply?type=1&oid=5", "http://h/x/v2/reply/reply?root=1", "http://h/x/v2/x",
        "http://h/x/internal/a?b=1", "http://h/x/web-interface/view?aid=7",
        "http://h/x/web-interface/view?aid=8", "http://h/x/v1/dm/list.so",
        "http://h/x/v1/dm/list.so?oid=1", "http://h/", "http://h/x/v2?#frag"]
AGENTS = ["PixelRecCrawler/0.1", "BadBot"]


def test_path_only_rules_tell_plain_prefixes_from_patterns():
    assert path_only_rules(PLAIN.decode())
    assert not path_only_rules(PATTERNS.decode())
    assert not path_only_rules("User-agent: *\nAllow: /a?b\n")


def test_remembered_answers_equal_protego_on_every_url_asked_twice():
    for body, by_path in ((PLAIN, True), (PATTERNS, False)):
        cached, plain = CachingRobotParser(body, None), ProtegoRobotParser(body, None)
        assert cached.by_path is by_path
        answers = [(url, agent, plain.allowed(url, agent)) for url in URLS for agent in AGENTS]
        assert {a for _, _, a in answers} == {True, False}
        for _ in range(2):
            assert [(u, g, cached.allowed(u, g)) for u, g, _ in answers] == answers
        assert bool(cached.answers) is by_path
