"""Reading a prepared image cache (see cache.py for its layout): memory-mapped rows as numpy or
normalised torch tensors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from schemas.errors import InputError

from .cache import PLACEHOLDER, cache_files

# mean, std per channel for tensor(normalize=...)
NORMALIZATIONS = {
    "official": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # the PixelRec code: ToTensor + Normalize(0.5, 0.5)
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class ImageCache:
    """A prepared cache of one release, opened read-only and memory-mapped (cheap to pickle)."""

    def __init__(self, release, size: int = 224, mode: str = "squash"):
        self.release = Path(release)
        self.size, self.mode = size, mode
        self.files = cache_files(self.release, size, mode)
        if not self.files["meta"].exists() or not self.files["array"].exists():
            raise InputError(f"{self.files['array']}: no image cache; run `pixelrec prepare-images "
                             f"--release {self.release} --size {size} --mode {mode}`")
        index = pq.read_table(self.files["index"], columns=["item_id", "status"])
        self.item_ids = index.column("item_id").to_pylist()
        self.status = index.column("status").to_pylist()
        self._row_of = {item: row for row, item in enumerate(self.item_ids)}
        self._array = None

    def __len__(self):
        return len(self.item_ids)

    def __getstate__(self):  # DataLoader workers reopen the memmap instead of pickling pixels
        return {**self.__dict__, "_array": None}

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.files["array"], mmap_mode="r")
        return self._array

    def rows(self, item_ids) -> np.ndarray:
        """Cache rows of item ids (InputError for an id the cache does not hold)."""
        try:
            return np.fromiter((self._row_of[i] for i in item_ids), dtype=np.int64)
        except KeyError as exc:
            raise InputError(f"{self.files['index']}: no item {exc.args[0]!r}; rerun prepare-images "
                             f"if items changed") from None

    def numpy(self, rows) -> np.ndarray:
        """uint8 [B, S, S, 3]; row -1 (PAD) gives the placeholder image."""
        rows = np.asarray(rows, dtype=np.int64)
        out = self.array[np.clip(rows, 0, None)]
        out[rows < 0] = PLACEHOLDER
        return out

    def tensor(self, rows, normalize: str | None = "official", channels_first: bool = True,
               device=None):
        """torch tensor of rows, [B,3,S,S] (or [B,S,S,3] with channels_first=False): uint8 when
        normalize is None, else float32 normalised ('official' 0.5/0.5, 'clip', 'imagenet'); PAD
        rows (-1) are all zeros after normalisation, as the official code feeds PAD slots.
        With `device` (e.g. 'cuda') the uint8 pixels move first and are normalised there."""
        import torch

        rows = np.asarray(rows, dtype=np.int64)
        pixels = torch.from_numpy(self.numpy(rows))
        if device is not None:
            pixels = pixels.to(device, non_blocking=True)
        if channels_first:  # permute while still uint8: a quarter of the bytes to move
            pixels = pixels.permute(0, 3, 1, 2).contiguous()
        if normalize is None:
            return pixels
        if normalize not in NORMALIZATIONS:
            raise InputError(f"normalize={normalize!r}: expected one of {', '.join(NORMALIZATIONS)} or None")
        mean, std = (torch.tensor(v, dtype=torch.float32, device=pixels.device)
                     for v in NORMALIZATIONS[normalize])
        shape = (1, 3, 1, 1) if channels_first else (1, 1, 1, 3)
        # (x / 255 - mean) / std as one multiply-add per element
        scale, shift = (1.0 / (255.0 * std)).view(shape), (-mean / std).view(shape)
        out = pixels.float().mul_(scale).add_(shift)
        out[torch.from_numpy(rows < 0).to(out.device)] = 0.0
        return out
