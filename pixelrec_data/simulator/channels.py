"""Channel names -> region ids (rid) of the dynamic/region listing.

rid 0 is the main channel: its listing holds every video of the world (so every video is reachable
from the listings); the other rids list their own channel's videos. The world's catalog fixes the
rids (synthetic.catalog.CHANNEL_RID). A name the catalog does not know keeps the rid of the platform
zone of that name (MAIN_ZONES: the 22 old-style main zones, by Chinese name or code) or gets the
remaining zone rids in sorted-name order, then ids from OVERFLOW_BASE on.
"""
from __future__ import annotations

from pixelrec_data.synthetic.catalog import CHANNEL_RID as CATALOG_RIDS

MAIN_ZONES = [  # (rid, code, name)
    (1, "douga", "动画"), (13, "anime", "番剧"), (167, "guochuang", "国创"), (3, "music", "音乐"),
    (129, "dance", "舞蹈"), (4, "game", "游戏"), (36, "knowledge", "知识"), (188, "tech", "科技"),
    (234, "sports", "运动"), (223, "car", "汽车"), (160, "life", "生活"), (211, "food", "美食"),
    (217, "animal", "动物圈"), (119, "kichiku", "鬼畜"), (155, "fashion", "时尚"),
    (202, "information", "资讯"), (165, "ad", "广告"), (5, "ent", "娱乐"), (181, "cinephile", "影视"),
    (177, "documentary", "纪录片"), (23, "movie", "电影"), (11, "tv", "电视剧"),
]
MAIN_RIDS = [rid for rid, _, _ in MAIN_ZONES]
OVERFLOW_BASE = 1000
MAIN_RID = 0


def channel_rids(channels) -> dict[str, int]:
    """A deterministic channel -> rid map for the given channel names (order does not matter)."""
    by_name = {}
    for rid, code, name in MAIN_ZONES:
        by_name[name] = rid
        by_name[code] = rid
    names = sorted(set(channels))
    mapping = {name: CATALOG_RIDS[name] for name in names if name in CATALOG_RIDS}
    for name in names:
        rid = by_name.get(name) or by_name.get(name.lower())
        if name not in mapping and rid is not None and rid not in mapping.values():
            mapping[name] = rid
    free = [rid for rid in MAIN_RIDS if rid not in mapping.values()]
    overflow = OVERFLOW_BASE
    for name in names:
        if name in mapping:
            continue
        if free:
            mapping[name] = free.pop(0)
        else:
            mapping[name] = overflow
            overflow += 1
    return mapping
