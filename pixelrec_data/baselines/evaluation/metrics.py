"""Full-ranking evaluation (as in the paper's official code) and the paper's popularity analyses (Figures 7, 8).

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

from ..data import interactions as D
from ..data.samples import pad_rows

TOPK = (5, 10)


def rank_targets(scores: torch.Tensor, targets: torch.Tensor, mask_rows: torch.Tensor,
                 mask_items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rank [B] float64, inf for a masked target; top-1 item [B]) from raw scores [B, item_num]."""
    scores = scores.to(torch.float32, copy=True)  # one copy, whatever the input dtype
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


def per_user_sd(rank: np.ndarray, topk=TOPK, decimals: int = 7) -> dict:
    """Standard deviation over users of each user's hit (Recall@K) and gain (NDCG@K): the spread
    behind the means of metrics_from_ranks, from which a mean's sampling error follows."""
    out = {}
    for k in topk:
        hit = rank <= k
        gain = np.zeros(len(rank))
        gain[hit] = 1.0 / np.log2(rank[hit] + 1.0)
        out[f"recall@{k}"] = round(float(hit.std()) if len(rank) else 0.0, decimals)
        out[f"ndcg@{k}"] = round(float(gain.std()) if len(rank) else 0.0, decimals)
    return out


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when asked; CPU always runs fp32."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def scoring_precision(device: torch.device, precision: str):
    """Matmul precision of full-sort scoring on CUDA (CPU is always fp32).

    fp32 (default) ranks exactly as the official fp32 code. tf32 (10-bit mantissa inputs) and bf16
    (8-bit) are faster on tensor cores but round scores, which creates and breaks ties among the
    ~10^5 candidates: rank = 1 + #{score > target} is optimistic on ties, so they can move metrics.
    Use them only after comparing against fp32 on the release at hand."""
    if precision not in PRECISIONS:
        raise ValueError(f"eval precision {precision!r}: expected one of {PRECISIONS}")
    if device.type != "cuda" or precision == "fp32":
        yield
    elif precision == "bf16":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before


def _sorted_coordinates(data: D.Interactions, users: np.ndarray, split: str):
    """history_coordinates of all `users`, sorted by row, and each row's first index (CSR)."""
    rows, items = D.history_coordinates(data, users, split)
    order = np.argsort(rows, kind="stable")
    rows, items = rows[order], items[order]
    offsets = np.searchsorted(rows, np.arange(len(users) + 1))
    return rows, items, offsets


@torch.no_grad()
def score_users(model, data: D.Interactions, split: str, device: torch.device, batch_size: int = 1024,
                rank: int = 0, world: int = 1, precision: str = "fp32",
                scorer=None, pad_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (rank, top-1 item) arrays of length U + 1 (index 0 unused) for this process's users.

    Users not scored by this process hold rank 0 and top-1 0, so summing the arrays of all
    processes gives the whole result. `scorer(batch)` replaces model.full_scores (a compiled
    version); `pad_last` pads the last batch to `batch_size` rows (fixed shapes). `precision`
    is fp32 | tf32 | bf16 (see scoring_precision).

    Every input (histories, targets, the history mask's coordinates) moves to the device once and
    results stay there until the end: no host synchronisation per batch.
    """
    model.eval()
    scorer = scorer or model.full_scores
    users = np.arange(1 + rank, data.n_users + 1, world)
    targets = torch.as_tensor(D.eval_targets(data, split)[users].astype(np.int64), device=device)
    user_ids = torch.as_tensor(users, device=device)
    histories = torch.as_tensor(D.eval_histories(data, users, split), device=device)
    rows, items, offsets = _sorted_coordinates(data, users, split)
    rows, items = torch.as_tensor(rows, device=device), torch.as_tensor(items, device=device)
    rank_out = torch.zeros(len(users), dtype=torch.float64, device=device)
    top1_out = torch.zeros(len(users), dtype=torch.int64, device=device)
    for start in range(0, len(users), batch_size):
        stop = min(start + batch_size, len(users))
        batch = {"user": user_ids[start:stop], "history": histories[start:stop]}
        if pad_last:
            batch, _ = pad_rows(batch, batch_size)
        with scoring_precision(device, precision):
            scores = scorer(batch)[:stop - start]
        lo, hi = offsets[start], offsets[stop]
        r, t = rank_targets(scores, targets[start:stop], rows[lo:hi] - start, items[lo:hi])
        rank_out[start:stop] = r
        top1_out[start:stop] = t
    ranks = np.zeros(data.n_users + 1)
    top1 = np.zeros(data.n_users + 1, dtype=np.int64)
    ranks[users] = rank_out.cpu().numpy()
    top1[users] = top1_out.cpu().numpy()
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
