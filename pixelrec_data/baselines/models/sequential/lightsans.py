"""LightSANs (IDNet, AUGSEQ prefixes; after Fan et al. 2021 / RecBole's layout).

Input: the 10 slots before the target, left-padded. Item embeddings are NOT added to position
embeddings: LN -> dropout -> n_layers light layers, each with
- low-rank item attention: keys and values pooled into k_interests interests by a learnable
  theta [d, k] (softmax over the sequence);
- decoupled position-to-position attention from Embedding(10, d) (LN, own q/k projections, scaled
  by (2 d_head)^-1/2, then / sqrt(d_head));
- the two contexts summed, dense -> dropout -> LN(+residual), then FFN (inner 2 x d).
Softmaxes over dim=-2 as RecBole; no pad mask and no causal mask (official). BPR on the last
position's output against (pos, neg), mean over the batch. Init normal(0.02) (theta: randn).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...data.interactions import M
from ..base import Recommender, init_normal
from ..layers import add_input_stack


class InterestPooling(nn.Module):
    def __init__(self, d: int, k: int):
        super().__init__()
        self.theta = nn.Parameter(torch.randn(d, k))

    def forward(self, x):  # [B, L, d] -> [B, k, d]
        weights = torch.softmax(x @ self.theta, dim=-2)
        return torch.einsum("bld,blk->bkd", x, weights)


class LightLayer(nn.Module):
    def __init__(self, d, heads, k, inner, hidden_dropout, attn_dropout, eps):
        super().__init__()
        self.heads, self.head = heads, d // heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.pool_key, self.pool_value = InterestPooling(d, k), InterestPooling(d, k)
        self.pos_query, self.pos_key = nn.Linear(d, d), nn.Linear(d, d)
        self.pos_scaling = (self.head * 2) ** -0.5
        self.pos_norm = nn.LayerNorm(d, eps=eps)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.dense = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=eps)
        self.ffn_in, self.ffn_out = nn.Linear(d, inner), nn.Linear(inner, d)
        self.ffn_norm = nn.LayerNorm(d, eps=eps)
        self.dropout = nn.Dropout(hidden_dropout)

    def _heads(self, x):
        return x.view(*x.shape[:-1], self.heads, self.head).transpose(-3, -2)

    def forward(self, x, positions):
        query = self._heads(self.query(x))
        value_full = self.value(x)
        key = self._heads(self.pool_key(self.key(x)))
        value = self._heads(self.pool_value(value_full))
        probs = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(self.head), dim=-2)
        item_context = self.attn_dropout(probs) @ value
        pos = self.pos_norm(positions)[None]
        pos_q = self._heads(self.pos_query(pos)) * self.pos_scaling
        pos_k = self._heads(self.pos_key(pos))
        pos_probs = torch.softmax(pos_q @ pos_k.transpose(-1, -2) / math.sqrt(self.head), dim=-2)
        context = item_context + pos_probs @ self._heads(value_full)
        context = context.transpose(1, 2).reshape(x.shape)
        x = self.attn_norm(x + self.dropout(self.dense(context)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


class LightSANs(Recommender):
    train_format = "prefix"

    def __init__(self, config, data):
        super().__init__(config, data)
        d = add_input_stack(self, config, self.item_num, M)
        self.layers = nn.ModuleList(LightLayer(
            d, int(config["n_heads"]), int(config["k_interests"]), int(config["inner_size"]) * d,
            float(config["hidden_dropout_prob"]), float(config["attn_dropout_prob"]),
            float(config["layer_norm_eps"])) for _ in range(int(config["n_layers"])))
        self.apply(lambda m: init_normal(m, float(config["initializer_range"])))

    def encode(self, seq):  # [B, 10] left-padded -> [B, d], the last position's output
        x = self.input_dropout(self.input_norm(self.item_embedding(seq)))
        positions = self.position_embedding.weight[: seq.shape[1]]
        for layer in self.layers:
            x = layer(x, positions)
        return x[:, -1]

    def loss(self, batch):
        return self.pair_loss(self.encode(batch["seq"][:, :M]), batch["seq"][:, M], batch["neg"])

    def user_representation(self, batch):
        return self.encode(batch["history"])

    def item_representation(self):
        return self.item_embedding.weight
