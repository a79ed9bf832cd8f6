"""SASRec (IDNet): causal post-LN Transformer over the left-padded last 10 items."""
from __future__ import annotations

import torch

from ...data.interactions import M
from ..base import SequentialRecommender, init_normal
from ..layers import add_input_stack, additive_mask, encoder_from_config


class SASRec(SequentialRecommender):
    train_format = "seq"

    def __init__(self, config, data):
        super().__init__(config, data)
        # padding_idx=0: the PAD row gets no gradient; init_normal overwrites it with a random
        # vector, as the official code does (a fixed random PAD that weight decay still shrinks)
        d = add_input_stack(self, config, self.item_num, M)
        self.encoder = encoder_from_config(config, d)
        self.apply(lambda m: init_normal(m, float(config["initializer_range"])))

    def encode(self, seq):
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.item_embedding(seq) + self.position_embedding(positions)[None]
        x = self.input_dropout(self.input_norm(x))
        return self.encoder(x, additive_mask(seq != 0, causal=True))
