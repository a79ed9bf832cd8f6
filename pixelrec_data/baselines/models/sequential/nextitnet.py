"""NextItNet (IDNet, SEQ): stacked dilated causal residual conv blocks.

block_num x dilations (3 x [1, 4]) blocks, each: causal left-zero-padded conv(k, dilation d) ->
LayerNorm(eps 1e-8) + ReLU -> conv(k, dilation 2d) -> LayerNorm + ReLU -> + input. No pad mask,
no dropout; convs keep PyTorch-default init; the embedding is uniform (+-sqrt(1/item_num)), PAD
row included. `final_layer: true` adds RecBole's (and the official code's) final Linear(d, d)
after the blocks, applied at every position (xavier-normal weight, bias 0.1); the tuned configs
leave it off, as the official ones do. Loss and predict as SASRec.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from ..base import SequentialRecommender


class ResidualBlock(nn.Module):
    def __init__(self, d: int, kernel: int, dilation: int):
        super().__init__()
        self.kernel, self.dilation = kernel, dilation
        self.conv1 = nn.Conv1d(d, d, kernel, dilation=dilation)
        self.norm1 = nn.LayerNorm(d, eps=1e-8)
        self.conv2 = nn.Conv1d(d, d, kernel, dilation=2 * dilation)
        self.norm2 = nn.LayerNorm(d, eps=1e-8)

    def _causal(self, conv, x, dilation):  # x [B, L, d] -> [B, L, d], left-padded with zeros
        x = F.pad(x.transpose(1, 2), ((self.kernel - 1) * dilation, 0))
        return conv(x).transpose(1, 2)

    def forward(self, x):
        out = F.relu(self.norm1(self._causal(self.conv1, x, self.dilation)))
        out = F.relu(self.norm2(self._causal(self.conv2, out, 2 * self.dilation)))
        return out + x


class NextItNet(SequentialRecommender):
    train_format = "seq"

    def __init__(self, config, data):
        super().__init__(config, data)
        d = int(config["embedding_size"])
        self.item_embedding = nn.Embedding(self.item_num, d, padding_idx=0)
        bound = math.sqrt(1.0 / self.item_num)
        nn.init.uniform_(self.item_embedding.weight, -bound, bound)
        dilations = list(config["dilations"]) * int(config["block_num"])
        self.blocks = nn.Sequential(*(ResidualBlock(d, int(config["kernel_size"]), dil)
                                      for dil in dilations))
        self.final_layer = _final_layer(d) if config["final_layer"] else nn.Identity()

    def encode(self, seq):
        return self.final_layer(self.blocks(self.item_embedding(seq)))


def _final_layer(d: int) -> nn.Linear:
    layer = nn.Linear(d, d)
    nn.init.xavier_normal_(layer.weight)
    nn.init.constant_(layer.bias, 0.1)
    return layer
