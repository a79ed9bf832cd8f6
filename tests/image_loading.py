"""Test helpers over the image cache: a map-style dataset of its rows and DataLoaders seeded for
determinism (the trainer batches the cache itself; these check that the cache feeds torch's
DataLoader the same way on every run)."""
from __future__ import annotations

import random

import numpy as np


class CoverDataset:
    """Map-style dataset (for torch DataLoader): item i -> (its cache row, its image tensor)."""

    def __init__(self, cache, rows=None, normalize: str | None = "official"):
        self.cache, self.normalize = cache, normalize
        self.rows = np.arange(len(cache)) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = int(self.rows[i])
        return row, self.cache.tensor([row], self.normalize)[0]


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: numpy and random follow torch's per-worker seed (base seed + worker id)."""
    import torch

    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def seeded_loader(dataset, batch_size: int, seed: int, shuffle: bool = True, num_workers: int = 0,
                  **kwargs):
    """A DataLoader whose batches (order and any per-worker randomness) depend only on `seed`."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       num_workers=num_workers, generator=generator,
                                       worker_init_fn=seed_worker, **kwargs)
