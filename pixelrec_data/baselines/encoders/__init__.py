"""Image encoders for PixelNet and ViNet.

- `image_encoder`: `ImageEncoder` over open_clip towers (RN50, ViT-B-32, ...), `EncoderConfig`,
  `param_groups` (last-k-layer tuning);
- `timm_towers`: the same interface over timm models;
- `weights`: reading a local weights file (nothing is fetched at run time).
"""
from .image_encoder import EncoderConfig, ImageEncoder, param_groups

__all__ = ["EncoderConfig", "ImageEncoder", "param_groups"]
