"""Near-duplicate covers: groups of covers whose 64-bit perceptual hashes differ in <= t bits.

Comparing every pair is quadratic (408K covers -> 8e10 pairs), so candidates come from
multi-index hashing: cut each hash into t+1 bit blocks; two hashes within distance t agree exactly
on at least one block (pigeonhole), so only hashes sharing a block value are compared.

Groups are formed leader-first in item order (the first cover not yet grouped takes every
ungrouped cover within t of it), not by chaining pairs: chains of simple, similar covers would
otherwise merge into one large group whose ends look nothing alike. So every member of a group is
within t bits of the group's first item, and no two ungrouped covers are within t of each other.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

HASH_BITS = 64
CHUNK = 512


def near_duplicate_groups(items: list[str], phashes: list[str], threshold: int) -> list[dict]:
    """Groups (>= 2 items, in item order) of covers within `threshold` bits of their first item."""
    if len(items) < 2 or threshold < 0:
        return []
    # Work on distinct hash values: many identical hashes (blank covers) cost nothing extra.
    values, inverse = np.unique(np.array([int(h, 16) for h in phashes], dtype=np.uint64),
                                return_inverse=True)
    inverse = inverse.reshape(-1).tolist()
    items_of_value: dict[int, list[int]] = defaultdict(list)
    for position, value_index in enumerate(inverse):
        items_of_value[value_index].append(position)
    neighbours: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a, b, distance in _close_pairs(values, threshold):
        neighbours[a].append((b, distance))
        neighbours[b].append((a, distance))
    grouped = [False] * len(items)
    groups = []
    for leader in range(len(items)):
        if grouped[leader]:
            continue
        value = inverse[leader]
        members = {j: 0 for j in items_of_value[value] if not grouped[j]}
        for other, distance in neighbours.get(value, ()):
            members.update({j: distance for j in items_of_value[other] if not grouped[j]})
        if len(members) < 2:
            continue
        for j in members:
            grouped[j] = True
        order = sorted(members)
        groups.append({"items": [items[j] for j in order], "max_distance": max(members.values()),
                       "phash": phashes[leader]})
    return groups


def _close_pairs(values: np.ndarray, threshold: int):
    """Yield (i, j, distance), i < j, for every pair within `threshold` bits (each pair once)."""
    blocks = min(threshold + 1, HASH_BITS)
    bounds = np.linspace(0, HASH_BITS, blocks + 1).astype(int)
    seen: set[tuple[int, int]] = set()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mask = np.uint64((1 << (hi - lo)) - 1)
        keys = (values >> np.uint64(lo)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for start, end in zip(starts, ends):
            if end - start < 2:
                continue
            bucket = np.sort(order[start:end])
            for first in range(0, len(bucket), CHUNK):  # bounded memory for big buckets
                rows_idx = bucket[first:first + CHUNK]
                distances = _popcount(values[rows_idx][:, None] ^ values[bucket][None, :])
                close = (distances <= threshold) & (rows_idx[:, None] < bucket[None, :])
                for r, c in zip(*np.nonzero(close)):
                    pair = (int(rows_idx[r]), int(bucket[c]))
                    if pair not in seen:
                        seen.add(pair)
                        yield pair[0], pair[1], int(distances[r, c])


def _popcount(x: np.ndarray) -> np.ndarray:
    as_bytes = x.astype(">u8").view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1)
