"""timm towers for PixelNet (the paper's Swin-T, Swin-B and BEiT), cut like the open_clip ones.

Blocks: Swin -> the four stages (`layers`; tune_layers=2 = stages 3-4, the official tune_scale 78);
BEiT -> the transformer blocks (tune_layers=2 = the last 2 of 12, the official tune_scale 183).
The patch embedding (and BEiT's class token / position embedding) is the trunk; the final norms
(Swin `norm`, BEiT `norm` + `fc_norm`) are the head, trained with the tuned blocks. The official
Swin/BEiT runs always use 'pool' (timm's pre-logits: average pool + norm); 'mean' (DTL per token,
then the mean) is also offered; 'cls' is not (Swin has no class token).
Weights: a timm checkpoint (the model's own keys, classifier ignored), converted by the model
module's checkpoint_filter_fn when timm has one (original Microsoft layouts). Hugging Face
transformers checkpoints are not read.
"""
from __future__ import annotations

import sys

import torch
from torch import nn

NAMES = {
    "Swin-T": ("swin_tiny_patch4_window7_224", {}),
    "Swin-B": ("swin_base_patch4_window7_224", {}),
    "BEiT": ("beit_base_patch16_224", {}),
    "tiny-swin": ("swin_tiny_patch4_window7_224", {"img_size": 64, "embed_dim": 16, "depths": (1, 1, 1, 1),
                                                  "num_heads": (1, 1, 1, 1), "window_size": 2,
                                                  "drop_path_rate": 0.0}),
    "tiny-beit": ("beit_base_patch16_224", {"img_size": 64, "embed_dim": 32, "depth": 4, "num_heads": 2,
                                            "drop_path_rate": 0.0}),
}


def is_timm_name(name: str) -> bool:
    return name in NAMES or name.startswith("timm:")


def build(name: str) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise ValueError(f"{name}: timm is not installed (pip install timm)") from None
    model_name, kwargs = NAMES.get(name, (name[len("timm:"):], {}))
    try:
        model = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
    except RuntimeError as exc:  # timm's "Unknown model"
        raise ValueError(f"unknown encoder {name!r} ({exc})") from None
    if kind(model) is None:
        raise ValueError(f"{name}: only Swin and BEiT timm towers are supported")
    return model


def kind(model: nn.Module) -> str | None:
    if hasattr(model, "layers") and hasattr(model, "patch_embed") and not hasattr(model, "blocks"):
        return "swin"
    if hasattr(model, "blocks") and hasattr(model, "rel_pos_bias"):
        return "beit"
    return None


def blocks(model) -> list[nn.Module]:
    return list(model.layers) if kind(model) == "swin" else list(model.blocks)


def image_size(model) -> tuple[int, int]:
    size = model.patch_embed.img_size
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def stem(model, x: torch.Tensor) -> torch.Tensor:
    x = model.patch_embed(x)
    if kind(model) == "beit":
        x = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if model.pos_embed is not None:
            x = x + model.pos_embed
        x = model.pos_drop(x)
    return x


def run_block(model, blk, h: torch.Tensor) -> torch.Tensor:
    if kind(model) == "beit":
        bias = model.rel_pos_bias() if model.rel_pos_bias is not None else None
        return blk(h, shared_rel_pos_bias=bias)
    return blk(h)


def pool(model, h: torch.Tensor) -> torch.Tensor:
    """timm's pre-logits output (Swin: norm + average pool; BEiT: mean of patch tokens + fc_norm)."""
    return model.forward_head(model.norm(h), pre_logits=True)


def tokens(model, h: torch.Tensor) -> torch.Tensor:
    """The last block's output as tokens [N, T, W] (Swin: NHWC flattened)."""
    return h.flatten(1, 2) if kind(model) == "swin" else h


def spatial(model, h: torch.Tensor) -> torch.Tensor:
    """The last feature map [N, g, g, W]."""
    if kind(model) == "swin":
        return h
    grid = model.patch_embed.grid_size
    return h[:, model.num_prefix_tokens:].reshape(h.shape[0], grid[0], grid[1], -1)


def trunk_modules(model) -> list[nn.Module]:
    return [model.patch_embed]


def head_modules(model) -> list[nn.Module]:
    return [model.norm] + ([model.fc_norm] if kind(model) == "beit" else [])


def convert_checkpoint(model, state: dict) -> dict:
    """timm's own remapping of original checkpoints, when the model's module has one."""
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    convert = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if convert is None:
        return state
    try:
        return convert(state, model)
    except (KeyError, RuntimeError, ValueError):
        return state
