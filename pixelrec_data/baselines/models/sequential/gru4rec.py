"""GRU4Rec (IDNet, SEQ): embedding -> dropout -> 1-layer GRU (no bias) -> Linear.

No padding mask: the left pads (the fixed random PAD vector) run through the GRU, as in the
official code. Loss and predict as SASRec (per-position BPR summed; last step at predict).
"""
from __future__ import annotations

from torch import nn

from ..base import SequentialRecommender


class GRU4Rec(SequentialRecommender):
    train_format = "seq"

    def __init__(self, config, data):
        super().__init__(config, data)
        d = int(config["embedding_size"])
        hidden = int(config["hidden_size"]) * d
        self.item_embedding = nn.Embedding(self.item_num, d, padding_idx=0)
        nn.init.xavier_normal_(self.item_embedding.weight)  # the PAD row too
        self.embedding_dropout = nn.Dropout(float(config["dropout_prob"]))
        self.gru = nn.GRU(d, hidden, num_layers=int(config["num_layers"]), bias=False, batch_first=True)
        for name, weight in self.gru.named_parameters():
            nn.init.xavier_uniform_(weight)
        self.dense = nn.Linear(hidden, d)  # PyTorch-default init, as the official code

    def encode(self, seq):
        out, _ = self.gru(self.embedding_dropout(self.item_embedding(seq)))
        return self.dense(out)
