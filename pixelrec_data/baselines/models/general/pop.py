"""Pop: a reference row scoring every item by its number of training interactions.

Ties (frequent among rare items) are broken by a fixed random order, not by the evaluator's
"strictly higher" rule, which would rank every tied item as if it came first: the score is the
item's position in the order (count, random tie-breaker), a distinct integer per item.
"""
from __future__ import annotations

import numpy as np
import torch

from ..base import Recommender


class Pop(Recommender):
    train_format = None

    def __init__(self, config, data):
        super().__init__(config, data)
        counts = np.bincount(data.train_items, minlength=self.item_num)
        tie_break = np.random.default_rng(int(config.get("seed", 0))).permutation(self.item_num)
        order = np.lexsort((tie_break, counts))
        score = np.empty(self.item_num, dtype=np.float32)
        score[order] = np.arange(self.item_num, dtype=np.float32)
        self.register_buffer("score", torch.as_tensor(score))

    def full_scores(self, batch):
        return self.score[None, :].expand(len(batch["user"]), -1)

    def score_items(self, batch, items):
        return self.score[items]
