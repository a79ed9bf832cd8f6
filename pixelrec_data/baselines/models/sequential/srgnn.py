"""SR-GNN (IDNet, AUGSEQ prefixes; after Wu et al. 2019 / RecBole's layout).

Per sequence (the prefix inputs, or the last 10 history items, right-padded to 10) a session graph:
nodes = the sorted unique ids including 0, an edge for each consecutive pair of real items, the
in-adjacency normalised by in-degree and the out-adjacency by out-degree. A gated GNN cell runs
`step` times; readout: ht = the last real item's node state, alpha_i = w3 . sigmoid(W1 ht + W2 h_i),
s_g = sum_i mask_i alpha_i h_i, s = W_t [s_g; ht]. Score s . e_i; BPR with one negative per prefix.
All parameters uniform(+-1/sqrt(d)). On CPU the per-node layers run on the real nodes only
(`Packing`): the results of running them on every slot, in about half the arithmetic.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...data.interactions import M
from ..base import Recommender, bpr


def right_align(seq: torch.Tensor) -> torch.Tensor:
    """Left-padded [B, L] -> right-padded [B, L] (real items first, in order)."""
    pads = (seq == 0).sum(1, keepdim=True)
    index = torch.arange(seq.shape[1], device=seq.device)[None] + pads
    moved = seq.gather(1, index.clamp(max=seq.shape[1] - 1))
    return torch.where(index < seq.shape[1], moved, torch.zeros_like(moved))


def session_graph(seq: torch.Tensor):
    """Right-padded [B, n] -> (nodes [B, n], alias [B, n], A [B, n, 2n]) as RecBole's SR-GNN."""
    b, n = seq.shape
    ordered, order = seq.sort(dim=1)
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    rank_sorted = first.long().cumsum(1) - 1  # node index of each sorted element
    alias = torch.empty_like(rank_sorted).scatter_(1, order, rank_sorted)
    nodes = torch.zeros_like(seq)
    nodes.scatter_(1, rank_sorted, ordered)  # unique ids, ascending, 0-padded at the end
    edge = (seq[:, 1:] != 0) & (seq[:, :-1] != 0)
    # an edge sets its cell to 1; the max keeps repeated edges at 1 and ignores the non-edges
    # (no boolean indexing: the shapes do not depend on the data)
    adjacency = torch.zeros(b, n * n, device=seq.device).scatter_reduce_(
        1, alias[:, :-1] * n + alias[:, 1:], edge.float(), "amax").view(b, n, n)
    a_in = adjacency / adjacency.sum(1, keepdim=True).clamp(min=1.0)   # by in-degree (columns)
    a_out = adjacency / adjacency.sum(2, keepdim=True).clamp(min=1.0)  # by out-degree (rows)
    return nodes, alias, torch.cat([a_in.transpose(1, 2), a_out], dim=2)


def packs_rows(seq: torch.Tensor) -> bool:
    """Pack on CPU in eager mode, where a step is bound by arithmetic. On CUDA it is bound by
    kernel launches, and a row count read from the data would cost a host sync per step and,
    compiled, a graph per shape: there every slot runs, as in the official code."""
    return seq.device.type == "cpu" and not torch.compiler.is_compiling()


class Packing:
    """The node slots of a batch of session graphs that hold a node, as rows of one flat matrix.

    A session's graph has one node per distinct real item; its other slots (the PAD id's node,
    empty slots) are unconnected, and nothing of theirs reaches a real node or a sampled score.
    So the per-node layers can run on the real nodes only (about half the slots of the paper's
    10-item prefixes) with the results of the all-slots form. A session without any real item
    keeps its PAD node, whose state is then its representation, as in the all-slots form.
    `pack=False` keeps every slot (the layout is then a plain reshape).
    """

    def __init__(self, nodes: torch.Tensor, seq: torch.Tensor, pack: bool):
        self.batch, self.slots = nodes.shape
        self.rows = None
        if pack:
            keep = nodes != 0
            keep[:, 0] |= (seq == 0).all(1)
            self.rows = keep.flatten().nonzero().squeeze(1)

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """[B, n, k] -> [N, k], the kept slots."""
        flat = padded.reshape(-1, padded.shape[-1])
        return flat if self.rows is None else flat.index_select(0, self.rows)

    def spread(self, packed: torch.Tensor) -> torch.Tensor:
        """[N, k] -> [B, n, k], zeros in the slots not kept."""
        if self.rows is not None:
            out = packed.new_zeros(self.batch * self.slots, packed.shape[-1])
            packed = out.index_copy(0, self.rows, packed)
        return packed.view(self.batch, self.slots, -1)


class GNNCell(nn.Module):
    def __init__(self, d: int, steps: int):
        super().__init__()
        self.steps = steps
        self.edge_in, self.edge_out = nn.Linear(d, d), nn.Linear(d, d)
        self.bias_in, self.bias_out = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.w_ih, self.w_hh = nn.Parameter(torch.zeros(3 * d, 2 * d)), nn.Parameter(torch.zeros(3 * d, d))
        self.b_ih, self.b_hh = nn.Parameter(torch.zeros(3 * d)), nn.Parameter(torch.zeros(3 * d))

    def step(self, a, hidden, packing: Packing):
        """One gated step over the packed node states `hidden` [N, d]."""
        n = a.shape[1]
        msg_in = packing.pack(a[:, :, :n] @ packing.spread(self.edge_in(hidden))) + self.bias_in
        msg_out = packing.pack(a[:, :, n:] @ packing.spread(self.edge_out(hidden))) + self.bias_out
        gi = F.linear(torch.cat([msg_in, msg_out], 1), self.w_ih, self.b_ih)
        gh = F.linear(hidden, self.w_hh, self.b_hh)
        i_r, i_i, i_n = gi.chunk(3, 1)
        h_r, h_i, h_n = gh.chunk(3, 1)
        reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_i + h_i)
        new = torch.tanh(i_n + reset * h_n)
        return (1 - update) * hidden + update * new

    def forward(self, a, hidden, packing: Packing):
        for _ in range(self.steps):
            hidden = self.step(a, hidden, packing)
        return hidden


class SRGNN(Recommender):
    train_format = "prefix"

    def __init__(self, config, data):
        super().__init__(config, data)
        d = int(config["embedding_size"])
        self.item_embedding = nn.Embedding(self.item_num, d, padding_idx=0)
        self.gnn = GNNCell(d, int(config["step"]))
        self.w_one, self.w_two = nn.Linear(d, d), nn.Linear(d, d)
        self.w_three = nn.Linear(d, 1, bias=False)
        self.transform = nn.Linear(2 * d, d)
        bound = 1.0 / math.sqrt(d)
        for weight in self.parameters():
            weight.data.uniform_(-bound, bound)

    def session(self, seq):  # left-padded [B, 10] -> [B, d]
        seq = right_align(seq)
        nodes, alias, adjacency = session_graph(seq)
        packing = Packing(nodes, seq, packs_rows(seq))
        hidden = self.gnn(adjacency, self.item_embedding(packing.pack(nodes[..., None]).squeeze(1)),
                          packing)
        # per position: its node's state and W2 of it (W2 runs once per node, not per position);
        # PAD positions read zeros there, and the mask drops them
        gathered = packing.spread(torch.cat([hidden, self.w_two(hidden)], 1))
        at = alias[..., None].expand(-1, -1, gathered.shape[-1])
        seq_hidden, seq_two = gathered.gather(1, at).chunk(2, 2)
        mask = (seq != 0).float()
        last = (mask.sum(1).long() - 1).clamp(min=0)
        ht = seq_hidden[torch.arange(len(seq), device=seq.device), last]
        alpha = self.w_three(torch.sigmoid(self.w_one(ht)[:, None] + seq_two))
        global_ = (alpha * seq_hidden * mask[..., None]).sum(1)
        return self.transform(torch.cat([global_, ht], dim=1))

    def loss(self, batch):
        return self.pair_loss(self.session(batch["seq"][:, :M]), batch["seq"][:, M], batch["neg"], bpr)

    def user_representation(self, batch):
        return self.session(batch["history"])

    def item_representation(self):
        return self.item_embedding.weight
