"""DSSM (IDNet, two towers over window positions).

User tower: the masked mean of the shared item embeddings of the other items of the window
(earlier and later); item tower: the item embedding (mlp_hidden_size [] = no MLP). BPR with 1e-8
inside the log. Predict: the mean of the last-10 history items. Official quirk 8 (only the first
sample of each batch used) is a bug and is not reproduced.
"""
from __future__ import annotations

from torch import nn

from ..base import Recommender


class DSSM(Recommender):
    train_format = "position"

    def __init__(self, config, data):
        super().__init__(config, data)
        self.item_embedding = nn.Embedding(self.item_num, int(config["embedding_size"]), padding_idx=0)
        nn.init.xavier_normal_(self.item_embedding.weight)

    def user_tower(self, items):  # [B, 10] left-padded -> [B, d]
        mask = (items != 0).unsqueeze(-1).float()
        return (self.item_embedding(items) * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def loss(self, batch):
        return self.pair_loss(self.user_tower(batch["context"]), batch["pos"], batch["neg"])

    def user_representation(self, batch):
        return self.user_tower(batch["history"])

    def item_representation(self):
        return self.item_embedding.weight

    def score_items(self, batch, items):
        return (self.user_tower(batch["history"])[:, None] * self.item_embedding(items)).sum(-1)
