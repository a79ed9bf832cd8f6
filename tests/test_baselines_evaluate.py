"""Full-ranking metrics against hand-computed rankings: ties, masking, K beyond the catalogue."""
import math

import numpy as np
import pytest
import torch

from pixelrec_data.baselines.data import interactions as D
from pixelrec_data.baselines.evaluation import metrics as E
from trainer_helpers import from_sequences


class FixedScores(torch.nn.Module):
    def __init__(self, table):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def full_scores(self, batch):
        return self.table[batch["user"]]


# 3 users, 5 items (ids 1..5). Sequences: train..., valid, test.
DATA = from_sequences([[1, 2, 3, 4], [5, 1, 2], [3, 4, 3]], n_items=5)
SCORES = np.array([
    [0, 0, 0, 0, 0, 0],             # PAD user
    [9, 5.0, 4.0, 1.0, 2.0, 3.0],   # user 1: train {1,2}, valid 3, test 4
    [9, 1.0, 2.0, 2.0, 2.0, 0.5],   # user 2: train {5}, valid 1, test 2
    [9, 1.0, 1.0, 7.0, 6.0, 5.0],   # user 3: train {3}, valid 4, test 3 (a repeat)
])


def test_ranks_by_hand():
    model = FixedScores(SCORES)
    ranks, top1 = E.score_users(model, DATA, "validation", torch.device("cpu"))
    # user 1: {1,2} masked; 3 scores 1.0 under 5 (3.0) and 4 (2.0) -> rank 3
    # user 2: {5} masked; 1 scores 1.0 under 2, 3, 4 (2.0 each) -> rank 4
    # user 3: {3} masked; 4 scores 6.0, nothing higher after masking -> rank 1
    assert ranks[1:].tolist() == [3, 4, 1]
    assert top1[1:].tolist() == [5, 2, 4]  # PAD (score 9) never wins
    ranks, _ = E.score_users(model, DATA, "test", torch.device("cpu"))
    # user 1: {1,2,3} masked; 4 (2.0) under 5 (3.0) -> 2
    # user 2: {5,1} masked; 2 ties with 3 and 4 at 2.0: only strictly higher scores count -> 1
    # user 3: target 3 is in its history -> masked, a miss
    assert ranks[1:3].tolist() == [2, 1] and math.isinf(ranks[3])


def test_metrics_by_hand_and_k_beyond_catalogue():
    ranks = np.array([3.0, 4.0, 1.0, math.inf])
    m = E.metrics_from_ranks(ranks, topk=(1, 3, 100))
    assert m["recall@1"] == 0.25 and m["recall@3"] == 0.5
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(4) + 1) / 4, abs=1e-7)
    # K larger than the catalogue: every unmasked target is a hit, the masked one never
    assert m["recall@100"] == 0.75
    assert m["ndcg@100"] == pytest.approx((1 / 2 + 1 / math.log2(5) + 1) / 4, abs=1e-7)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_batches_and_strided_ranks_sum_to_the_whole(split):
    rng = np.random.default_rng(0)
    data = from_sequences([list(rng.permutation(40)[:8] + 1) for _ in range(23)], n_items=40)
    model = FixedScores(rng.normal(size=(24, 41)))
    whole, top_whole = E.score_users(model, data, split, torch.device("cpu"), batch_size=1000)
    parts = [E.score_users(model, data, split, torch.device("cpu"), batch_size=4, rank=r, world=3)
             for r in range(3)]
    assert np.array_equal(sum(p[0] for p in parts), whole)
    assert np.array_equal(sum(p[1] for p in parts), top_whole)
    # brute force: rank of the target among unmasked items
    for u in range(1, 24):
        hist = set(data.train_items[data.train_offsets[u]:data.train_offsets[u + 1]].tolist())
        if split == "test":
            hist.add(int(data.valid_item[u]))
        target = int(D.eval_targets(data, split)[u])
        s = model.table[u].numpy()
        allowed = [i for i in range(1, 41) if i not in hist]
        expect = 1 + sum(s[i] > s[target] for i in allowed) if target not in hist else math.inf
        assert whole[u] == expect


def test_popularity_groups():
    data = from_sequences([[1, 2, 3], [1, 2, 4], [1, 3, 2], [2, 3, 1]], n_items=4)
    ranks = np.array([0, 1.0, 20.0, 1.0, 1.0])
    top1 = np.array([0, 1, 1, 2, 4])
    out = E.popularity_groups(data, ranks, top1, n_groups=2)
    groups = out["figure7_recall_by_target_popularity"]
    # popularity: item1 4, item2 4, item3 3, item4 1; test targets: u1 3, u2 4, u3 2, u4 1
    assert [g["users"] for g in groups] == [2, 2]
    assert groups[0]["target_popularity_mean"] == 2.0 and groups[0]["recall@10"] == 0.5
    assert groups[1]["target_popularity_mean"] == 4.0 and groups[1]["recall@10"] == 1.0
    assert out["figure8"]["top1_popularity_mean"] == (4 + 4 + 4 + 1) / 4
