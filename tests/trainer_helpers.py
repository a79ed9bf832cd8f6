"""Trainer inputs built in memory for tests: Interactions from plain per-user item sequences."""
import numpy as np
import pyarrow as pa

from pixelrec_data.baselines.data.interactions import Interactions


def from_sequences(sequences: list[list[int]], n_items: int) -> Interactions:
    """Build Interactions from full per-user item sequences (>= 3 items each).

    The last item of each sequence is the test target, the one before it the validation target.
    """
    lengths = np.array([len(s) - 2 for s in sequences], dtype=np.int64)
    if (lengths < 1).any():
        raise ValueError("every sequence needs at least 3 items")
    offsets = np.zeros(len(sequences) + 2, dtype=np.int64)
    np.cumsum(lengths, out=offsets[2:])
    flat = np.concatenate([np.asarray(s[:-2], dtype=np.int32) for s in sequences])
    valid = np.array([0] + [s[-2] for s in sequences], dtype=np.int32)
    test = np.array([0] + [s[-1] for s in sequences], dtype=np.int32)
    return Interactions(
        item_tokens=pa.array([f"i{i}" for i in range(n_items)]),
        user_tokens=pa.array([f"u{u}" for u in range(len(sequences))]),
        train_offsets=offsets, train_items=flat, valid_item=valid, test_item=test)
