"""The videos of the synthetic world: topics, cover features, popularity, ids and metadata.

Each video has a latent topic; its cover features are drawn around the topic's prototype (so a
cover tells its topic) and its popularity is log-normal over videos (the shape of the paper's
Figure 6a: at Pixel200K scale the top item gets ~14x the mean, the coldest ~1), slightly raised for
saturated covers. The table's counts are filled in after the events exist (VideoStats), so
comment_number >= comment events >= commenters and barrage_number >= danmaku events.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from schemas.tables import RAW_VIDEOS
from . import catalog as cat
from .rng import BASE58, encode_fixed, feistel, hex_digest, normal, uniform

GUIDE_CELLS_PER_VIDEO = 4


@dataclass
class VideoPlan:
    """Everything about the videos that does not depend on the events."""
    topic: np.ndarray          # int32 per video
    visual: np.ndarray         # float32 [n, len(VISUAL_FEATURES)]
    weight: np.ndarray         # float64 popularity weight per video
    duration_s: np.ndarray     # int32
    removed: np.ndarray        # bool
    comments_closed: np.ndarray  # bool
    channel: np.ndarray        # int16 index into catalog.CHANNELS
    tag: np.ndarray            # int16 index into catalog.TAGS
    aid: np.ndarray            # int64, unique
    cid: np.ndarray            # int64, unique
    bvid: np.ndarray           # str "BV1" + 9 base58
    cover_hash: np.ndarray     # str, 40 hex
    related: np.ndarray        # int32 [n, R]: related videos (mostly same topic, by popularity)
    by_topic: np.ndarray       # int64: video indices sorted by topic
    pick_cdf: np.ndarray       # float64: topic + within-topic cumulative popularity, by_topic order
    topic_cdf: np.ndarray      # float64 [topics]: cumulative share of popularity per topic
    hot: np.ndarray            # int64: videos forced over the user cap (knob hot_videos)
    guide: np.ndarray = None   # int64: pick_cdf index of each grid cell start (fast lookups)
    guide_scale: float = 1.0   # grid cells per unit of pick_cdf

    @property
    def n(self) -> int:
        return int(self.topic.size)

    @property
    def micro(self) -> np.ndarray:
        return self.duration_s < 600


@dataclass
class VideoStats:
    """Per-video aggregates of the world's events (all users)."""
    comment_events: np.ndarray  # int64
    danmaku_events: np.ndarray  # int64
    first_ts: np.ndarray        # int64, INT64_MAX where the video has no event

    @classmethod
    def empty(cls, n: int) -> "VideoStats":
        return cls(np.zeros(n, np.int64), np.zeros(n, np.int64),
                   np.full(n, np.iinfo(np.int64).max, np.int64))

    def add(self, video: np.ndarray, timestamp: np.ndarray, danmaku: np.ndarray) -> None:
        n = self.comment_events.size
        self.comment_events += np.bincount(video[~danmaku], minlength=n)
        self.danmaku_events += np.bincount(video[danmaku], minlength=n)
        np.minimum.at(self.first_ts, video, timestamp)


def plan_videos(seed: int, n: int, p) -> VideoPlan:
    """Draw the videos of a world of `n` videos under parameters `p` (synthetic.WorldParams)."""
    idx = np.arange(n, dtype=np.int64)
    topic = _draw_topics(seed, idx, p.topics)
    visual = _draw_visual(seed, idx, topic, p.topics)
    weight = np.exp(p.popularity_sigma * normal(seed, "pop", idx)
                    + p.appeal_strength * (visual[:, 1] - 0.5))
    long_video = uniform(seed, "long", idx) < p.long_fraction
    micro_dur = np.clip(np.exp(np.log(150) + 0.8 * normal(seed, "dur", idx)), 5, 599)
    long_dur = 600 + np.exp(np.log(900) + 0.9 * normal(seed, "dur", idx)) % 7200
    duration = np.where(long_video, long_dur, micro_dur).astype(np.int32)
    removed = uniform(seed, "removed", idx) < p.removed_fraction
    closed = (uniform(seed, "closed", idx) < p.closed_fraction) & ~removed
    hot = _pick_hot(weight, duration, p.hot_videos)
    removed[hot] = False
    closed[hot] = False
    channel, tag = _draw_channel_tag(seed, idx, topic, p)
    by_topic = np.argsort(topic, kind="stable")
    pick_cdf, topic_cdf = _pick_tables(topic, weight, by_topic, p.topics)
    plan = VideoPlan(
        topic=topic, visual=visual, weight=weight, duration_s=duration, removed=removed,
        comments_closed=closed, channel=channel, tag=tag,
        aid=(10_000_000 + feistel(idx, 30, seed, "aid")).astype(np.int64),
        cid=(100_000_000 + feistel(idx, 32, seed, "cid")).astype(np.int64),
        bvid=np.char.add("BV1", encode_fixed(feistel(idx, 52, seed, "bv"), BASE58, 9)),
        cover_hash=hex_digest(seed, "cover", idx, 40),
        related=np.zeros((n, 0), np.int32), by_topic=by_topic, pick_cdf=pick_cdf,
        topic_cdf=topic_cdf, hot=hot)
    plan.guide_scale = GUIDE_CELLS_PER_VIDEO * n / p.topics
    edges = np.arange(int(GUIDE_CELLS_PER_VIDEO * n) + 2) / plan.guide_scale
    plan.guide = np.minimum(np.searchsorted(pick_cdf, edges, side="left"), n - 1)
    plan.related = _draw_related(seed, plan, p.related_per_video)
    return plan


def _draw_topics(seed: int, idx: np.ndarray, topics: int) -> np.ndarray:
    t = np.arange(topics)
    # Gamma(2) shares: topics of uneven size, none empty in expectation
    share = -np.log(uniform(seed, "topic-share", t)) - np.log(uniform(seed, "topic-share/2", t))
    cdf = np.cumsum(share) / share.sum()
    return np.minimum(np.searchsorted(cdf, uniform(seed, "topic", idx)), topics - 1).astype(np.int32)


def _draw_visual(seed: int, idx: np.ndarray, topic: np.ndarray, topics: int) -> np.ndarray:
    """Cover features around each topic's prototype (see catalog.VISUAL_FEATURES)."""
    t = np.arange(topics)
    n_shapes, n_layouts = len(cat.SHAPE_KINDS), len(cat.LAYOUTS)
    proto_hue = (t * 0.6180339887 + uniform(seed, "proto", 0)[()]) % 1.0
    proto_sat = 0.35 + 0.55 * uniform(seed, "proto/1", t)
    proto_bri = 0.35 + 0.55 * uniform(seed, "proto/2", t)
    proto_shape = t % n_shapes
    proto_layout = (t // n_shapes) % n_layouts
    proto_tex = uniform(seed, "proto/3", t)
    shape = np.where(uniform(seed, "shape-alt", idx) < 0.1,
                     (uniform(seed, "shape", idx) * n_shapes).astype(np.int64), proto_shape[topic])
    layout = np.where(uniform(seed, "layout-alt", idx) < 0.1,
                      (uniform(seed, "layout", idx) * n_layouts).astype(np.int64), proto_layout[topic])
    columns = [
        (proto_hue[topic] + 0.025 * normal(seed, "hue", idx)) % 1.0,
        np.clip(proto_sat[topic] + 0.12 * normal(seed, "sat", idx), 0, 1),
        np.clip(proto_bri[topic] + 0.12 * normal(seed, "bri", idx), 0, 1),
        shape / (n_shapes - 1),
        0.25 + 0.65 * uniform(seed, "size", idx),
        np.clip(proto_tex[topic] + 0.08 * normal(seed, "tex", idx), 0, 1),
        layout / (n_layouts - 1),
        uniform(seed, "accent", idx),
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def _pick_hot(weight, duration, count: int) -> np.ndarray:
    """The `count` most popular micro-videos: they get a forced audience above the cap."""
    if count <= 0:
        return np.zeros(0, np.int64)
    eligible = np.flatnonzero(duration < 600)
    order = eligible[np.argsort(-weight[eligible], kind="stable")]
    return np.sort(order[:count]).astype(np.int64)


def _draw_channel_tag(seed: int, idx: np.ndarray, topic: np.ndarray, p):
    verticals = len(cat.CHANNELS) - 1
    home = 1 + (topic % verticals)
    u = uniform(seed, "channel", idx)
    other = 1 + (uniform(seed, "channel-alt", idx) * verticals).astype(np.int64)
    channel = np.where(u < p.main_channel_fraction, 0,
                       np.where(u < p.main_channel_fraction + 0.1, other, home))
    start = np.asarray(cat.CHANNEL_TAG_START)[channel]
    count = np.asarray(cat.CHANNEL_TAG_COUNT)[channel]
    # Zipf-like use of a channel's tags: its first tag is the most common
    r = uniform(seed, "tag", idx)
    offset = np.minimum((count * r ** 1.3).astype(np.int64), count - 1)
    return channel.astype(np.int16), (start + offset).astype(np.int16)


def _pick_tables(topic, weight, by_topic, topics: int):
    """Monotone tables for choosing a topic, then a video inside it, by popularity."""
    topic_mass = np.bincount(topic, weights=weight, minlength=topics)
    topic_cdf = np.cumsum(topic_mass) / topic_mass.sum()
    sorted_topic = topic[by_topic]
    csum = np.cumsum(weight[by_topic])
    before = np.concatenate([[0.0], np.cumsum(topic_mass)])[sorted_topic]
    frac = (csum - before) / topic_mass[sorted_topic]
    ends = np.r_[sorted_topic[1:] != sorted_topic[:-1], True]
    frac[ends] = 1.0  # exact 1.0 at each topic's end, so rounding never falls off it
    return sorted_topic + frac, topic_cdf


def pick_in_topic(plan: VideoPlan, topic: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A video of `topic` chosen by popularity, for uniforms `u` in (0, 1).

    Equals searchsorted(pick_cdf, topic + u) but runs a few vectorised bisection steps inside the
    guide cell of each query instead of a full binary search over all videos (5x faster at 400K).
    """
    x = topic + u
    cell = np.minimum((x * plan.guide_scale).astype(np.int64), plan.guide.size - 2)
    lo, hi = plan.guide[cell], plan.guide[cell + 1]
    steps = int(np.ceil(np.log2(int((hi - lo).max(initial=0)) + 1)))
    for _ in range(steps):
        mid = (lo + hi) >> 1
        right = plan.pick_cdf[mid] < x
        lo = np.where(right, mid + 1, lo)
        hi = np.where(right, hi, mid)
    return plan.by_topic[lo]


def pick_topic(plan: VideoPlan, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(plan.topic_cdf, u), plan.topic_cdf.size - 1).astype(np.int32)


def _draw_related(seed: int, plan: VideoPlan, per_video: int) -> np.ndarray:
    n = plan.n
    counter = np.arange(n * per_video, dtype=np.int64)
    src = counter // per_video
    same = uniform(seed, "rel-same", counter) < 0.85
    topic = np.where(same, plan.topic[src], pick_topic(plan, uniform(seed, "rel-topic", counter)))
    rel = pick_in_topic(plan, topic, uniform(seed, "rel-pick", counter))
    self_hit = rel == src
    if self_hit.any():  # a video is not related to itself: take a popular video of the world instead
        alt = pick_in_topic(plan, pick_topic(plan, uniform(seed, "rel-fix", counter[self_hit])),
                            uniform(seed, "rel-fix/1", counter[self_hit]))
        rel[self_hit] = np.where(alt == src[self_hit], (src[self_hit] + 1) % n, alt)
    return rel.reshape(n, per_video).astype(np.int32)


def videos_table(seed: int, plan: VideoPlan, stats: VideoStats, p) -> pa.Table:
    """The raw_videos columns for every video (cover_url = the 40-hex hash, crawled_at = 0)."""
    idx = np.arange(plan.n, dtype=np.int64)
    n_comment, n_dm = stats.comment_events, stats.danmaku_events
    # nested replies and comments from before the crawl window: the count exceeds the events seen
    comment_number = n_comment + np.floor(n_comment * 0.3 * uniform(seed, "extra-comment", idx)
                                          + 3 * uniform(seed, "extra-comment/1", idx))
    barrage_number = n_dm + np.floor(n_dm * 0.5 * uniform(seed, "extra-dm", idx)
                                     + 5 * uniform(seed, "extra-dm/1", idx))
    views = (n_comment + n_dm + 1) * np.exp(np.log(60) + 0.8 * normal(seed, "view", idx)) + 10
    likes = views * np.exp(np.log(0.04) + 0.5 * normal(seed, "like", idx))
    first = stats.first_ts
    has_events = first < np.iinfo(np.int64).max
    delay = np.clip(np.exp(np.log(2 * 86400) + 1.2 * normal(seed, "release", idx)), 60, 180 * 86400)
    free = p.start_time - 365 * 86400 + uniform(seed, "release-free", idx) * (
        p.end_time - p.start_time + 365 * 86400)
    release = np.where(has_events, first - delay, free).astype(np.int64)
    titles, descriptions = _texts(seed, plan)
    columns = {
        "platform_video_id": plan.bvid,
        "aid": plan.aid,
        "title": titles,
        "description": descriptions,
        "tag": np.asarray(cat.TAGS, dtype=object)[plan.tag],
        "channel": np.asarray(cat.CHANNELS, dtype=object)[plan.channel],
        "cover_url": plan.cover_hash,
        "view_number": views.astype(np.int64),
        "comment_number": comment_number.astype(np.int64),
        "thumbup_number": likes.astype(np.int64),
        "share_number": (likes * 0.15 * uniform(seed, "share", idx)).astype(np.int64),
        "coin_number": (likes * 0.5 * uniform(seed, "coin", idx)).astype(np.int64),
        "favorite_number": (likes * 0.6 * uniform(seed, "fav", idx)).astype(np.int64),
        "barrage_number": barrage_number.astype(np.int64),
        "release_time": release,
        "duration_s": plan.duration_s,
        "crawled_at": np.zeros(plan.n, np.int64),
    }
    return pa.table({k: pa.array(v, type=RAW_VIDEOS.field(k).type) for k, v in columns.items()},
                    schema=RAW_VIDEOS)


def _texts(seed: int, plan: VideoPlan):
    """Titles and descriptions (a loop per video is fine: 408K videos at full scale)."""
    idx = np.arange(plan.n, dtype=np.int64)
    adj = (uniform(seed, "title", idx) * len(cat.TITLE_ADJECTIVES)).astype(np.int64)
    noun = (uniform(seed, "title/1", idx) * len(cat.TITLE_NOUNS)).astype(np.int64)
    episode = (1 + 200 * uniform(seed, "title/2", idx) ** 3).astype(np.int64)
    kind = uniform(seed, "desc", idx)
    tags, adjs, nouns = cat.TAGS, cat.TITLE_ADJECTIVES, cat.TITLE_NOUNS
    titles, descriptions = [], []
    for t, a, b, e, k in zip(plan.tag.tolist(), adj.tolist(), noun.tolist(), episode.tolist(), kind.tolist()):
        title = f"【{tags[t]}】{adjs[a]}{nouns[b]} 第{e}期"
        titles.append(title)
        if k < 0.3:
            descriptions.append("")
        elif k < 0.6:
            descriptions.append(f"{adjs[a]}{nouns[b]}，喜欢的话点个赞吧")
        else:  # multi-line descriptions, with a comma, as real ones have
            descriptions.append(f"{title}\n{adjs[(a + 3) % len(adjs)]}{nouns[b]}, 第{e}期\n#{tags[t]}#")
    return titles, descriptions
