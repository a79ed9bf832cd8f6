"""Synthetic releases for tests and benches: hand-sized ones and a Pixel200K-shaped one.

`write_release` writes the release contract (items.parquet + splits/) through schemas.io, from full
per-user item sequences (numbers n of items 'i<n>'), with leave-one-out splits: last -> test,
second to last -> validation, rest -> train. Timestamps increase along each sequence.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.io import write_table
from schemas.official_subsets import OFFICIAL_SUBSETS
from schemas.tables import ITEMS

_PIXEL200K = OFFICIAL_SUBSETS["pixel200k"]


def _items_table(n_items: int) -> pa.Table:
    columns = {f.name: pa.nulls(n_items, f.type) for f in ITEMS}
    columns["item_id"] = pa.array([f"i{i}" for i in range(n_items)])
    return pa.table(columns, schema=ITEMS)


def write_release_arrays(folder, users: np.ndarray, items: np.ndarray, n_items: int) -> Path:
    """Write a release from flat rows sorted by user then time (user numbers, item numbers)."""
    folder = Path(folder)
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    lengths = np.diff(np.r_[starts, len(users)])
    position = np.arange(len(users)) - np.repeat(starts, lengths)
    from_end = np.repeat(lengths, lengths) - position  # 1 = last row of its user
    timestamp = 1_600_000_000 + position * 60
    write_table(_items_table(n_items), folder / "items.parquet", "items")
    for name, rows in (("train", from_end > 2), ("validation", from_end == 2), ("test", from_end == 1)):
        table = pa.table({
            "item_id": pa.array(np.char.add("i", items[rows].astype(str))),
            "user_id": pa.array(np.char.add("u", users[rows].astype(str))),
            "timestamp": pa.array(timestamp[rows]),
        })
        write_table(table, folder / "splits" / f"{name}.parquet", "split")
    return folder


def write_release(folder, sequences: list[list[int]], n_items: int) -> Path:
    users = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    return write_release_arrays(folder, users, np.concatenate(sequences), n_items)


def chain_sequences(n_users: int, n_items: int, length: tuple[int, int] = (6, 16),
                    n_chains: int = 4, noise: float = 0.1, seed: int = 0) -> list[list[int]]:
    """Users walk cyclic item chains: strong next-item signal, skewed popularity across chains.

    Items are split into `n_chains` cycles; each user starts at a random item of a chain picked with
    skewed odds and follows it, with a `noise` chance per step of a random unseen item instead.
    """
    rng = np.random.default_rng(seed)
    chains = np.array_split(rng.permutation(n_items), n_chains)
    odds = np.arange(n_chains, 0, -1, dtype=float)
    odds /= odds.sum()
    sequences = []
    for _ in range(n_users):
        chain = chains[rng.choice(n_chains, p=odds)]
        n = int(rng.integers(length[0], length[1] + 1))
        pos = int(rng.integers(len(chain)))
        seq, seen = [], set()
        while len(seq) < n:
            item = int(chain[pos % len(chain)]) if rng.random() >= noise else int(rng.integers(n_items))
            pos += 1
            if item not in seen:
                seen.add(item)
                seq.append(item)
        sequences.append(seq)
    return sequences


def pixel200k_like(n_users: int = _PIXEL200K.users, n_items: int = _PIXEL200K.items,
                   mean_length: float = round(_PIXEL200K.interactions / _PIXEL200K.users, 1),
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flat (user, item) rows shaped like Pixel200K: >= 5 rows per user, Zipf-like item popularity.

    Repeats inside a user are allowed to stay (they are rare and harmless for timing).
    """
    rng = np.random.default_rng(seed)
    lengths = 5 + rng.geometric(1.0 / (mean_length - 4), size=n_users) - 1
    lengths = np.minimum(lengths, 500)
    users = np.repeat(np.arange(n_users), lengths)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    cdf = np.cumsum(weights / weights.sum())
    items = np.minimum(np.searchsorted(cdf, rng.random(len(users))), n_items - 1)
    items = rng.permutation(n_items)[items]
    return users, items
