"""VisRank (as in the paper's official code): no training; an item's score is its maximum cosine similarity (over
frozen image features) to the user's last 50 history items (`average_top_k`, top_num 1).

The evaluator passes only the last 10 history items, so the model reads the longer history from
the release's interactions: validation history = training items, test history = training items +
the validation item. Which of the two a row is follows from its 10-item history: a user has one
row per item, so the test history (ending with the validation item) never equals the validation
one. History and PAD items are masked by the evaluator.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pixelrec_data.baselines.data import interactions as D
from pixelrec_data.baselines.models.base import Recommender
from pixelrec_data.baselines.models.vinet.common import feature_tensor


class VisRank(Recommender):
    train_format = None

    def __init__(self, config: dict, data):
        super().__init__(config, data)
        self.data = data
        self.history_length = int(config.get("history_length", 50))
        feats = feature_tensor(config, data)
        self.register_buffer("unit", F.normalize(feats.reshape(len(feats), -1), dim=1), persistent=False)

    def long_history(self, users: np.ndarray, short: np.ndarray) -> np.ndarray:
        """The last `history_length` items [B, H] (left-padded with 0) of each row's split."""
        is_test = ~(short == D.eval_histories(self.data, users, "validation")).all(1)
        width = self.history_length
        start, end = self.data.train_offsets[users], self.data.train_offsets[users + 1]
        train_width = np.where(is_test, width - 1, width)
        idx = end[:, None] - width + np.arange(width)[None, :] + is_test[:, None]
        keep = idx >= np.maximum(start, end - train_width)[:, None]
        out = np.where(keep & (idx < end[:, None]), self.data.train_items[np.clip(idx, 0, None)
                                                                          .clip(None, len(self.data.train_items) - 1)], 0)
        out[is_test, -1] = self.data.valid_item[users[is_test]]
        return out.astype(np.int64)

    def full_scores(self, batch):
        users = batch["user"].detach().cpu().numpy().astype(np.int64)
        short = batch["history"].detach().cpu().numpy()
        hist = torch.as_tensor(self.long_history(users, short), device=self.unit.device)
        scores = torch.full((len(users), self.item_num), -torch.inf, device=self.unit.device)
        for j in range(hist.shape[1]):  # one [B, item_num] block per history slot: bounded memory
            col = hist[:, j]
            sim = self.unit[col] @ self.unit.T
            scores = torch.where((col != 0)[:, None], torch.maximum(scores, sim), scores)
        return scores

    def score_items(self, batch, items):
        return self.full_scores(batch).gather(1, items)
