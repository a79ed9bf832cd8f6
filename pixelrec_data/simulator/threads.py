"""Comment threads: which of a video's comments are top-level (roots) and which are nested replies.

The world holds flat comment events; the platform shows most of them as root comments and some as
replies inside a root's thread (/x/v2/reply lists roots with a preview of their first replies,
/x/v2/reply/reply pages one thread). The split never changes the set of comments, only how they
are served. It is fixed by the seed: each video draws its share of nested replies (a few percent to
most of its comments), each comment whether it is a reply (a keyed draw on its rpid, synthetic.rng.uniform), and each reply
the earlier root it answers, with probability proportional to the root's heavy-tailed (Pareto)
appeal: most roots get no reply, some a few, a few many. On about one video in seven the first
comment becomes a hot thread that draws most of the video's replies (dozens on a busy video: several
reply/reply pages). A reply can answer an earlier reply of the same thread (parent and dialog as
the platform sets them).

Built per video on its first request and cached (SimWorld.threads): a few numpy passes over the
video's comments, never per request.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pixelrec_data.synthetic.rng import uniform

from .faults import unit_draw

PREVIEW = 3                        # replies shown under each root on /x/v2/reply
REPLY_SHARE = (0.05, 0.75)         # per video, the share of comments that are nested replies
APPEAL_ALPHA = 0.8                 # Pareto tail of a root's appeal (below 1: a few roots dominate)
HOT_VIDEOS = 0.15                  # videos whose first comment becomes a hot thread
HOT_REPLY_SHARE, HOT_APPEAL = 0.6, 4.0  # there: at least this share of replies, ~4/5 of them under it
ANSWER_REPLY_SHARE = 0.3           # replies that answer an earlier reply rather than the root


@dataclass
class Threads:
    """One video's comments as threads. Rows index SimWorld.comments (mid, timestamp, ident)."""
    roots: np.ndarray        # rows of the root comments, newest first (as /x/v2/reply sort=0 pages)
    root_rpid: np.ndarray    # their rpids (descending)
    start: np.ndarray        # replies of roots[k] are replies[start[k]:start[k+1]], oldest first
    replies: np.ndarray      # rows of the nested replies, grouped by root
    parent: np.ndarray       # per reply: rpid of the comment it answers (its root or an earlier reply)
    dialog: np.ndarray       # per reply: rpid of the first reply of its conversation

    @property
    def total(self) -> int:
        return len(self.roots) + len(self.replies)

    def rcount(self, k: int) -> int:
        return int(self.start[k + 1] - self.start[k])

    def find_root(self, rpid: int) -> int | None:
        """Position of the root with this rpid, or None (not a root of this video)."""
        k = int(np.searchsorted(-self.root_rpid, -rpid))
        return k if k < len(self.root_rpid) and int(self.root_rpid[k]) == rpid else None

    @functools.cached_property
    def by_likes(self) -> np.ndarray:
        """Root positions ordered as the like sorts (sort=1, 2) serve them: like = rpid % 97."""
        return np.lexsort((-self.root_rpid, -(self.root_rpid % 97)))


def build_threads(ident: np.ndarray, seed: int, aid: int, first_row: int = 0) -> Threads:
    """Threads of one video whose comments have these rpids, newest first (SimWorld.comments order,
    the video's rows starting at `first_row`)."""
    n = len(ident)
    chrono = np.arange(n - 1, -1, -1)  # oldest first; rpids grow with time
    rpid = ident[chrono]
    share = REPLY_SHARE[0] + (REPLY_SHARE[1] - REPLY_SHARE[0]) * unit_draw(seed, "threads", aid) ** 2
    hot = unit_draw(seed, "hot thread", aid) < HOT_VIDEOS
    if hot:
        share = max(share, HOT_REPLY_SHARE)
    is_reply = uniform(seed, "thread reply", rpid) < share
    is_reply[:1] = False  # the first comment of a video has nothing to answer
    root_at = np.flatnonzero(~is_reply)
    reply_at = np.flatnonzero(is_reply)
    appeal = (1.0 - uniform(seed, "thread appeal", rpid[root_at])) ** (-1.0 / APPEAL_ALPHA)
    if hot and len(appeal):  # the first comment drew the crowd: most replies land under it
        appeal[0] = HOT_APPEAL * appeal[1:].sum() + appeal[0]
    cumulative = np.cumsum(appeal)
    earlier = np.searchsorted(root_at, reply_at)  # roots posted before each reply (>= 1)
    target = uniform(seed, "thread root", rpid[reply_at]) * cumulative[earlier - 1]
    owner = np.minimum(np.searchsorted(cumulative, target, side="right"), earlier - 1)
    # roots newest first; each thread's replies oldest first
    newest_root = len(root_at) - 1 - owner
    order = np.lexsort((reply_at, newest_root))
    reply_at, newest_root = reply_at[order], newest_root[order]
    start = np.searchsorted(newest_root, np.arange(len(root_at) + 1))
    roots = chrono[root_at[::-1]]
    parent, dialog = _conversations(seed, rpid[reply_at], start, ident[roots])
    return Threads(roots=first_row + roots, root_rpid=ident[roots], start=start,
                   replies=first_row + chrono[reply_at], parent=parent, dialog=dialog)


def _conversations(seed: int, rpid: np.ndarray, start: np.ndarray, root_rpid: np.ndarray):
    """parent and dialog per reply: a reply answers its root (and opens a dialog of its own), or
    an earlier reply of its thread (and joins that reply's dialog)."""
    group = np.repeat(np.arange(len(start) - 1), np.diff(start))
    rank = np.arange(len(rpid)) - start[group]  # position inside the thread
    answers = (rank > 0) & (uniform(seed, "thread answer", rpid) < ANSWER_REPLY_SHARE)
    earlier = start[group] + (uniform(seed, "thread target", rpid) * rank).astype(np.int64)
    pointer = np.where(answers, earlier, np.arange(len(rpid)))
    parent = np.where(answers, rpid[pointer], root_rpid[group])
    while True:  # follow answered replies back to the one that opened the dialog
        deeper = pointer[pointer]
        if np.array_equal(deeper, pointer):
            break
        pointer = deeper
    return parent, rpid[pointer]
