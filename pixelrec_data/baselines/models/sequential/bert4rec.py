"""BERT4Rec (IDNet): masked-item prediction with BPR, bidirectional post-LN encoder.

Item table of item_num + 1 rows: the extra row is [MASK] = item_num. Training windows mask each
real position with probability mask_ratio (samples.BertSamples); loss = for every masked position
-log(1e-8 + sigmoid(h.e_item - h.e_neg)), summed per window (the trainer's batch mean makes it the
official "sum divided by the batch size"). Predict: last 10 history items + [MASK], the [MASK]
output against items 0..item_num-1 (the MASK row is not a candidate).
"""
from __future__ import annotations

import torch

from ...data.interactions import C
from ..base import Recommender, bpr_eps_inside, init_normal
from ..layers import add_input_stack, additive_mask, encoder_from_config


class BERT4Rec(Recommender):
    train_format = "bert"

    def __init__(self, config, data):
        super().__init__(config, data)
        self.mask_token = self.item_num
        d = add_input_stack(self, config, self.item_num + 1, C)
        self.encoder = encoder_from_config(config, d)
        self.apply(lambda m: init_normal(m, float(config["initializer_range"])))

    def sample_options(self):
        return {"mask_ratio": float(self.config["mask_ratio"])}

    def encode(self, seq):  # [B, 11] -> [B, 11, d], attention over real (non-PAD) keys only
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.input_dropout(self.input_norm(self.item_embedding(seq) + self.position_embedding(positions)[None]))
        return self.encoder(x, additive_mask(seq != 0, causal=False))

    def loss(self, batch):
        hidden = self.encode(batch["input"])
        if self.loss_type == "ce":
            per = self.softmax_loss(hidden, batch["pos"])
        else:
            s_pos = (hidden * self.item_embedding(batch["pos"])).sum(-1)
            s_neg = (hidden * self.item_embedding(batch["neg"])).sum(-1)
            per = bpr_eps_inside(s_pos, s_neg)
        return (per * batch["flag"].float()).sum(-1)

    def user_representation(self, batch):
        history = batch["history"]
        mask = torch.full_like(history[:, :1], self.mask_token)
        return self.encode(torch.cat([history, mask], dim=1))[:, -1]

    def item_representation(self):
        return self.item_embedding.weight[: self.item_num]
