"""ViNet models over frozen features: VisRank, VBPR, ACF (as in the paper's official code), on tiny in-memory data."""
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pixelrec_data.baselines.data import interactions as D
from pixelrec_data.baselines.evaluation import metrics as E
from pixelrec_data.baselines.data.samples import make_samples
from pixelrec_data.baselines.models.vinet.acf import ACF
from pixelrec_data.baselines.models.vinet.vbpr import VBPR
from pixelrec_data.baselines.models.vinet.visrank import VisRank
from trainer_helpers import from_sequences

BASE = Path(__file__).resolve().parent.parent / "pixelrec_data" / "baselines"
N_ITEMS = 30


def config(name, **overrides):
    cfg = yaml.safe_load((BASE / "configs" / "overall.yaml").read_text())
    cfg.update(yaml.safe_load((BASE / "configs" / f"{name}.yaml").read_text()))
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return from_sequences([list(rng.permutation(np.arange(1, N_ITEMS + 1))[:int(rng.integers(4, 25))])
                             for _ in range(12)], N_ITEMS)


def features(shape, seed=0):
    feats = np.random.default_rng(seed).normal(size=(N_ITEMS + 1, *shape)).astype(np.float32)
    feats[0] = 0
    return feats


def eval_batch(data, users, split):
    users = np.asarray(users)
    return {"user": torch.as_tensor(users),
            "history": torch.as_tensor(D.eval_histories(data, users, split).astype(np.int64))}


def train_batch(model, data, n=8):
    samples = make_samples(model.train_format, data)
    batch = samples.batch(np.arange(min(n, len(samples))), np.random.default_rng(0))
    return {k: torch.as_tensor(np.asarray(v, dtype=np.int64)) for k, v in batch.items()}


def test_position_samples_carry_each_samples_window_user(data):
    samples = make_samples("position", data)
    index = np.array([3, 0, 5])
    batch = samples.batch(index, np.random.default_rng(0))
    rows = samples.rows[index]
    want = np.repeat(samples.users[index], (rows != 0).sum(1))
    np.testing.assert_array_equal(batch["user"], want)
    for k, user in enumerate(batch["user"]):  # each sample's target is in its user's history
        history = data.train_items[data.train_offsets[user]:data.train_offsets[user + 1]]
        assert batch["pos"][k] in history


def full_history(data, user, split):
    items = list(data.train_items[data.train_offsets[user]:data.train_offsets[user + 1]])
    return items + ([int(data.valid_item[user])] if split == "test" else [])


@pytest.mark.parametrize("split", ["validation", "test"])
def test_visrank_is_max_cosine_over_the_last_h_history_items(data, split):
    feats = features((6,))
    model = VisRank(config("visrank", feature_array=feats, history_length=5), data)
    users = np.arange(1, data.n_users + 1)
    scores = model.full_scores(eval_batch(data, users, split))
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    for row, u in enumerate(users):
        hist = full_history(data, u, split)[-5:]
        want = (unit[hist] @ unit.T).max(0)
        np.testing.assert_allclose(scores[row].numpy(), want, rtol=1e-5, atol=1e-6)


def test_visrank_ranks_a_visually_similar_target_first(data):
    feats = features((6,), seed=3)
    user = 1
    last = full_history(data, user, "validation")[-1]
    target = int(data.valid_item[user])
    feats[target] = feats[last] * 2  # the target looks like the most recent item
    model = VisRank(config("visrank", feature_array=feats), data)
    ranks, _ = E.score_users(model, data, "validation", torch.device("cpu"), batch_size=5)
    assert ranks[user] == 1


def test_vbpr_score_is_mf_plus_visual_term_and_groups_split_on_projection(data):
    feats = features((10,))
    model = VBPR(config("vbpr", feature_array=feats, embedding_size=8), data)
    batch = eval_batch(data, [2, 5], "validation")
    u, i = 5, 7
    f = torch.as_tensor(feats[i])
    want = (model.user_gamma.weight[u] @ model.item_gamma.weight[i]
            + model.user_theta.weight[u] @ (model.visual_projection.weight @ f)
            + model.visual_bias_projection.weight[0] @ f)
    full = model.full_scores(batch)
    torch.testing.assert_close(full[1, i], want, rtol=1e-5, atol=1e-5)
    items = torch.tensor([[1, 7, 30], [4, 4, 9]])
    torch.testing.assert_close(model.score_items(batch, items), full.gather(1, items), rtol=1e-5, atol=1e-5)
    groups = model.param_groups(model.config)
    modal = {id(p) for p in groups[1]["params"]}
    assert modal == {id(model.visual_projection.weight), id(model.visual_bias_projection.weight)}
    assert groups[1]["lr"] == 1e-4 and groups[1]["weight_decay"] == 0.1 and groups[0]["lr"] == 1e-3
    assert "features" not in model.state_dict()  # the frozen features are not checkpointed


def test_acf_attention_ignores_pads_and_scores_are_consistent(data):
    feats = features((2, 2, 12))
    model = ACF(config("acf", feature_array=feats, embedding_size=8, half_features=False), data).eval()
    batch = eval_batch(data, [1, 2, 3], "validation")
    full = model.full_scores(batch)
    items = torch.tensor([[1, 2, 3]] * 3)
    torch.testing.assert_close(model.score_items(batch, items), full.gather(1, items))
    # PAD features do not matter: the PAD slot is masked out of both attentions
    changed = feats.copy()
    changed[0] = 5.0
    other = ACF(config("acf", feature_array=changed, embedding_size=8, half_features=False), data).eval()
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other.full_scores(batch), full)


@pytest.mark.parametrize("name", ["vbpr", "acf"])
def test_training_steps_lower_the_loss(data, name):
    cls, shape = {"vbpr": (VBPR, (10,)), "acf": (ACF, (2, 2, 12))}[name]
    torch.manual_seed(0)
    model = cls(config(name, feature_array=features(shape), embedding_size=8), data)
    opt = torch.optim.AdamW(model.param_groups(model.config) if name == "vbpr" else
                            [{"params": model.parameters(), "lr": 1e-2}])
    batch = train_batch(model, data)
    losses = []
    for _ in range(20):
        loss = model.loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_acf_without_user_ids_says_so(data):
    model = ACF(config("acf", feature_array=features((2, 2, 12)), embedding_size=8), data)
    batch = train_batch(model, data)
    del batch["user"]
    with pytest.raises(ValueError, match="user id"):
        model.loss(batch)
