"""Shared building blocks: the BERT-style post-LN Transformer encoder of SASRec and BERT4Rec."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASKED = -1e9  # the official additive mask value (not -inf: a fully masked row stays finite)


class TransformerLayer(nn.Module):
    """Multi-head self-attention then FFN, each `dense -> dropout -> LayerNorm(x + .)` (post-LN),
    exact-erf GELU, scores / sqrt(d / heads) plus an additive mask (RecBole / official layout)."""

    def __init__(self, d: int, heads: int, inner: int, hidden_dropout: float, attn_dropout: float,
                 eps: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"embedding_size {d} is not a multiple of n_heads {heads}")
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_dense = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=eps)
        self.ffn_in, self.ffn_out = nn.Linear(d, inner), nn.Linear(inner, d)
        self.ffn_norm = nn.LayerNorm(d, eps=eps)
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.attn_dropout = attn_dropout

    def _split(self, x):
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        # SDPA computes softmax(q k^T / sqrt(d_head) + mask) v with dropout on the probabilities
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask.to(q.dtype),
            dropout_p=self.attn_dropout if self.training else 0.0)
        ctx = ctx.transpose(1, 2).reshape(x.shape)
        x = self.attn_norm(x + self.hidden_dropout(self.attn_dense(ctx)))
        ffn = self.ffn_out(F.gelu(self.ffn_in(x)))
        return self.ffn_norm(x + self.hidden_dropout(ffn))


class TransformerEncoder(nn.Module):
    def __init__(self, n_layers: int, d: int, heads: int, inner: int, hidden_dropout: float,
                 attn_dropout: float, eps: float):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(d, heads, inner, hidden_dropout, attn_dropout, eps)
                                    for _ in range(n_layers))

    def forward(self, x, mask):
        for layer in self.layers:
            x = layer(x, mask)
        return x


def additive_mask(real: torch.Tensor, causal: bool) -> torch.Tensor:
    """[B, 1, L, L] additive mask: 0 where query i may attend key j (key real, and j <= i when
    causal), MASKED elsewhere."""
    allowed = real[:, None, None, :]
    if causal:
        n = real.shape[1]
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=real.device).tril()
    zero = torch.zeros((), device=real.device)
    return torch.where(allowed, zero, torch.full((), MASKED, device=real.device))


def add_input_stack(model: nn.Module, config, item_rows: int, positions: int) -> int:
    """Registers the shared input modules on `model` (item_embedding with PAD row 0,
    position_embedding, input_norm, input_dropout), in this order: init_normal draws in
    registration order, so the order is part of the seeded result. Returns embedding_size."""
    d = int(config["embedding_size"])
    model.item_embedding = nn.Embedding(item_rows, d, padding_idx=0)
    model.position_embedding = nn.Embedding(positions, d)
    model.input_norm = nn.LayerNorm(d, eps=float(config["layer_norm_eps"]))
    model.input_dropout = nn.Dropout(float(config["hidden_dropout_prob"]))
    return d


def encoder_from_config(config, d: int) -> TransformerEncoder:
    return TransformerEncoder(
        int(config["n_layers"]), d, int(config["n_heads"]), int(config["inner_size"]) * d,
        float(config["hidden_dropout_prob"]), float(config["attn_dropout_prob"]),
        float(config["layer_norm_eps"]))
