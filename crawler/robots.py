"""robots.txt decisions, remembered per path when the rules allow it (ROBOTSTXT_PARSER).

Scrapy asks the parser about every request; Protego re-quotes and matches the whole URL each time,
about 5% of the crawler's CPU against the simulator. The crawler's URLs differ only in their
query strings (aid, pn, ...), so the answer is remembered per URL-without-query, but only when no
Allow/Disallow rule of the file contains '?', '*' or '$': a plain rule is a prefix of the path, it
cannot reach into the query (the character after the path is '?', which such a rule lacks), so
the decision depends on the path alone. Any other file is asked about every URL, as before.
"""
from __future__ import annotations

import re

from scrapy.robotstxt import ProtegoRobotParser, decode_robotstxt

_RULE = re.compile(r"^\s*(allow|disallow)\s*:(.*)$", re.IGNORECASE | re.MULTILINE)
MAX_REMEMBERED = 4096


def path_only_rules(text: str) -> bool:
    """True when every Allow/Disallow value is a plain path prefix (no '?', '*' or '$')."""
    for _, value in _RULE.findall(text):
        value = value.split("#", 1)[0].strip()
        if any(ch in value for ch in "?*$"):
            return False
    return True


class CachingRobotParser(ProtegoRobotParser):
    def __init__(self, robotstxt_body: bytes, spider=None):
        super().__init__(robotstxt_body, spider)
        self.by_path = path_only_rules(decode_robotstxt(robotstxt_body, spider))
        self.answers: dict = {}

    def allowed(self, url, user_agent) -> bool:
        if not self.by_path:
            return super().allowed(url, user_agent)
        if isinstance(url, bytes):
            url = url.decode("utf-8", "replace")
        key = (url.split("?", 1)[0].split("#", 1)[0], user_agent)
        answer = self.answers.get(key)
        if answer is None:
            if len(self.answers) >= MAX_REMEMBERED:
                self.answers.clear()
            answer = self.answers[key] = super().allowed(url, user_agent)
        return answer
