"""Check kinds for the paper's claims that compare runs by ratio rather than by order.

`ratio`: for each [better, worse] pair of `pairs` that both finished, better's test `metric` must
be at least `at_least` x worse's (PixelNet with a sequential backbone close to its IDNet), or at
most `at_most` x worse's (PixelNet-MF far below MF). Pairs that did not run are listed; the check
is not run when no pair ran.

`flat_groups`: the Figure 7 shape. A model's cold share is its Recall@10 pooled over the `groups`
coldest of the ten target-popularity groups, divided by its Recall@10 over all test users: 1 for a
model as good on cold targets as on average, near 0 for an ID model that never recommends cold
items. `better` must keep a cold share of at least `flat` and at least `worse`'s, each less z
standard errors (a Recall over n cold users has se sqrt(p (1 - p) / n); divided by the overall
Recall, whose own error over all users is much smaller and is neglected).
"""
from __future__ import annotations

import math


def _pooled(groups: list[dict]) -> tuple[float, int]:
    users = sum(g.get("users", 1) for g in groups)
    hits = sum(g["recall@10"] * g.get("users", 1) for g in groups)
    return hits / max(users, 1), users


def cold_share(row, groups: int) -> tuple[float, float, int]:
    """(cold share, its standard error, cold users) of one finished run."""
    all_groups = row.groups["figure7_recall_by_target_popularity"]
    cold, n = _pooled(all_groups[:groups])
    overall, _ = _pooled(all_groups)
    if overall <= 0:
        return 0.0, 0.0, n
    return cold / overall, math.sqrt(cold * (1 - cold) / max(n, 1)) / overall, n


def flat_groups(better, worse, check: dict) -> tuple[bool, str]:
    groups, z, flat = int(check.get("groups", 3)), float(check.get("z", 0.0)), float(check.get("flat", 0.5))
    (bs, bse, bn), (ws, wse, _) = cold_share(better, groups), cold_share(worse, groups)
    flat_ok = bs >= flat - z * bse
    above_ok = bs >= ws - z * math.hypot(bse, wse)
    detail = (f"cold share (Recall@10 on the {groups} coldest groups, {bn} users, / overall): "
              f"{better.name} {bs:.2f} {'>=' if flat_ok else '<'} {flat:.2f} (flat) and "
              f"{'>=' if above_ok else '<'} {worse.name} {ws:.2f}")
    return flat_ok and above_ok, detail


def ratio(pairs: list[tuple], check: dict) -> tuple[bool, str]:
    """`pairs`: (better row, worse row) of the pairs that both finished."""
    metric = check.get("metric", "recall@10")
    parts, ok = [], True
    for better, worse in pairs:
        b, w = better.test[metric], worse.test[metric]
        share = b / w if w > 0 else math.inf
        if "at_least" in check:
            good, bound = share >= float(check["at_least"]), f">= {float(check['at_least']):.2f}"
        else:
            good, bound = share <= float(check["at_most"]), f"<= {float(check['at_most']):.2f}"
        ok &= good
        parts.append(f"{better.name} / {worse.name} {metric} {b:.4f} / {w:.4f} = {share:.2f} "
                     f"({'' if good else 'not '}{bound})")
    return ok, "; ".join(parts)


__all__ = ["cold_share", "flat_groups", "ratio"]
