"""Random: a reference row. Each (user, item) gets a fixed pseudo-random score from a hash of
(seed, user, item), so full-sort and pairwise scores agree and reruns are identical."""
from __future__ import annotations

import torch

from ..base import Recommender

_MASK = (1 << 31) - 1


def hashed_scores(seed: int, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Scores in [0, 1) from an integer mix of (seed, user, item); broadcasts users against items."""
    x = (users.long() * 1_000_003 + items.long() * 7_919 + seed * 104_729) & _MASK
    for _ in range(3):  # xorshift-multiply rounds in 31 bits (no int64 overflow)
        x = ((x ^ (x >> 15)) * 2_654_435) & _MASK
        x = ((x ^ (x >> 13)) * 40_503) & _MASK
    return (x >> 7).float() / float(1 << 24)


class RandomRec(Recommender):
    train_format = None

    def __init__(self, config, data):
        super().__init__(config, data)
        self.seed = int(config.get("seed", 0))
        self.register_buffer("items", torch.arange(self.item_num))

    def full_scores(self, batch):
        return hashed_scores(self.seed, batch["user"][:, None], self.items[None, :])

    def score_items(self, batch, items):
        return hashed_scores(self.seed, batch["user"][:, None], items)
