"""The base class every model implements, and the shared sequential base.

Contract (all tensors on the model's device; ids 0 = PAD, items 1..I, `item_num` = I + 1 rows):
- `train_format` names the samples format the trainer builds (see data/samples.py): "seq", "prefix",
  "pair", "bert", "position", or None for a model with nothing to train (Random, Pop).
- `loss(batch) -> [B]` per-sample training losses for one batch dict of that format; the trainer
  averages them over the (global) batch. `forward` is `loss`, so DDP's hooks see it.
- `user_representation(batch) -> [B, d]` for an eval batch {"user": [B], "history": [B, 10]}
  (the last 10 history items, left-padded; test history ends with the validation item).
- `item_representation() -> [item_num, d]`, the candidate table (PAD row included; the evaluator
  sets the PAD score to -inf).
- `full_scores(batch) -> [B, item_num]`: by default user_representation @ item_representation.T.
- `score_items(batch, items [B, k]) -> [B, k]`: the scores of given (user, item) pairs computed
  through the model's training-time scoring path; tests check it equals full_scores at those items.
- `sample_options()`: keyword options for the samples class (e.g. BERT4Rec's mask_ratio).
- `param_groups(config)`: AdamW groups; the default is one group with the config's lr and wd
  (weight decay on every parameter, embeddings and LayerNorm included, as the official code).

A model's __init__ takes (config: dict, data: Interactions); hyper-parameters come from its
configs/<name>.yaml, never from code defaults, so a run's config.yaml states all of them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.interactions import M, Interactions

EPS = 1e-8


def bpr_eps_inside(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """-log(sigmoid(s+ - s-) + 1e-8), the official SASRec/BERT4Rec/FM/DSSM form (caps at ~18.4)."""
    return -torch.log(torch.sigmoid(pos - neg) + EPS)


def bpr(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(s+ - s-) (MF, LightGCN, SRGNN add 1e-8 outside the log: a no-op)."""
    return -F.logsigmoid(pos - neg)


class Recommender(nn.Module):
    train_format: str | None = "seq"

    def __init__(self, config: dict, data: Interactions):
        super().__init__()
        self.config = config
        self.n_users = data.n_users
        self.n_items = data.n_items
        self.item_num = data.item_num
        self.loss_type = config.get("loss", "bpr")

    def forward(self, batch: dict) -> torch.Tensor:
        return self.loss(batch)

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def user_representation(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def item_representation(self) -> torch.Tensor:
        raise NotImplementedError

    def full_scores(self, batch: dict) -> torch.Tensor:
        return self.user_representation(batch) @ self.item_representation().T

    def score_items(self, batch: dict, items: torch.Tensor) -> torch.Tensor:
        user = self.user_representation(batch)
        return (user[:, None, :] * self.item_representation()[items]).sum(-1)

    def sample_options(self) -> dict:
        return {}

    def param_groups(self, config: dict) -> list[dict]:
        """AdamW groups: config `param_groups` is a list of {name_contains, learning_rate,
        weight_decay}; a trainable parameter joins the first rule its name matches, the rest take
        the config's learning_rate / weight_decay (the official 4-key optim_args in general form)."""
        rules = list(config.get("param_groups") or [])
        groups = [{"params": [], "lr": float(r["learning_rate"]),
                   "weight_decay": float(r["weight_decay"])} for r in rules]
        rest = {"params": [], "lr": float(config["learning_rate"]),
                "weight_decay": float(config["weight_decay"])}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            match = next((g for g, r in zip(groups, rules) if r["name_contains"] in name), rest)
            match["params"].append(param)
        return [g for g in [*groups, rest] if g["params"]]

    def pair_loss(self, user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                  bpr_form=bpr_eps_inside) -> torch.Tensor:
        """One user vector against one positive and one negative item: BPR in the model's form
        (bpr or bpr_eps_inside, as its official code), or softmax CE over all items (`loss: ce`)."""
        if self.loss_type == "ce":
            return self.softmax_loss(user, pos)
        return bpr_form((user * self.item_embedding(pos)).sum(-1), (user * self.item_embedding(neg)).sum(-1))

    def softmax_loss(self, user: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over all items (the `loss: ce` option), PAD excluded: [N]."""
        logits = (user @ self.item_representation().T).float()
        logits[..., 0] = float("-inf")
        # PAD targets (no target at that slot) are ignored: loss 0 there, not -log(0)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1).long(),
                               reduction="none", ignore_index=0).reshape(target.shape)


class SequentialRecommender(Recommender):
    """SEQ-window models (SASRec, GRU4Rec, NextItNet): `encode(seq [B,10]) -> [B,10,d]` is all a
    subclass adds. Loss = per-position BPR (1 negative each) summed over the <= 10 target positions
    of a window, as the official code does; predict = the last position's output against every item."""

    train_format = "seq"

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_representation(self) -> torch.Tensor:
        return self.item_embedding.weight

    def user_representation(self, batch):
        return self.encode(batch["history"])[:, -1]

    def loss(self, batch):
        pos, neg = batch["pos"], batch["neg"]
        inputs, targets, negatives = pos[:, :-1], pos[:, 1:], neg[:, 1:]
        mask = (inputs != 0).float()  # the official 10-long target mask
        hidden = self.encode(inputs)
        return self.position_loss(hidden, targets, negatives, mask)

    def position_loss(self, hidden, targets, negatives, mask):
        if self.loss_type == "ce":
            per = self.softmax_loss(hidden, targets)
        else:
            # through item_embedding, so that PixelNet's image lookup serves the same code
            s_pos = (hidden * self.item_embedding(targets)).sum(-1)
            s_neg = (hidden * self.item_embedding(negatives)).sum(-1)
            per = bpr_eps_inside(s_pos, s_neg)
        return (per * mask).sum(-1)

    def score_items(self, batch, items):
        # the training path: window = history + candidate, score at the last target position
        table = self.item_representation()
        scores = []
        for k in range(items.shape[1]):
            window = torch.cat([batch["history"], items[:, k:k + 1]], dim=1)
            hidden = self.encode(window[:, :M])
            scores.append((hidden[:, -1] * table[window[:, -1]]).sum(-1))
        return torch.stack(scores, dim=1)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """BERT-style init: Linear/Embedding normal(0, std) (the PAD row too), bias 0, LayerNorm (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(0.0, std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()
    if isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()
