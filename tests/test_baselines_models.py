"""Every registered model: a few training steps with finite loss, and full-sort scores equal to
the scores of the same (user, item) pairs through its training-time scoring path."""
import numpy as np
import pytest
import torch

from pixelrec_data.baselines.data import interactions as D
from pixelrec_data.baselines.config import resolve_config
from pixelrec_data.baselines.models import available, model_class
from pixelrec_data.baselines.data.samples import make_samples
from trainer_helpers import from_sequences

# tiny sizes for every model (keys a model does not have are skipped)
TINY = {"embedding_size": 16, "n_heads": 2, "hidden_size": 1, "n_layers": 1, "step": 1,
        "block_num": 1, "k_interests": 2}


def tiny_config(name):
    config = resolve_config(name)
    config.update({k: v for k, v in TINY.items() if k in config})
    config["learning_rate"] = 1e-2
    return config


def add_image_inputs(config, data):
    """Image models read in-memory pixels / features instead of a release's image cache or feature
    file (their own tests train them from a release: tests/test_pixelnet_train.py)."""
    rng = np.random.default_rng(2)
    if "encoder" in config:  # PixelNet: a tiny tower over random uint8 covers
        config.update(encoder="tiny-vit", tune_layers=1, pixel_array=rng.integers(
            0, 256, (data.item_num, 32, 32, 3), dtype=np.uint8))
    if "features" in config:  # ViNet: random frozen features (ACF: a 2x2 spatial map)
        shape = (2, 2, 12) if config["model"] == "acf" else (12,)
        config["feature_array"] = rng.normal(size=(data.item_num, *shape)).astype(np.float32)
    return config


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    lengths = rng.choice([3, 5, 9, 14, 26], size=40)
    return from_sequences([list(rng.permutation(30)[:n] + 1) for n in lengths], n_items=30)


@pytest.mark.parametrize("name", available())
def test_model_trains_and_full_sort_equals_pairwise(name, data):
    torch.manual_seed(0)
    config = add_image_inputs(tiny_config(name), data)
    cls = model_class(name)
    model = cls(config, data)
    if cls.train_format is not None:
        samples = make_samples(cls.train_format, data, **model.sample_options())
        optimizer = torch.optim.AdamW(model.param_groups(config))
        rng = np.random.default_rng(0)
        first = None
        for step in range(6):
            index = rng.choice(len(samples), size=min(16, len(samples)), replace=False)
            batch = {k: torch.as_tensor(v) for k, v in samples.batch(index, rng).items()}
            loss = model(batch)
            assert loss.ndim == 1 and torch.isfinite(loss).all(), (name, step)
            optimizer.zero_grad()
            loss.mean().backward()
            optimizer.step()
            first = loss.mean().item() if first is None else first
    model.eval()
    users = np.arange(1, data.n_users + 1)
    with torch.no_grad():
        for split in ("validation", "test"):
            batch = {"user": torch.as_tensor(users),
                     "history": torch.as_tensor(D.eval_histories(data, users, split))}
            full = model.full_scores(batch)
            assert full.shape == (data.n_users, data.item_num)
            items = torch.as_tensor(np.random.default_rng(1).integers(1, data.item_num, (data.n_users, 4)))
            pairwise = model.score_items(batch, items)
            torch.testing.assert_close(full.gather(1, items), pairwise, rtol=1e-4, atol=1e-4)


def reference_session_graph(seq, n):
    """RecBole's SR-GNN _get_slice for one right-padded sequence, as a loop."""
    node = np.unique(seq)
    nodes = node.tolist() + (n - len(node)) * [0]
    a = np.zeros((n, n))
    for i in range(len(seq) - 1):
        if seq[i + 1] == 0:
            break
        a[np.where(node == seq[i])[0][0]][np.where(node == seq[i + 1])[0][0]] = 1
    s_in = a.sum(0)
    s_in[s_in == 0] = 1
    s_out = a.sum(1)
    s_out[s_out == 0] = 1
    full = np.concatenate([a / s_in, (a.T / s_out)]).T
    alias = [np.where(node == i)[0][0] for i in seq]
    return nodes, alias, full


def test_srgnn_session_graph_equals_reference():
    from pixelrec_data.baselines.models.sequential.srgnn import right_align, session_graph
    rng = np.random.default_rng(0)
    left = np.zeros((50, 10), dtype=np.int64)
    for row in left:
        n = rng.integers(1, 11)
        row[10 - n:] = rng.integers(1, 6, size=n)  # few distinct ids: repeats and cycles
    right = right_align(torch.as_tensor(left)).numpy()
    nodes, alias, adjacency = session_graph(torch.as_tensor(right))
    for r in range(len(left)):
        real = left[r][left[r] != 0]
        assert right[r].tolist() == real.tolist() + [0] * (10 - len(real))
        ref_nodes, ref_alias, ref_a = reference_session_graph(right[r], 10)
        assert nodes[r].tolist() == ref_nodes and alias[r].tolist() == ref_alias
        np.testing.assert_allclose(adjacency[r].numpy(), ref_a, rtol=1e-6)


@pytest.mark.parametrize("name", ["nextitnet", "pixelnet_nextitnet"])
def test_nextitnet_final_layer_is_recboles_linear_and_is_trained(name, data):
    torch.manual_seed(0)
    config = add_image_inputs({**tiny_config(name), "final_layer": True}, data)
    model = model_class(name)(config, data)
    layer = model.final_layer
    assert isinstance(layer, torch.nn.Linear) and layer.weight.shape == (16, 16)
    assert torch.all(layer.bias == 0.1)
    samples = make_samples(model.train_format, data, **model.sample_options())
    batch = {k: torch.as_tensor(v) for k, v in samples.batch(np.arange(8), np.random.default_rng(0)).items()}
    seq = batch["pos"][:, :-1]  # the SEQ window's inputs
    hidden = model.blocks(model.item_embedding(seq))
    torch.testing.assert_close(model.encode(seq), hidden @ layer.weight.T + layer.bias)
    model(batch).mean().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    plain = model_class(name)(add_image_inputs(tiny_config(name), data), data)
    assert not any("final_layer" in n for n, _ in plain.named_parameters())
    torch.testing.assert_close(plain.encode(seq), plain.blocks(plain.item_embedding(seq)))


def test_param_group_rules(data):
    config = tiny_config("sasrec")
    config["param_groups"] = [{"name_contains": "item_embedding", "learning_rate": 0.5,
                               "weight_decay": 0.0}]
    model = model_class("sasrec")(config, data)
    groups = model.param_groups(config)
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.5, 0.0), (1e-2, 0.1)]
    assert groups[0]["params"] == [model.item_embedding.weight]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize("name", ["sasrec", "mf", "bert4rec", "srgnn", "lightgcn", "dssm"])
def test_softmax_loss_option_trains(name, data):
    torch.manual_seed(0)
    config = {**tiny_config(name), "loss": "ce"}
    cls = model_class(name)
    model = cls(config, data)
    samples = make_samples(cls.train_format, data, **model.sample_options())
    optimizer = torch.optim.AdamW(model.param_groups(config))
    losses = []
    for _ in range(8):  # the same batch (same masks, negatives) each step: the loss must fall
        index = np.arange(min(32, len(samples)))
        batch = {k: torch.as_tensor(v) for k, v in samples.batch(index, np.random.default_rng(0)).items()}
        loss = model(batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
