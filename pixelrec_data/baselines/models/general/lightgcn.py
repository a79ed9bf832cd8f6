"""LightGCN (IDNet, PAIR).

Graph: user-item edges of all training interactions, symmetric, normalised D^-1/2 A D^-1/2.
n_layers propagation steps; final embeddings = the mean of layers 0..n. The full propagation runs
in every training batch (as the official code); evaluation propagates once and caches until the
model trains again. Xavier init, BPR loss, score = user . item.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..base import Recommender, bpr


def normalised_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int):
    """Sparse [(U+1)+(I+1)]^2 matrix D^-1/2 A D^-1/2 of the bipartite graph (rows users then items)."""
    size = n_users + n_items
    rows = np.concatenate([users, n_users + items]).astype(np.int64)
    cols = np.concatenate([n_users + items, users]).astype(np.int64)
    degree = np.bincount(rows, minlength=size).astype(np.float64)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0)
    values = (inv_sqrt[rows] * inv_sqrt[cols]).astype(np.float32)
    matrix = torch.sparse_coo_tensor(torch.as_tensor(np.stack([rows, cols])), torch.as_tensor(values),
                                     (size, size), check_invariants=True).coalesce()  # duplicates add up
    return matrix


class LightGCN(Recommender):
    train_format = "pair"

    def __init__(self, config, data):
        super().__init__(config, data)
        d = int(config["embedding_size"])
        self.n_layers = int(config["n_layers"])
        self.user_embedding = nn.Embedding(self.n_users + 1, d)
        self.item_embedding = nn.Embedding(self.item_num, d)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.register_buffer("adjacency", normalised_adjacency(
            data.train_users(), data.train_items, self.n_users + 1, self.item_num), persistent=False)
        self._cache = None

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def propagate(self):
        if self._cache is not None and not self.training:
            return self._cache
        layer = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        total = layer
        for _ in range(self.n_layers):
            layer = torch.sparse.mm(self.adjacency, layer)
            total = total + layer
        final = total / (self.n_layers + 1)
        users, items = final[: self.n_users + 1], final[self.n_users + 1:]
        if not self.training:
            self._cache = (users, items)
        return users, items

    def loss(self, batch):
        users, items = self.propagate()
        user = users[batch["user"]]
        if self.loss_type == "ce":
            logits = (user @ items.T).float()
            logits[:, 0] = float("-inf")
            return nn.functional.cross_entropy(logits, batch["pos"].long(), reduction="none")
        return bpr((user * items[batch["pos"]]).sum(-1), (user * items[batch["neg"]]).sum(-1))

    def user_representation(self, batch):
        return self.propagate()[0][batch["user"]]

    def item_representation(self):
        return self.propagate()[1]

    def score_items(self, batch, items):
        users, table = self.propagate()
        return (users[batch["user"]][:, None] * table[items]).sum(-1)
