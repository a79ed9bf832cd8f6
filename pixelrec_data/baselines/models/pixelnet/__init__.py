"""PixelNet: a recommender whose item embedding is a trainable image encoder over raw pixels.

- `item_encoder`: `ItemImageEncoder` (image encoder + the dense "dimension transformation layer")
  and `PixelSource` (where an item's pixels come from: the uint8 cache or a batch);
- `models`: the shared PixelNet machinery (`PixelNetMixin`) and PixelNet SASRec, MF and BERT4Rec;
- `backbones`: PixelNet GRU4Rec, NextItNet, SRGNN, LightSANs, FM and DSSM.
Every model is registered by name in `baselines/models/__init__.py` (e.g. `pixelnet_sasrec`).
"""
from .item_encoder import ItemImageEncoder, PixelSource

__all__ = ["ItemImageEncoder", "PixelSource"]
