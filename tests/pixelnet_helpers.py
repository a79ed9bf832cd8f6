"""Shared tiny fixtures and helpers for the PixelNet model tests (imported by test_pixelnet_models.py
and test_pixelnet_backbones.py; pytest picks up fixtures imported into a test module)."""
import numpy as np
import pytest

from trainer_helpers import from_sequences

N_ITEMS = 20


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return from_sequences([list(rng.permutation(np.arange(1, N_ITEMS + 1))[:int(rng.integers(5, 14))])
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


def accumulation_terms(model, batch) -> int:
    """How many float32 roundings two exact-in-reals paths may order differently in one gradient
    entry: every id slot of the batch adds a per-slot contribution (gathered in another order), each
    the result of dot products as wide as the widest weight (grouped differently when an item is
    encoded once or slot by slot). The product, not the sum, covers the cancellation that leaves a
    gradient entry smaller than its summands; a real error (a lost or doubled slot) is O(1)."""
    return slot_count(batch) * max(int(p.shape[-1]) for p in model.parameters() if p.dim() > 1)


def slot_count(batch) -> int:
    values = batch.values() if isinstance(batch, dict) else [batch]
    return sum(int(v.numel()) for v in values)


def assert_close_by_arithmetic(got, want, terms: int, name: str, scale: float | None = None) -> None:
    """|got - want| <= terms x u x scale elementwise: the classic bound on reordering a float32 sum
    of `terms` terms (u = 2^-24, the unit roundoff) is relative to the sum of the summands' sizes,
    not to the result (summands of both signs cancel). `scale` stands for that size: by default the
    tensor's largest value; callers comparing gradients pass the model's largest gradient, since
    every parameter's gradient sums the same upstream factors. The failure message gives the sizes."""
    u = 2.0 ** -24
    scale = max(float(want.abs().max()), scale or 0.0, 1e-30)
    error = float((got - want).abs().max())
    bound = terms * u * scale
    assert error <= bound, (f"{name}: max |difference| {error:.3e} > bound {bound:.3e} "
                            f"({terms} terms x u {u:.2e} x scale {scale:.3e}; ratio {error / bound:.2f})")


def largest(gradients: dict) -> float:
    """The largest gradient value of a model (the scale of its gradient sums' summands)."""
    return max(float(g.abs().max()) for g in gradients.values())
