"""The users and events of the synthetic world, generated for a range of users at a time.

A user's history is a sequence of choices cut into segments (a new segment with probability
1/segment_mean per event): each segment picks a topic (mostly one of the user's three favourites,
else a topic by popularity) and each choice in it picks a video of that topic by popularity; some
choices instead follow a related video of the previous choice. So popularity dominates, while
sequences (topic runs, related links) and covers (topics) carry signal. Session lengths follow the
paper's Figure 6b: most users have 1-4 events, engaged users a log-normal around 14 with a heavy
tail. Everything is computed with whole-array numpy operations over all events of the range, using
counter-based random numbers (rng.py), so chunking never changes a value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rng import feistel, normal, uniform, uniform_pair
from .videos import VideoPlan, pick_in_topic, pick_topic

LIGHT_LENGTHS = np.array([1, 2, 3, 4])
LIGHT_CDF = np.cumsum([0.55, 0.22, 0.13, 0.10])
FAVOURITE_CDF = np.cumsum([0.6, 0.3, 0.1])
MAX_SESSION = 5000


@dataclass
class SessionShape:
    light_share: float   # users with 1-4 choices
    scale: float         # multiplier of the engaged users' lengths


def engaged_mean(scale: float) -> float:
    """Mean length of an engaged user (deterministic quadrature over the normal)."""
    z = np.linspace(-7, 7, 20001)
    dens = np.exp(-z * z / 2)
    dens /= dens.sum()
    body = np.maximum(5, np.rint(scale * np.exp(np.log(14.5) + 0.5 * z)))
    tail = np.maximum(5, np.rint(scale * np.exp(np.log(30.0) + 0.6 * z)))
    return float(0.95 * (body * dens).sum() + 0.05 * (tail * dens).sum())


def session_shape(mean: float) -> SessionShape:
    """Light-user share and engaged scale giving `mean` choices per user (paper: 6.6, 70% light)."""
    light_mean = float((LIGHT_LENGTHS * np.diff(np.r_[0, LIGHT_CDF])).sum())
    base = engaged_mean(1.0)
    share = (base - mean) / (base - light_mean)
    if 0.05 <= share <= 0.85:
        return SessionShape(share, 1.0)
    share = min(max(share, 0.05), 0.85)
    scale = 1.0
    for _ in range(30):  # the floor at 5 makes the mean non-linear in the scale: iterate
        want = (mean - share * light_mean) / (1 - share)
        scale *= want / engaged_mean(scale)
    return SessionShape(share, scale)


def user_mids(seed: int, users: np.ndarray) -> np.ndarray:
    """Platform-like user ids: a keyed permutation of the user index into [1, 2**32]."""
    return (feistel(users, 32, seed, "mid") + np.uint64(1)).astype(np.int64)


@dataclass
class UserDraws:
    length: np.ndarray       # choices per user
    favourites: np.ndarray   # [n, 3] topics
    fav_rate: np.ndarray     # share of segments in favourite topics
    dm_rate: np.ndarray      # share of events sent as danmaku


def draw_users(seed: int, users: np.ndarray, plan: VideoPlan, shape: SessionShape, p) -> UserDraws:
    u_light, u_light_len = uniform_pair(seed, "light", users)
    light = u_light < shape.light_share
    light_len = LIGHT_LENGTHS[np.minimum(np.searchsorted(LIGHT_CDF, u_light_len), 3)]
    u_tail, u_fav_rate = uniform_pair(seed, "tail", users)
    tail = u_tail < 0.05
    z = normal(seed, "len", users)
    log_len = np.where(tail, np.log(30.0) + 0.6 * z, np.log(14.5) + 0.5 * z) + np.log(shape.scale)
    engaged_len = np.clip(np.rint(np.exp(log_len)), 5, MAX_SESSION)
    favourites = np.stack([pick_topic(plan, uniform(seed, f"fav-topic/{k}", users))
                           for k in range(3)], axis=1)
    u_dm_user, u_dm_rate = uniform_pair(seed, "dm-user", users)
    no_danmaku = u_dm_user < 0.5  # half the users never send danmaku
    return UserDraws(
        length=np.where(light, light_len, engaged_len).astype(np.int64),
        favourites=favourites,
        fav_rate=0.55 + 0.4 * u_fav_rate,
        dm_rate=np.where(no_danmaku, 0.0, np.minimum(1.0, 4 * p.danmaku_share * u_dm_rate)),
    )


@dataclass
class Events:
    """Events of a range of users; `user` is the global user index."""
    user: np.ndarray        # int64
    video: np.ndarray       # int32
    timestamp: np.ndarray   # int64 unix s
    danmaku: np.ndarray     # bool

    def __len__(self) -> int:
        return int(self.user.size)


def generate_events(seed: int, first_user: int, n_users: int, first_event: int,
                    plan: VideoPlan, shape: SessionShape, p) -> tuple[Events, int]:
    """Events of users [first_user, first_user + n_users); returns them and the number of choices.

    `first_event` is the number of choices of all users before `first_user` (the event counter).
    """
    users = np.arange(first_user, first_user + n_users, dtype=np.int64)
    draws = draw_users(seed, users, plan, shape, p)
    length = draws.length
    n = int(length.sum())
    local = np.repeat(np.arange(n_users, dtype=np.int64), length)
    starts = np.cumsum(length) - length
    pos = np.arange(n, dtype=np.int64) - starts[local]
    g = first_event + np.arange(n, dtype=np.int64)
    video, new_segment = _choose_videos(seed, g, local, pos, draws, plan, p)
    timestamp = _timestamps(seed, users, g, local, starts, new_segment, pos, p)
    u_source, u_repeat = uniform_pair(seed, "source", g)
    danmaku = u_source < draws.dm_rate[local]
    base = Events(users[local], video.astype(np.int32), timestamp, danmaku)
    parts = [base, _repeats(seed, g, u_repeat, base, p)]
    if plan.hot.size:
        parts.append(_hot_events(seed, users, starts, base, draws, plan, p))
    return _concat(parts), n


def _choose_videos(seed, g, local, pos, draws: UserDraws, plan: VideoPlan, p):
    u_break, u_pick = uniform_pair(seed, "break", g)
    new_segment = (pos == 0) | (u_break < 1.0 / p.segment_mean)
    seg_first = np.flatnonzero(new_segment)
    seg_id = np.cumsum(new_segment) - 1
    gs, us = g[seg_first], local[seg_first]
    u_fav, u_which = uniform_pair(seed, "seg-fav", gs)
    in_fav = u_fav < draws.fav_rate[us]
    which = np.minimum(np.searchsorted(FAVOURITE_CDF, u_which), 2)
    seg_topic = np.where(in_fav, draws.favourites[us, which], pick_topic(plan, uniform(seed, "seg-topic", gs)))
    video = pick_in_topic(plan, seg_topic[seg_id], u_pick)
    # follow a related video of the previous choice; a follow is never followed, so the previous
    # choice is always a popularity pick and this stays one vectorised step
    cand = (uniform(seed, "follow", g) < p.follow_rate) & (pos > 0)
    follow = cand & ~np.r_[False, cand[:-1]]
    fi = np.flatnonzero(follow)
    r = (uniform(seed, "follow-which", g[fi]) * plan.related.shape[1]).astype(np.int64)
    video[fi] = plan.related[video[fi - 1], r]
    return video, new_segment


def _timestamps(seed, users, g, local, starts, new_segment, pos, p):
    """Seconds: short gaps inside a segment (ties included), long gaps between segments."""
    tie = uniform(seed, "tie", g) < p.tie_rate
    z = normal(seed, "gap", g)  # one draw per event: it is either an inside or a between gap
    log_gap = np.where(new_segment, np.log(8 * 3600.0) + 1.5 * z, np.log(90.0) + 1.0 * z)
    gap = np.floor(np.minimum(np.exp(log_gap), 60 * 86400)) + 1
    gap[tie & ~new_segment] = 0
    gap[pos == 0] = 0
    gap = gap.astype(np.int64)
    csum = np.cumsum(gap)
    within = csum - csum[starts][local]
    span = within[np.r_[starts[1:] - 1, g.size - 1]] if g.size else np.zeros(0, np.int64)
    window = p.end_time - p.start_time
    start = p.start_time + np.floor(uniform(seed, "start", users) * np.maximum(window - span, 0))
    return start.astype(np.int64)[local] + within


def _repeats(seed, g, u_repeat, base: Events, p) -> Events:
    """Some events are repeated later by the same user on the same video (repeat comments)."""
    rep = np.flatnonzero(u_repeat < p.repeat_rate)
    gr = g[rep]
    danmaku = base.danmaku[rep] ^ (uniform(seed, "repeat-src", gr) < 0.3)
    z = normal(seed, "repeat-gap", gr)
    # bullet comments come in bursts while watching (seconds); a second comment comes later
    log_gap = np.where(danmaku, np.log(20.0) + 1.0 * z, np.log(600.0) + 1.5 * z)
    gap = np.floor(np.minimum(np.exp(log_gap), 30 * 86400)).astype(np.int64)
    return Events(base.user[rep], base.video[rep], base.timestamp[rep] + gap, danmaku)


def _hot_events(seed, users, starts, base: Events, draws: UserDraws, plan: VideoPlan, p) -> Events:
    """Hot videos (knob): each user joins with a probability that puts them above the cap."""
    first_ts = base.timestamp[starts] if base.timestamp.size else np.zeros(0, np.int64)
    last_ts = base.timestamp[np.r_[starts[1:] - 1, base.timestamp.size - 1]] if base.timestamp.size else first_ts
    prob = min(0.98, p.hot_video_users / max(p.users, 1))
    parts = []
    for k, vid in enumerate(plan.hot.tolist()):  # a handful of hot videos: one vectorised pass each
        who = np.flatnonzero(uniform(seed, f"hot/{k}", users) < prob)
        at = first_ts[who] + np.floor(uniform(seed, f"hot-time/{k}", users[who])
                                      * (last_ts[who] - first_ts[who] + 1)).astype(np.int64)
        dm = uniform(seed, f"hot-src/{k}", users[who]) < draws.dm_rate[who]
        parts.append(Events(users[who], np.full(who.size, vid, np.int32), at, dm))
    return _concat(parts)


def _concat(parts: list[Events]) -> Events:
    return Events(*(np.concatenate([getattr(e, f) for e in parts])
                    for f in ("user", "video", "timestamp", "danmaku")))
