"""VBPR (as in the paper's official code): MF plus a visual term over frozen image features.

score(u, i) = γ_u·γ_i + θ_u·(E f_i) + β'·f_i, with E = Linear(F -> d/2, no bias) and
β' = Linear(F -> 1, no bias); no global, user or item biases; xavier init; BPR with 1e-8 inside
the log; PAIR samples. Parameters whose name contains 'projection' (E and β') form their own
AdamW group (modal_lr / modal_weight_decay), the ID embeddings and θ the other (learning_rate /
weight_decay), as the official `decay_check_name: projection`.
"""
from __future__ import annotations

import torch
from torch import nn

from pixelrec_data.baselines.models.base import Recommender, bpr_eps_inside
from pixelrec_data.baselines.models.vinet.common import feature_tensor


class VBPR(Recommender):
    train_format = "pair"

    def __init__(self, config: dict, data):
        super().__init__(config, data)
        feats = feature_tensor(config, data)
        self.register_buffer("features", feats.reshape(len(feats), -1), persistent=False)
        half = int(config["embedding_size"]) // 2
        n_feat = self.features.shape[1]
        self.user_gamma = nn.Embedding(self.n_users + 1, half)
        self.item_gamma = nn.Embedding(self.item_num, half)
        self.user_theta = nn.Embedding(self.n_users + 1, half)
        self.visual_projection = nn.Linear(n_feat, half, bias=False)
        self.visual_bias_projection = nn.Linear(n_feat, 1, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Embedding, nn.Linear)):
                nn.init.xavier_normal_(module.weight)

    def user_representation(self, batch):
        u = batch["user"]
        ones = torch.ones(len(u), 1, device=u.device, dtype=self.user_gamma.weight.dtype)
        return torch.cat([self.user_gamma(u), self.user_theta(u), ones], dim=1)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        f = self.features[items]
        return torch.cat([self.item_gamma(items), self.visual_projection(f), self.visual_bias_projection(f)], -1)

    def item_representation(self):
        return self.item_vectors(torch.arange(self.item_num, device=self.features.device))

    def loss(self, batch):
        user = self.user_representation(batch)
        s_pos = (user * self.item_vectors(batch["pos"])).sum(-1)
        s_neg = (user * self.item_vectors(batch["neg"])).sum(-1)
        return bpr_eps_inside(s_pos, s_neg)

    def score_items(self, batch, items):
        user = self.user_representation(batch)
        return (user[:, None, :] * self.item_vectors(items)).sum(-1)

    def param_groups(self, config):
        modal, rest = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (modal if "projection" in name else rest).append(p)
        return [{"params": rest, "lr": float(config["learning_rate"]),
                 "weight_decay": float(config["weight_decay"])},
                {"params": modal, "lr": float(config["modal_lr"]),
                 "weight_decay": float(config["modal_weight_decay"])}]
