"""The protocol's input rules as straightforward per-user loops (sections 1.5 and 1.8).

Slow and plain on purpose: the executable statement of the rules that the tests compare the
vectorised code in data.py against.
"""
from __future__ import annotations

from pixelrec_data.baselines.data.interactions import C, M, Interactions


def reference_windows(data: Interactions) -> list[tuple[int, list[int]]]:
    out = []
    for user in range(1, data.n_users + 1):
        seq = list(data.train_items[data.train_offsets[user]:data.train_offsets[user + 1]])
        n = len(seq)
        if n > C:
            seq = seq[n % C:]
            out.extend((user, seq[k:k + C]) for k in range(0, len(seq), C))
        elif n >= 2:
            out.append((user, seq))
    return out


def reference_prefixes(windows: list[tuple[int, list[int]]]) -> list[list[int]]:
    return [w[:length] for _, w in windows for length in range(2, len(w) + 1)]


def reference_eval_history(data: Interactions, user: int, split: str) -> list[int]:
    seq = list(data.train_items[data.train_offsets[user]:data.train_offsets[user + 1]])
    if split == "test":
        seq.append(int(data.valid_item[user]))
    last = seq[-M:]
    return [0] * (M - len(last)) + last
