"""Shared tiny fixtures and helpers for the PixelNet model tests (imported by test_pixelnet_models.py
and test_pixelnet_backbones.py; pytest picks up fixtures imported into a test module)."""
import numpy as np
import pytest

from pixelrec_data.baselines import data as D

N_ITEMS = 20


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return D.from_sequences([list(rng.permutation(np.arange(1, N_ITEMS + 1))[:int(rng.integers(5, 14))])
                             for _ in range(10)], N_ITEMS)


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(1).integers(0, 256, (N_ITEMS + 1, 32, 32, 3), dtype=np.uint8)


def grads(model, batch):
    """One training step's loss and the gradient of every parameter that received one."""
    model.train()
    model.zero_grad()
    loss = model.loss(batch).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
