"""Item image encoders for PixelNet: open_clip image towers + the dense transformation layer (DTL).

An `ImageEncoder` maps normalised images [N, 3, H, W] to item embeddings [N, d]. It is built from
an open_clip vision config (RN50, RN50x4/x16/x64, RN101, ViT-B-32, ViT-B-16, ViT-L-14, ... or the
tiny configurations below for CPU tests), so nothing is fetched: weights come from a local file
(`weights=`, see weights.py) or stay at random init, and `describe()` says which. OpenAI's weights
build the tower with QuickGELU (they were trained with it) whatever the name, `ViT-B-32` included;
other weights take the activation the open_clip config names.

The tower is cut into a *frozen trunk* and *tuned blocks* (`tune_layers`): ViT blocks are the
transformer resblocks (the patch embedding belongs to the trunk); ResNet blocks are the four stages
layer1..layer4 (the stem belongs to the trunk; `tune_layers=2` is the official RN50 setting,
layer3 + layer4). `frozen_forward` / `tuned_forward` expose the cut so that pixelnet.py can cache
the trunk output. Embedding methods (as in the paper's official code):
- 'mean': mean over tokens of ReLU(DTL(token)) over the raw last-block output (official ViT);
  for a ResNet the tokens are the layer4 positions;
- 'cls' : DTL(token 0 of the raw last-block output); for a ResNet the same as 'pool';
- 'pool': DTL(pooled output): ViT -> ln_post(CLS) (HF's pooler, no CLIP projection);
          ResNet -> attention-pool output (the official RN50 'cls').
Deviation, documented: BatchNorm layers in the frozen trunk run in eval mode (running statistics),
so a frozen trunk is a fixed function and its output can be cached; the official code keeps them in
train mode. The ResNet attention pool is trained only with tune_layers='all' (official: frozen).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from . import timm_towers as timm_tower
from . import weights as encoders_weights

ENCODER_PARAM_KEY = "visual_encoder"  # parameters whose name contains this get the encoder lr/wd
METHODS = ("mean", "cls", "pool")
NORMALISATIONS = {
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # the official PixelNet transform
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}
# Tiny towers for CPU tests and smoke runs (open_clip vision configs).
TINY_CONFIGS = {
    "tiny-vit": {"embed_dim": 32, "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 64,
                                                  "layers": 4, "head_width": 32}},
    "tiny-vit32": {"embed_dim": 32, "vision_cfg": {"image_size": 64, "patch_size": 32, "width": 64,
                                                    "layers": 4, "head_width": 32}},
    "tiny-rn": {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1],
                                                 "width": 8, "head_width": 32}},
}


@dataclass
class EncoderConfig:
    name: str = "ViT-B-32"
    dim: int = 512
    tune_layers: int | str = 2  # K last blocks, 0 = frozen, 'all' = everything
    method: str = "mean"
    dtl_layers: tuple = ()  # hidden sizes; () = one Linear + ReLU
    normalise: str = "half"
    weights: str | None = None
    quick_gelu: bool | None = None  # None: True for OpenAI's weights, else as the config says
    cls_only: bool = True  # let the last block compute only the CLS query when that is all we use
    extra: dict = field(default_factory=dict)  # open_clip vision_cfg overrides

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {tuple(NORMALISATIONS)}")
        if self.tune_layers != "all" and (not isinstance(self.tune_layers, int) or self.tune_layers < 0):
            raise ValueError("tune_layers must be an int >= 0 or 'all'")


def open_clip_config(name: str) -> dict:
    if name in TINY_CONFIGS:
        return copy.deepcopy(TINY_CONFIGS[name])
    import open_clip

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f"unknown encoder {name!r} (open_clip names such as RN50, ViT-B-32, or "
                         f"{', '.join(TINY_CONFIGS)})")
    return cfg


def build_tower(name: str, quick_gelu: bool | None = None, extra: dict | None = None) -> nn.Module:
    if timm_tower.is_timm_name(name):
        return timm_tower.build(name)
    from open_clip.model import _build_vision_tower

    cfg = open_clip_config(name)
    vision = dict(cfg["vision_cfg"], **(extra or {}))
    if vision.get("timm_model_name"):
        raise ValueError(f"{name}: timm-backed towers are not supported yet")
    gelu = cfg.get("quick_gelu", False) if quick_gelu is None else quick_gelu
    return _build_vision_tower(cfg["embed_dim"], vision, quick_gelu=gelu)


def wants_quick_gelu(config: EncoderConfig, state: dict | None) -> bool | None:
    """The activation to build: as `config.quick_gelu` says when set; QuickGELU for OpenAI's
    weights, which were trained with it whatever name the tower is given (`ViT-B-32` and
    `ViT-B-32-quickgelu` are one shape); otherwise None, the open_clip config's choice."""
    if config.quick_gelu is not None:
        return config.quick_gelu
    if state is not None and encoders_weights.is_openai_release(state):
        return True
    return None


def activation_name(tower: nn.Module) -> str:
    """The activation of a tower's blocks: 'quick_gelu', 'gelu' or (ResNets) 'relu'."""
    from open_clip.transformer import QuickGELU

    kinds = {type(m) for m in tower.modules()}
    return "quick_gelu" if QuickGELU in kinds else "gelu" if nn.GELU in kinds else "relu"


def make_dtl(width: int, dim: int, hidden: tuple = ()) -> nn.Sequential:
    """Dense transformation layer: Linear(+ReLU) per layer, ReLU after every layer (official)."""
    sizes = [width, *hidden, dim]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        lin = nn.Linear(a, b)
        nn.init.xavier_normal_(lin.weight)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers)


class ImageEncoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        state = encoders_weights.read_state_dict(config.weights) if config.weights else None
        self.visual = build_tower(config.name, wants_quick_gelu(config, state), config.extra)
        self.is_timm = timm_tower.is_timm_name(config.name)
        self.is_vit = hasattr(self.visual, "transformer") and not self.is_timm
        if self.is_timm and config.method == "cls":
            raise ValueError(f"{config.name}: method 'cls' is not available for timm towers (use pool or mean)")
        self.image_size = timm_tower.image_size(self.visual) if self.is_timm else _image_size(self.visual)
        self._prune_unused_heads()
        self.dtl = make_dtl(self.feature_width, config.dim, tuple(config.dtl_layers))
        mean, std = NORMALISATIONS[config.normalise]
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)
        self.load_report = {"weights": None, "init": "random"}
        if config.weights:
            convert = (lambda st: timm_tower.convert_checkpoint(self.visual, st)) if self.is_timm else None
            self.load_report = encoders_weights.load_into(self.visual, self.dtl, config.weights,
                                                          convert, state)
        self._set_trainable()

    # ---- structure ------------------------------------------------------------------------------
    @property
    def blocks(self) -> list[nn.Module]:
        if self.is_timm:
            return timm_tower.blocks(self.visual)
        if self.is_vit:
            return list(self.visual.transformer.resblocks)
        return [self.visual.layer1, self.visual.layer2, self.visual.layer3, self.visual.layer4]

    @property
    def n_tuned(self) -> int:
        k = self.config.tune_layers
        return len(self.blocks) if k == "all" else min(int(k), len(self.blocks))

    @property
    def feature_width(self) -> int:
        v = self.visual
        if self.is_timm:
            return v.num_features
        if self.is_vit:
            return v.transformer.width
        if self.config.method != "mean":  # 'cls' and 'pool' are the attention-pool output
            return v.attnpool.c_proj.out_features
        return v.layer4[-1].conv3.out_channels

    @property
    def uses_cls_only(self) -> bool:
        """True when only token 0 of the last block is needed (exact CLS-only shortcut)."""
        if not (self.is_vit and self.config.cls_only) or self.config.method == "mean":
            return False
        v = self.visual
        plain = type(v.transformer.resblocks[-1]).__name__ == "ResidualAttentionBlock"
        return plain and (self.config.method == "cls" or (v.attn_pool is None and v.pool_type == "tok"))

    def _prune_unused_heads(self):
        v, method = self.visual, self.config.method
        if self.is_timm:
            return
        if self.is_vit:
            v.proj = None  # HF-style pooler: no CLIP projection (as the official 'pool')
            if method != "pool":
                v.ln_post = nn.Identity()  # official: post-LN replaced by Identity
        elif method == "mean":
            v.attnpool = None

    def _set_trainable(self):
        all_tuned = self.config.tune_layers == "all"
        for p in self.visual.parameters():
            p.requires_grad = all_tuned
        for blk in self.blocks[len(self.blocks) - self.n_tuned:]:
            for p in blk.parameters():
                p.requires_grad = True
        if (self.is_vit or self.is_timm) and self.config.method == "pool" and self.n_tuned > 0:
            heads = timm_tower.head_modules(self.visual) if self.is_timm else [self.visual.ln_post]
            for p in (p for m in heads for p in m.parameters()):
                p.requires_grad = True
        if self.is_timm and self.config.method != "pool":  # the final norms are unused
            for p in (p for m in timm_tower.head_modules(self.visual) for p in m.parameters()):
                p.requires_grad = False
        for p in self.dtl.parameters():
            p.requires_grad = True

    def frozen_modules(self) -> list[nn.Module]:
        if self.config.tune_layers == "all":
            return []
        v = self.visual
        if self.is_timm:
            return timm_tower.trunk_modules(v) + self.blocks[: self.n_frozen_blocks]
        trunk = [v.conv1, v.ln_pre] if self.is_vit else [v.conv1, v.bn1, v.conv2, v.bn2, v.conv3, v.bn3]
        frozen = self.blocks[: len(self.blocks) - self.n_tuned]
        if not self.is_vit and v.attnpool is not None:
            frozen.append(v.attnpool)
        return trunk + frozen

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.frozen_modules():  # a frozen trunk is a fixed function (BN stats included)
            m.eval()
        return self

    # ---- forward --------------------------------------------------------------------------------
    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [N, S, S, 3] -> float [N, 3, H, W], resized (bilinear) to the tower's input size."""
        x = pixels.permute(0, 3, 1, 2).to(self.pixel_mean.dtype)
        if x.shape[-2:] != self.image_size:
            x = nn.functional.interpolate(x, size=self.image_size, mode="bilinear",
                                          align_corners=False, antialias=True)
        return (x - self.pixel_mean) / self.pixel_std

    @property
    def n_frozen_blocks(self) -> int:
        return len(self.blocks) - self.n_tuned

    def frozen_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk + frozen blocks: ViT -> tokens [N, T, W]; ResNet -> feature map [N, C, h, w]."""
        if self.config.tune_layers == "all":
            raise ValueError("tune_layers='all' has no frozen trunk")
        return self._run_blocks(self._stem(x), 0, self.n_frozen_blocks)

    def tuned_forward(self, h: torch.Tensor, start: int | None = None) -> torch.Tensor:
        """The tuned blocks from `start` (default: the first tuned one), the head and the DTL."""
        start = self.n_frozen_blocks if start is None else start
        n = len(self.blocks)
        if self.uses_cls_only and start < n:
            h = self._run_blocks(h, start, n - 1)
            h = cls_only_block(self.blocks[-1], h)
        elif self.uses_cls_only and h.shape[1] > 1:
            h = h[:, :1]
        else:
            h = self._run_blocks(h, start, n)
        return self._embed(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tuned_forward(self._stem(x), start=0)

    def cacheable_output(self, h: torch.Tensor) -> torch.Tensor:
        """What to keep of a trunk output: with no tuned block and CLS-only, token 0 suffices."""
        return h[:, :1] if (self.uses_cls_only and self.n_tuned == 0) else h

    def _stem(self, x):
        if self.is_timm:
            return timm_tower.stem(self.visual, x)
        return self.visual._embeds(x) if self.is_vit else self.visual.stem(x)

    def _run_blocks(self, h, start, stop):
        for blk in self.blocks[start:stop]:
            h = timm_tower.run_block(self.visual, blk, h) if self.is_timm else blk(h)
        return h

    def _embed(self, h: torch.Tensor) -> torch.Tensor:
        method, v = self.config.method, self.visual
        if self.is_timm:
            if method == "pool":
                return self.dtl(timm_tower.pool(v, h))
            return self.dtl(timm_tower.tokens(v, h)).mean(dim=1)
        if self.is_vit:
            if method == "mean":
                return self.dtl(h).mean(dim=1)
            if method == "cls":
                return self.dtl(h[:, 0])
            pooled, _ = v._pool(h)
            return self.dtl(pooled)
        if method == "mean":
            return self.dtl(h.flatten(2).transpose(1, 2)).mean(dim=1)
        return self.dtl(v.attnpool(h))

    # ---- features for ViNet -----------------------------------------------------------------------
    @torch.no_grad()
    def features(self, x: torch.Tensor, layer: str = "pooled") -> torch.Tensor:
        """Frozen features of the tower (no DTL): 'pooled' [N, F] or 'spatial' [N, g, g, F].

        ResNet: layer4 map (spatial; 7x7x2048 for RN50 at 224) or its spatial mean (pooled, 2048-d,
        the official RN50.npy width). ViT: patch tokens of the last block, or ln_post(CLS).
        """
        h = self._run_blocks(self._stem(x), 0, len(self.blocks))
        if self.is_timm:
            return timm_tower.pool(self.visual, h) if layer == "pooled" else timm_tower.spatial(self.visual, h)
        if self.is_vit:
            if layer == "pooled":
                return self.visual.ln_post(h[:, 0]) if self.config.method == "pool" else h[:, 0]
            g = self.visual.grid_size
            return h[:, 1:].reshape(h.shape[0], g[0], g[1], -1)
        return h.mean(dim=(2, 3)) if layer == "pooled" else h.permute(0, 2, 3, 1)

    # ---- bookkeeping -----------------------------------------------------------------------------
    def describe(self) -> dict:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        cfg = asdict(self.config)
        cfg["dtl_layers"] = list(cfg["dtl_layers"])
        family = "timm-" + timm_tower.kind(self.visual) if self.is_timm else "vit" if self.is_vit else "resnet"
        return {**cfg, "family": family, "image_size": list(self.image_size),
                "activation": activation_name(self.visual),
                "blocks": len(self.blocks), "tuned_blocks": self.n_tuned, "feature_width": self.feature_width,
                "cls_only": self.uses_cls_only, "trainable_params": trainable, "frozen_params": total - trainable,
                **self.load_report}


def cls_only_block(blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An open_clip ResidualAttentionBlock evaluated for the CLS query only.

    Keys and values still come from every token; queries, the attention output and the MLP are
    computed for token 0 alone. Equal to blk(x)[:, :1] (token 0 never depends on other queries).
    """
    y = blk.ln_1(x)
    h = x[:, :1] + blk.ls_1(blk.attention(q_x=y[:, :1], k_x=y, v_x=y))
    return h + blk.ls_2(blk.mlp(blk.ln_2(h)))


def _image_size(visual) -> tuple[int, int]:
    size = visual.image_size
    return (size, size) if isinstance(size, int) else tuple(size)


def param_groups(model: nn.Module, lr: float, weight_decay: float, encoder_lr: float,
                 encoder_weight_decay: float, key: str = ENCODER_PARAM_KEY) -> list[dict]:
    """AdamW groups by name, as the official 4-key optim_args: names containing `key` take the
    encoder (modal) lr/wd, the rest the recommender's; only parameters that require grad."""
    enc, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (enc if key in name else rest).append(p)
    groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay, "name": "rec"},
              {"params": enc, "lr": encoder_lr, "weight_decay": encoder_weight_decay, "name": key}]
    return [g for g in groups if g["params"]]
