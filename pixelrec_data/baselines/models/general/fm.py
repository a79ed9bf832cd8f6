"""FM (IDNet, one tower over window positions).

A sample is the other items of a window (earlier and later, left-padded to 10) plus one candidate:
an 11-slot set whose FM second-order term 0.5 * ((sum v)^2 - sum v^2), summed over dimensions, is
the score (PAD embeddings masked to 0). BPR (1e-8 inside the log) between the set with the positive
and with the negative; their difference is (sum of context v) . (v+ - v-). Predict: u = the sum of
the last-10 history embeddings, score u . v_i (the candidate-dependent part of the FM score).
Official quirk 8 (only the first sample of each batch used) is a bug and is not reproduced.
"""
from __future__ import annotations

import torch
from torch import nn

from ..base import Recommender, bpr_eps_inside


def fm_second_order(vectors: torch.Tensor) -> torch.Tensor:
    """[..., slots, d] -> [...]: 0.5 * sum_d ((sum_slots v)^2 - sum_slots v^2)."""
    return 0.5 * (vectors.sum(-2).pow(2) - vectors.pow(2).sum(-2)).sum(-1)


class FM(Recommender):
    train_format = "position"

    def __init__(self, config, data):
        super().__init__(config, data)
        self.item_embedding = nn.Embedding(self.item_num, int(config["embedding_size"]))
        nn.init.xavier_normal_(self.item_embedding.weight)

    def embed(self, items):  # PAD slots contribute nothing
        return self.item_embedding(items) * (items != 0).unsqueeze(-1).float()

    def set_scores(self, context, candidates):  # context [B,10], candidates [B,k] -> [B,k]
        ctx = self.embed(context)[:, None].expand(-1, candidates.shape[1], -1, -1)
        full = torch.cat([ctx, self.embed(candidates)[:, :, None]], dim=2)
        # minus the context's own term, which is the same for every candidate
        return fm_second_order(full) - fm_second_order(ctx)

    def loss(self, batch):
        if self.loss_type == "ce":
            return self.softmax_loss(self.embed(batch["context"]).sum(1), batch["pos"])
        scores = self.set_scores(batch["context"], torch.stack([batch["pos"], batch["neg"]], dim=1))
        return bpr_eps_inside(scores[:, 0], scores[:, 1])

    def user_representation(self, batch):
        return self.embed(batch["history"]).sum(1)

    def item_representation(self):
        return self.item_embedding.weight

    def score_items(self, batch, items):
        return self.set_scores(batch["history"], items)
