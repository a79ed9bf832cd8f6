"""MF (IDNet, PAIR): user and item embeddings (xavier_normal), dot-product score, BPR on (pos, neg)."""
from __future__ import annotations

from torch import nn

from ..base import Recommender, bpr


class MF(Recommender):
    train_format = "pair"

    def __init__(self, config, data):
        super().__init__(config, data)
        d = int(config["embedding_size"])
        self.user_embedding = nn.Embedding(self.n_users + 1, d)
        self.item_embedding = nn.Embedding(self.item_num, d)
        nn.init.xavier_normal_(self.user_embedding.weight)
        nn.init.xavier_normal_(self.item_embedding.weight)
        # mlp_hidden_size [] in the paper's config: the towers are the identity

    def loss(self, batch):
        return self.pair_loss(self.user_embedding(batch["user"]), batch["pos"], batch["neg"], bpr)

    def user_representation(self, batch):
        return self.user_embedding(batch["user"])

    def item_representation(self):
        return self.item_embedding.weight

    def score_items(self, batch, items):
        return (self.user_embedding(batch["user"])[:, None] * self.item_embedding(items)).sum(-1)
