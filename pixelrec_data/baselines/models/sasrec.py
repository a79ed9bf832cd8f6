"""SASRec (IDNet, protocol 4.1): causal post-LN Transformer over the left-padded last 10 items."""
from __future__ import annotations

import torch
from torch import nn

from ..data import M
from .base import SequentialRecommender, init_normal
from .layers import TransformerEncoder, additive_mask


class SASRec(SequentialRecommender):
    train_format = "seq"

    def __init__(self, config, data):
        super().__init__(config, data)
        d = int(config["embedding_size"])
        # padding_idx=0: the PAD row gets no gradient; init_normal overwrites it with a random
        # vector, as the official code does (a fixed random PAD that weight decay still shrinks)
        self.item_embedding = nn.Embedding(self.item_num, d, padding_idx=0)
        self.position_embedding = nn.Embedding(M, d)
        self.input_norm = nn.LayerNorm(d, eps=float(config["layer_norm_eps"]))
        self.input_dropout = nn.Dropout(float(config["hidden_dropout_prob"]))
        self.encoder = TransformerEncoder(
            int(config["n_layers"]), d, int(config["n_heads"]), int(config["inner_size"]) * d,
            float(config["hidden_dropout_prob"]), float(config["attn_dropout_prob"]),
            float(config["layer_norm_eps"]))
        self.apply(lambda m: init_normal(m, float(config["initializer_range"])))

    def encode(self, seq):
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.item_embedding(seq) + self.position_embedding(positions)[None]
        x = self.input_dropout(self.input_norm(x))
        return self.encoder(x, additive_mask(seq != 0, causal=True))
