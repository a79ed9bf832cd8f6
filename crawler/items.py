"""The items the spider hands to the pipelines.

No item ever carries a platform user id: commenters and danmaku senders are already `user_key`s
(keyed hashes) when they reach an item, and no item carries comment or danmaku text.
"""
from __future__ import annotations

import scrapy


class ListingPage(scrapy.Item):
    """One page of a channel listing: which micro-videos it showed (recorded for resume)."""
    rid = scrapy.Field()
    pn = scrapy.Field()
    count = scrapy.Field()       # the listing's total count (data.page.count)
    found = scrapy.Field()       # aids of the listed videos short enough to keep


class VideoDone(scrapy.Item):
    """A video whose crawl is finished: kept (row + events) or rejected (row is None)."""
    aid = scrapy.Field()
    row = scrapy.Field()         # dict of raw/videos columns, or None when rejected
    events = scrapy.Field()      # [(user_key, timestamp, source)], at most the per-video cap
    related = scrapy.Field()     # aids picked by the related-video walk (micro-videos only)
    reason = scrapy.Field()      # why it was rejected ('' when kept)
