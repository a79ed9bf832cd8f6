"""SR-GNN: its packed form (per-node layers on the real nodes only) against the all-slots form of
RecBole and the official code (every node slot of every session graph through every layer): the
same per-sample losses, gradients, training losses and scores."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelrec_data.baselines.models import model_class
from pixelrec_data.baselines.models.sequential import srgnn
from pixelrec_data.baselines.models.sequential.srgnn import right_align, session_graph
from pixelrec_data.baselines.data import interactions as D
from pixelrec_data.baselines.data.samples import make_samples
from test_baselines_models import add_image_inputs, tiny_config
from trainer_helpers import from_sequences

# float32 with d = 16: a value passes through about 20 layers, each summing at most 2d = 32
# products in another order than the reference (a few ulps, ~1e-7 relative, per sum); the largest
# difference seen is under a tenth of this bound, and a 1e-4 change of one layer's output fails it
RTOL, ATOL = 1e-5, 1e-6


def all_slots_session(model, seq):
    """The session representation with every node slot through every layer (the official form)."""
    seq = right_align(seq)
    nodes, alias, a = session_graph(seq)
    gnn, hidden, n = model.gnn, model.item_embedding(nodes), a.shape[1]
    for _ in range(gnn.steps):
        msg_in = a[:, :, :n] @ gnn.edge_in(hidden) + gnn.bias_in
        msg_out = a[:, :, n:] @ gnn.edge_out(hidden) + gnn.bias_out
        gi = F.linear(torch.cat([msg_in, msg_out], 2), gnn.w_ih, gnn.b_ih)
        gh = F.linear(hidden, gnn.w_hh, gnn.b_hh)
        i_r, i_i, i_n = gi.chunk(3, 2)
        h_r, h_i, h_n = gh.chunk(3, 2)
        reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_i + h_i)
        new = torch.tanh(i_n + reset * h_n)
        hidden = (1 - update) * hidden + update * new
    seq_hidden = hidden.gather(1, alias[..., None].expand(-1, -1, hidden.shape[-1]))
    mask = (seq != 0).float()
    last = (mask.sum(1).long() - 1).clamp(min=0)
    ht = seq_hidden[torch.arange(len(seq)), last]
    alpha = model.w_three(torch.sigmoid(model.w_one(ht)[:, None] + model.w_two(seq_hidden)))
    return model.transform(torch.cat([(alpha * seq_hidden * mask[..., None]).sum(1), ht], dim=1))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    lengths = rng.choice([3, 4, 7, 12, 25], size=30)
    # 12 items only: sessions repeat items and close cycles (merged nodes, 2-way edges)
    return from_sequences([list(rng.integers(1, 13, size=n)) for n in lengths], n_items=12)


def twin_models(name, data):
    """Two models with equal weights: the packed form and the all-slots form."""
    config = add_image_inputs(tiny_config(name), data)
    torch.manual_seed(0)
    packed = model_class(name)(config, data)
    torch.manual_seed(0)
    reference = model_class(name)(config, data)
    reference.session = lambda seq: all_slots_session(reference, seq)
    return packed, reference


def batches(data, count, size=16):
    samples = make_samples("prefix", data)
    rng = np.random.default_rng(1)
    for _ in range(count):
        index = rng.choice(len(samples), size=size, replace=False)
        yield {k: torch.as_tensor(v) for k, v in samples.batch(index, rng).items()}


def assert_close(got, want, what):
    diff = (got - want).abs()
    bad = diff > ATOL + RTOL * want.abs()
    assert not bad.any(), f"{what}: {int(bad.sum())} of {bad.numel()} differ, largest {diff.max():.3g}"


@pytest.mark.parametrize("name, pack", [("srgnn", True), ("pixelnet_srgnn", True), ("srgnn", False)])
def test_packed_losses_and_gradients_equal_the_all_slots_form(name, pack, data, monkeypatch):
    assert srgnn.packs_rows(torch.zeros(1, 10))  # CPU eager packs; CUDA and compiled runs do not
    monkeypatch.setattr(srgnn, "packs_rows", lambda seq: pack)
    packed, reference = twin_models(name, data)
    for batch in batches(data, 4):
        losses = [model(batch) for model in (packed, reference)]
        assert_close(losses[0], losses[1], "per-sample loss")
        for model, loss in zip((packed, reference), losses):
            model.zero_grad()
            loss.sum().backward()
        for (key, a), (_, b) in zip(packed.named_parameters(), reference.named_parameters()):
            if a.grad is not None or b.grad is not None:
                assert_close(a.grad, b.grad, f"gradient of {key}")


def test_training_gives_the_same_loss_per_batch(data):
    packed, reference = twin_models("srgnn", data)
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (packed, reference)]
    trace = []
    for batch in batches(data, 8):
        step = []
        for model, optimizer in zip((packed, reference), optimizers):
            loss = model(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step.append(loss.detach())
        trace.append(torch.stack(step))
    trace = torch.stack(trace)
    assert_close(trace[:, 0], trace[:, 1], "mean loss per batch")
    assert (trace[0] - trace[-1]).abs().max() > 1e-4  # the weights moved: a real trajectory


def test_scores_equal_the_all_slots_form_and_an_empty_history_is_kept(data):
    packed, reference = twin_models("srgnn", data)
    users = np.arange(1, data.n_users + 1)
    history = torch.as_tensor(D.eval_histories(data, users, "test"))
    history[0] = 0  # a session without any item: represented by its PAD node, as before
    with torch.no_grad():
        got = packed.full_scores({"user": torch.as_tensor(users), "history": history})
        want = reference.full_scores({"user": torch.as_tensor(users), "history": history})
    assert_close(got, want, "full scores")
    assert torch.isfinite(got[0]).all() and got[0].abs().sum() > 0
