"""Full-ranking evaluation (protocol section 2) and the paper's popularity analyses (Figures 7, 8).

For every user: scores over all items 0..I, PAD and the user's full history set to -inf (validation
history = training items; test history = training items + the validation item), then
rank = 1 + #{items scoring strictly above the target}. A target that is itself in the history is
masked, so it is a miss (the user stays in the denominator). Users go in batches, so the
users x items score matrix never exists whole. Under DDP a rank scores users rank+1, rank+1+W, ...
and the per-user results are summed across ranks.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from . import data as D

TOPK = (5, 10)


def rank_targets(scores: torch.Tensor, targets: torch.Tensor, mask_rows: torch.Tensor,
                 mask_items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rank [B] float64, inf for a masked target; top-1 item [B]) from raw scores [B, item_num]."""
    scores = scores.float().clone()
    scores[:, 0] = -math.inf
    scores[mask_rows, mask_items] = -math.inf
    target = scores.gather(1, targets[:, None])
    rank = 1.0 + (scores > target).sum(1).double()
    rank = torch.where(torch.isneginf(target[:, 0]), torch.full_like(rank, math.inf), rank)
    return rank, scores.argmax(1)


def metrics_from_ranks(rank: np.ndarray, topk=TOPK, decimals: int = 7) -> dict:
    """Recall@K and NDCG@K averaged over all users (one target each; IDCG = 1)."""
    out = {}
    n = max(len(rank), 1)
    for k in topk:
        hit = rank <= k
        gain = np.zeros(len(rank))
        gain[hit] = 1.0 / np.log2(rank[hit] + 1.0)
        out[f"recall@{k}"] = round(float(hit.sum() / n), decimals)
        out[f"ndcg@{k}"] = round(float(gain.sum() / n), decimals)
    return out


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when asked; CPU always runs fp32."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def score_users(model, data: D.Interactions, split: str, device: torch.device, batch_size: int = 1024,
                rank: int = 0, world: int = 1, amp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (rank, top-1 item) arrays of length U + 1 (index 0 unused) for this process's users.

    Users not scored by this process hold rank 0 and top-1 0, so summing the arrays of all
    processes gives the whole result.
    """
    model.eval()
    ranks = np.zeros(data.n_users + 1)
    top1 = np.zeros(data.n_users + 1, dtype=np.int64)
    users = np.arange(1 + rank, data.n_users + 1, world)
    targets = D.eval_targets(data, split)
    for start in range(0, len(users), batch_size):
        batch_users = users[start:start + batch_size]
        batch = {"user": torch.as_tensor(batch_users, device=device),
                 "history": torch.as_tensor(D.eval_histories(data, batch_users, split), device=device)}
        with autocast(device, amp):
            scores = model.full_scores(batch)
        rows, items = D.history_coordinates(data, batch_users, split)
        r, t = rank_targets(scores, torch.as_tensor(targets[batch_users].astype(np.int64), device=device),
                            torch.as_tensor(rows, device=device), torch.as_tensor(items, device=device))
        ranks[batch_users] = r.cpu().numpy()
        top1[batch_users] = t.cpu().numpy()
    return ranks, top1


def popularity_groups(data: D.Interactions, ranks: np.ndarray, top1: np.ndarray, n_groups: int = 10,
                      k: int = 10) -> dict:
    """Figure 7 (Recall@K in equal-size groups of test users by target popularity, cold to hot) and
    Figure 8 (average popularity of each user's top-1 item against the targets')."""
    popularity = data.item_popularity()
    users = np.arange(1, data.n_users + 1)
    target_pop = popularity[data.test_item[users]]
    order = np.argsort(target_pop, kind="stable")  # ties by user id: deterministic groups
    groups = []
    for index, members in enumerate(np.array_split(users[order], n_groups)):
        if len(members) == 0:
            continue
        groups.append({
            "group": index, "users": int(len(members)),
            f"recall@{k}": round(float((ranks[members] <= k).mean()), 7),
            "target_popularity_mean": round(float(popularity[data.test_item[members]].mean()), 4),
            "top1_popularity_mean": round(float(popularity[top1[members]].mean()), 4),
        })
    return {
        "popularity": "interactions per item over train + validation + test",
        "figure7_recall_by_target_popularity": groups,
        "figure8": {"target_popularity_mean": round(float(target_pop.mean()), 4),
                    "top1_popularity_mean": round(float(popularity[top1[users]].mean()), 4)},
    }
