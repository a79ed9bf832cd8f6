"""Torch-side readers of a prepared image cache for tests: a map-style dataset over its rows and
DataLoaders seeded for determinism."""
import numpy as np

from pixelrec_data.baselines.image_cache import ImageCache, seed_worker


class CoverDataset:
    """Map-style dataset (for torch DataLoader): item i -> (its cache row, its image tensor)."""

    def __init__(self, cache: ImageCache, rows=None, normalize: str | None = "official"):
        self.cache, self.normalize = cache, normalize
        self.rows = np.arange(len(cache)) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = int(self.rows[i])
        return row, self.cache.tensor([row], self.normalize)[0]


def seeded_loader(dataset, batch_size: int, seed: int, shuffle: bool = True, num_workers: int = 0,
                  **kwargs):
    """A DataLoader whose batches (order and any per-worker randomness) depend only on `seed`."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       num_workers=num_workers, generator=generator,
                                       worker_init_fn=seed_worker, **kwargs)
