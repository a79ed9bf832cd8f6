"""PixelNet's item encoder: item ids -> embeddings [..., d] from raw uint8 pixels.

`ItemImageEncoder` replaces a backbone's `Embedding(item_num, d)`: `emb = item_encoder(ids)` for
any id shape, and `item_encoder.encode_all()` for the candidate table at evaluation. Pixels come
from the prepared image cache (a uint8 [R, S, S, 3] array, memory-mapped, indexed through `rows`),
so no JPEG is decoded per step. PAD (id `pad_id`, 0) and items without a cover (row -1) are the
all-zero *normalised* image, as the official code (a mid-grey input that is still encoded).

Cost optimisations, each exact (tests/test_pixelnet.py compares loss and gradients with the plain
end-to-end path):
(a) dedup: each distinct id of a call is encoded once (torch.unique + an inverse gather; gradients
    of repeated items add up in the gather's backward, exactly as they would across copies).
    Exact for towers without batch-coupled layers (ViT; ResNets with the tuned BatchNorms in train
    mode see different batch statistics, as they would with any other batch composition).
(b) trunk cache (`trunk_cache='device'|'host'|'mmap'`): with a frozen trunk and no augmentation
    (this module has none) the trunk output is a fixed function of the item; it is computed once
    per item, on first use or by `prefill()`, kept on the device, in host memory or in a
    memory-mapped file, in fp32 (exact) or bf16 (`cache_dtype`, half the memory, not bit-exact),
    and only the tuned blocks run per step.
(c) CLS-only last block: see encoders.cls_only_block (on when the method reads token 0 only).
(d) evaluation: in eval mode the first lookup (or `all()`) encodes the whole catalogue once
    (`encode_all(batch_size)`); every later lookup and the candidate table reuse that table until
    the module is put back into training mode (the trainer calls model.eval() per evaluation).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelrec_data.baselines.encoders import ImageEncoder

CACHE_PLACES = ("none", "device", "host", "mmap")


class PixelSource:
    """uint8 pixels by item id: `pixels[rows[id]]`; rows[id] = -1 means 'no image' (PAD).

    `ones_id` (PixelNet BERT4Rec's [MASK] id) is the all-ones image: the encoder's input tensor
    is 1 everywhere (after normalisation), as the official MOBERT4Rec feeds masked and PAD slots.
    """

    def __init__(self, pixels, rows=None, pad_id: int | None = 0, ones_id: int | None = None):
        self.pixels = pixels  # np.ndarray / np.memmap / torch uint8 tensor [R, S, S, 3]
        n = len(pixels)
        rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if pad_id is not None and pad_id < len(rows):
            rows = rows.copy()
            rows[pad_id] = -1
        self.rows = rows
        self.ones_id = ones_id
        self.n_items = len(rows)
        self.size = tuple(pixels.shape[1:3])

    def __call__(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (any device) -> (uint8 [n, S, S, 3] on CPU, bool [n] 'is blank')."""
        rows = self.rows[ids.detach().cpu().numpy()]
        blank = rows < 0
        safe = np.where(blank, 0, rows)
        if isinstance(self.pixels, torch.Tensor):
            out = self.pixels[torch.from_numpy(safe)]
        else:  # memmap: read rows in ascending order, then put them back in the asked order
            order = np.argsort(safe, kind="stable")
            out_np = np.empty((len(safe), *self.pixels.shape[1:]), dtype=np.uint8)
            out_np[order] = self.pixels[safe[order]]
            out = torch.from_numpy(out_np)
        return out, torch.from_numpy(blank)


class TrunkCache:
    """Per-item store of the frozen trunk output, filled on demand."""

    def __init__(self, n_items, item_shape, place="device", dtype=torch.float32, device="cpu",
                 path=None):
        if place not in CACHE_PLACES[1:]:
            raise ValueError(f"trunk cache place must be one of {CACHE_PLACES[1:]}")
        self.place, self.dtype, self.device = place, dtype, torch.device(device)
        shape = (n_items, *item_shape)
        if place == "device":
            self.store = torch.empty(shape, dtype=dtype, device=self.device)
        elif place == "host":
            self.store = torch.empty(shape, dtype=dtype, pin_memory=torch.cuda.is_available())
        else:
            self.store = _memmap_tensor(path, shape, dtype)
        self.filled = torch.zeros(n_items, dtype=torch.bool)

    @property
    def nbytes(self) -> int:
        return self.store.numel() * self.store.element_size()

    def get(self, ids: torch.Tensor, compute) -> torch.Tensor:
        """Trunk outputs for `ids` (unique ids), computing those not stored yet with compute(ids)."""
        cpu_ids = ids.detach().cpu()
        missing = cpu_ids[~self.filled[cpu_ids]]
        if len(missing):
            values = compute(missing.to(ids.device))
            self.store[missing.to(self.store.device)] = values.to(self.store.device, self.dtype)
            self.filled[missing] = True
        got = self.store[cpu_ids.to(self.store.device)]
        return got.to(ids.device, non_blocking=True)


def _memmap_tensor(path, shape, dtype) -> torch.Tensor:
    if path is None:
        raise ValueError("trunk_cache='mmap' needs cache_path")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # numpy has no bfloat16: keep its bits as int16 and view them back as bf16 in torch
    np_dtype = {torch.float32: np.float32, torch.bfloat16: np.int16, torch.float16: np.float16}[dtype]
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np_dtype, shape=shape)
    tensor = torch.from_numpy(arr)
    return tensor.view(torch.bfloat16) if dtype == torch.bfloat16 else tensor


class ItemImageEncoder(nn.Module):
    def __init__(self, encoder: ImageEncoder, source: PixelSource, dedup: bool = True,
                 trunk_cache: str = "none", cache_dtype: torch.dtype = torch.float32,
                 cache_path=None, chunk: int = 256, eval_batch: int = 256):
        super().__init__()
        if trunk_cache not in CACHE_PLACES:
            raise ValueError(f"trunk_cache must be one of {CACHE_PLACES}")
        if trunk_cache != "none" and encoder.config.tune_layers == "all":
            raise ValueError("a trunk cache needs a frozen trunk (tune_layers != 'all')")
        self.encoder = encoder
        self.source = source
        self.dedup = dedup
        self.trunk_cache, self.cache_dtype, self.cache_path = trunk_cache, cache_dtype, cache_path
        self.chunk, self.eval_batch = chunk, eval_batch
        self._cache: TrunkCache | None = None
        self._table: torch.Tensor | None = None

    @property
    def n_items(self) -> int:
        return self.source.n_items

    @property
    def device(self) -> torch.device:
        return self.encoder.pixel_mean.device

    def train(self, mode: bool = True):
        self._table = None  # weights may change: the evaluation table is stale
        return super().train(mode)

    # ---- pixels ---------------------------------------------------------------------------------
    def images(self, ids: torch.Tensor) -> torch.Tensor:
        """Normalised float images [n, 3, H, W] on the encoder's device; blank ids are all-zero,
        the source's `ones_id` all-one."""
        pixels, blank = self.source(ids)
        x = self.encoder.normalise(pixels.to(self.device, non_blocking=True))
        x = x.masked_fill(blank.to(self.device).view(-1, 1, 1, 1), 0.0)
        if self.source.ones_id is not None:
            x = x.masked_fill((ids.to(self.device) == self.source.ones_id).view(-1, 1, 1, 1), 1.0)
        return x

    # ---- encoding -------------------------------------------------------------------------------
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not self.training:  # evaluation: the catalogue table, encoded once, serves every lookup
            table = self.all()
            return table[ids.to(table.device)]
        flat = ids.reshape(-1)
        if self.dedup:
            unique, inverse = torch.unique(flat, return_inverse=True)
            emb = self.encode(unique)[inverse]
        else:
            emb = self.encode(flat)
        return emb.view(*ids.shape, emb.shape[-1])

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Embeddings of `ids` (1-D), one row per id, through the cache when there is one."""
        if self.trunk_cache == "none":
            return self.encoder(self.images(ids))
        trunk = self._trunk_cache().get(ids, self._trunk_outputs)
        compute_dtype = self.encoder.pixel_mean.dtype
        return self.encoder.tuned_forward(trunk.to(compute_dtype))

    @torch.no_grad()
    def _trunk_outputs(self, ids: torch.Tensor) -> torch.Tensor:
        parts = []
        for chunk in ids.split(self.chunk):
            h = self.encoder.frozen_forward(self.images(chunk))
            parts.append(self.encoder.cacheable_output(h))
        return torch.cat(parts)

    def _trunk_cache(self) -> TrunkCache:
        if self._cache is None:
            probe = self._trunk_outputs(torch.zeros(1, dtype=torch.long, device=self.device))
            self._cache = TrunkCache(self.n_items, tuple(probe.shape[1:]), self.trunk_cache,
                                     self.cache_dtype, self.device, self.cache_path)
        return self._cache

    def prefill(self, batch_size: int = 256, progress=None) -> None:
        """Compute the trunk output of every item now (otherwise it fills on first use)."""
        if self.trunk_cache == "none":
            return
        cache = self._trunk_cache()
        for start in range(0, self.n_items, batch_size):
            ids = torch.arange(start, min(start + batch_size, self.n_items), device=self.device)
            cache.get(ids, self._trunk_outputs)
            if progress is not None:
                progress.update(len(ids))

    @torch.no_grad()
    def encode_all(self, batch_size: int = 256) -> torch.Tensor:
        """The [n_items, d] table (row = item id, PAD included), encoded once; kept while in eval."""
        was_training = self.training
        self.eval()
        table = torch.cat([self.encode(torch.arange(s, min(s + batch_size, self.n_items),
                                                    device=self.device))
                           for s in range(0, self.n_items, batch_size)])
        if was_training:
            self.train()
        else:
            self._table = table
        return table

    def all(self, batch_size: int | None = None) -> torch.Tensor:
        """The candidate table: reused within one evaluation (eval mode), recomputed otherwise."""
        if self._table is not None and not self.training:
            return self._table
        return self.encode_all(batch_size or self.eval_batch)

    def describe(self) -> dict:
        info = self.encoder.describe()
        info.update({"dedup": self.dedup, "trunk_cache": self.trunk_cache,
                     "cache_dtype": str(self.cache_dtype).replace("torch.", ""),
                     "cache_bytes": self._cache.nbytes if self._cache is not None else None})
        return info

    def close(self):
        """Drop the cache (a memory-mapped cache file is removed)."""
        had_file = self._cache is not None and self.trunk_cache == "mmap" and self.cache_path
        self._cache = None
        if had_file and os.path.exists(self.cache_path):
            os.remove(self.cache_path)
