"""ACF, attentive collaborative filtering (as in the paper's official code): item- and component-level attention over
spatial image features ([item_num, g, g, F], e.g. RN50 layer4 7x7x2048 = 49 components).

For a user u and a profile of items j (the other items of the window in training; the last 10
history items at evaluation), with x_jl = ReLU(R f_jl) the reduced component features:
    β_jl = softmax_l( w_c · ReLU(W_cx x_jl + W_cu u) ),        x̄_j = Σ_l β_jl x_jl
    α_j  = softmax_j( w_i · ReLU(W_iu u + W_ip p_j + W_ix x̄_j) ) over real (non-PAD) profile items
    user = W_u u + Σ_j α_j p_j,        score(u, i) = user · q_i
p and q are the same item table; Kaiming-normal init; BPR with 1e-8 inside the log.
Training samples: the "position" format (context = profile, pos, neg, and the user id, which
samples.PositionSamples carries as batch["user"]).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pixelrec_data.baselines.models.base import Recommender, bpr_eps_inside
from pixelrec_data.baselines.models.vinet.common import feature_tensor
from schemas.errors import InputError


class ACF(Recommender):
    train_format = "position"

    def __init__(self, config: dict, data):
        super().__init__(config, data)
        # fp16 halves the [item_num, 49, 2048] buffer (19 GB for Pixel200K instead of 38)
        half = bool(config.get("half_features", True))
        feats = feature_tensor(config, data, np.float16 if half else np.float32)
        if feats.dim() < 3:
            raise InputError(f"ACF needs spatial features (extract-features --layer spatial), not {config.get('features')}")
        feats = feats.reshape(len(feats), -1, feats.shape[-1])  # [item_num, components, F]
        self.register_buffer("components", feats, persistent=False)
        d = int(config["embedding_size"])
        self.user_embedding = nn.Embedding(self.n_users + 1, d)
        self.item_embedding = nn.Embedding(self.item_num, d)
        self.reduce = nn.Linear(feats.shape[-1], d)
        self.comp_x, self.comp_u = nn.Linear(d, d), nn.Linear(d, d, bias=False)
        self.comp_w = nn.Linear(d, 1, bias=False)
        self.item_u, self.item_p = nn.Linear(d, d), nn.Linear(d, d, bias=False)
        self.item_x = nn.Linear(d, d, bias=False)
        self.item_w = nn.Linear(d, 1, bias=False)
        self.user_proj = nn.Linear(d, d, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.kaiming_normal_(module.weight)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def profile_user(self, user: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        """User vectors [N, d] from user ids [N] and profile item ids [N, P] (0 = PAD)."""
        u = self.user_embedding(user)
        unique, inverse = torch.unique(profile, return_inverse=True)  # reduce each item once
        x = torch.relu(self.reduce(self.components[unique].to(self.reduce.weight.dtype)))  # [K, L, d]
        comp_logit = self.comp_w(torch.relu(self.comp_x(x)[inverse] + self.comp_u(u)[:, None, None, :]))
        beta = torch.softmax(comp_logit, dim=2)  # over components
        x_bar = (beta * x[inverse]).sum(2)  # [N, P, d]
        p = self.item_embedding(profile)
        item_logit = self.item_w(torch.relu(self.item_u(u)[:, None] + self.item_p(p) + self.item_x(x_bar)))[..., 0]
        real = profile != 0
        item_logit = item_logit.masked_fill(~real, float("-inf"))
        alpha = torch.softmax(item_logit, dim=1)
        alpha = torch.where(real.any(1, keepdim=True), alpha, torch.zeros_like(alpha))  # empty profile
        return self.user_proj(u) + (alpha[..., None] * p).sum(1)

    def loss(self, batch):
        if "user" not in batch:
            raise ValueError("ACF needs the user id in its position samples (batch['user'])")
        user = self.profile_user(batch["user"], batch["context"])
        s_pos = (user * self.item_embedding(batch["pos"])).sum(-1)
        s_neg = (user * self.item_embedding(batch["neg"])).sum(-1)
        return bpr_eps_inside(s_pos, s_neg)

    def user_representation(self, batch):
        return self.profile_user(batch["user"], batch["history"])

    def item_representation(self):
        return self.item_embedding.weight
