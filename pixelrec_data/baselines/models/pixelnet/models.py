"""PixelNet backbones (as in the paper's official code): the IDNet model's code with its item-ID table replaced by an
`ItemImageEncoder` (registered as `visual_encoder`, so its parameters get encoder_lr /
encoder_weight_decay, the official 4-key optim_args).

`ItemLookup` stands where the backbone keeps `item_embedding`: the backbone's own code calls
`self.item_embedding(ids)` unchanged. Within one training step every id of the batch (inputs,
targets, negatives) is encoded in one deduplicated pass and looked up from there (`precomputed`),
which equals encoding each slot separately; at evaluation the catalogue table is encoded once.
The encoder is held outside the module tree of ItemLookup, so each parameter has one name,
`visual_encoder.*`.

Registered in models/__init__.py as `pixelnet_sasrec`, `pixelnet_bert4rec` and `pixelnet_mf`
(configs/<name>.yaml);
train.Run sets config["release"] to the release folder. The other backbones (GRU4Rec, NextItNet
through `pixelnet_sequential(cls)`, SRGNN, LightSANs, FM, DSSM) are in backbones.py.

Config keys (configs/pixelnet_*.yaml): encoder, encoder_weights, tune_layers,
embedding_method, dtl_layers, normalise, encoder_lr, encoder_weight_decay, image_size, image_mode,
dedup, trunk_cache (none|device|host|mmap), trunk_cache_dtype, trunk_cache_path,
eval_encode_batch; pixels come from the release's image cache (`release` key, or `data.release`),
or from an in-memory uint8 array `pixel_array` [item_num, S, S, 3] (tests).
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelrec_data.baselines.encoders import EncoderConfig, ImageEncoder, param_groups
from pixelrec_data.baselines.models.base import SequentialRecommender
from pixelrec_data.baselines.models.sequential.bert4rec import BERT4Rec
from pixelrec_data.baselines.models.layers import additive_mask
from pixelrec_data.baselines.models.general.mf import MF
from pixelrec_data.baselines.models.sequential.sasrec import SASRec
from pixelrec_data.baselines.models.pixelnet.item_encoder import ItemImageEncoder, PixelSource
from schemas.errors import InputError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16}


class ItemLookup(nn.Module):
    """Callable like an nn.Embedding over item ids, backed by the image encoder."""

    def __init__(self, encoder: ItemImageEncoder):
        super().__init__()
        self._encoder = [encoder]  # a list: not a sub-module, so parameters keep one name
        self._ids: torch.Tensor | None = None
        self._emb: torch.Tensor | None = None

    @property
    def encoder(self) -> ItemImageEncoder:
        return self._encoder[0]

    @contextlib.contextmanager
    def precomputed(self, ids: torch.Tensor):
        """Encode the batch's ids in one pass; lookups inside the block gather from it.

        With dedup each distinct id is encoded once; without it every slot is encoded (the
        official B x 22 pass) and lookups read one copy per id, which gives the same loss and
        the same parameter gradients (the copies are the same function of the parameters).
        """
        flat = ids.reshape(-1)
        if self.encoder.dedup:
            self._ids = torch.unique(flat)
            self._emb = self.encoder.encode(self._ids)
        else:
            self._ids, inverse = torch.unique(flat, return_inverse=True)
            slot = torch.empty_like(self._ids).scatter_(0, inverse, torch.arange(len(flat), device=flat.device))
            self._emb = self.encoder.encode(flat)[slot]
        try:
            yield
        finally:
            self._ids = self._emb = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self._ids is None:
            return self.encoder(ids)
        pos = torch.searchsorted(self._ids, ids.reshape(-1).contiguous())  # column slices of a batch
        return self._emb[pos].view(*ids.shape, -1)

    @property
    def weight(self) -> torch.Tensor:  # the candidate table, as Embedding.weight
        return self.encoder.all()


def build_item_encoder(config: dict, data, ones_row: bool = False) -> ItemImageEncoder:
    enc_cfg = EncoderConfig(
        name=str(config["encoder"]), dim=int(config["embedding_size"]),
        tune_layers=config["tune_layers"] if config["tune_layers"] == "all" else int(config["tune_layers"]),
        method=str(config["embedding_method"]), dtl_layers=tuple(config.get("dtl_layers") or ()),
        normalise=str(config.get("normalise", "half")), weights=config.get("encoder_weights"))
    try:
        encoder = ImageEncoder(enc_cfg)
    except ValueError as exc:
        raise InputError(f"encoder: {exc}") from None
    cache = str(config.get("trunk_cache", "none"))
    if cache != "none" and enc_cfg.tune_layers == "all":
        cache = "none"  # nothing is frozen: there is no trunk to cache
    path, scratch = config.get("trunk_cache_path"), None
    if cache == "mmap" and not path:
        scratch = tempfile.mkdtemp(prefix="pixelnet-trunk-")
        path = Path(scratch) / "trunk.npy"
    item_encoder = ItemImageEncoder(encoder, pixel_source(config, data, ones_row),
                                    dedup=bool(config.get("dedup", True)), trunk_cache=cache,
                                    cache_dtype=DTYPES[str(config.get("trunk_cache_dtype", "float32"))],
                                    cache_path=path, eval_batch=int(config.get("eval_encode_batch", 256)))
    if scratch is not None:  # our own scratch folder goes when the encoder does (or at exit)
        weakref.finalize(item_encoder, shutil.rmtree, scratch, ignore_errors=True)
    return item_encoder


def pixel_source(config: dict, data, ones_row: bool = False) -> PixelSource:
    """Pixels by internal item id: row 0 = PAD (blank), item i = item_tokens[i - 1]; with
    `ones_row`, one more id (item_num, BERT4Rec's [MASK]) is the all-ones image."""
    extra = {"rows": None, "ones_id": None}
    if config.get("pixel_array") is not None:
        pixels = np.asarray(config["pixel_array"], dtype=np.uint8)
        if len(pixels) != data.item_num:
            raise InputError(f"pixel_array has {len(pixels)} rows, expected {data.item_num}")
        if ones_row:
            extra = {"rows": np.r_[np.arange(data.item_num), -1], "ones_id": data.item_num}
        return PixelSource(pixels, **extra)
    release = config.get("release") or getattr(data, "release", None)
    if not release:
        raise InputError("PixelNet needs the release folder (config key 'release') for its image cache")
    from pixelrec_data.covers.cache_reader import ImageCache

    cache = ImageCache(release, int(config.get("image_size", 224)), str(config.get("image_mode", "squash")))
    tokens = data.item_tokens.to_pylist() if hasattr(data.item_tokens, "to_pylist") else list(data.item_tokens)
    rows = np.concatenate([[-1], cache.rows(tokens), [-1] if ones_row else []]).astype(np.int64)
    return PixelSource(cache.array, rows=rows, ones_id=data.item_num if ones_row else None)


class PixelNetMixin:
    """Builds the backbone, then installs the image encoder in place of its `item_embedding`, and
    the two AdamW groups. The backbones' losses read items through `item_embedding(ids)`, so a
    PixelNet loss is the backbone's own, run inside `ItemLookup.precomputed` over the ids it reads
    (each distinct item of the step encoded once)."""

    ones_row = False  # an extra all-ones image id after the items (BERT4Rec's [MASK])

    def __init__(self, config, data):
        super().__init__(config, data)
        self._install_encoder(config, data)

    def _install_encoder(self, config, data):
        if self.loss_type != "bpr":
            raise InputError("PixelNet trains with loss: bpr (a softmax over all items would encode "
                             "the whole catalogue every step)")
        self.visual_encoder = build_item_encoder(config, data, self.ones_row)
        self.item_embedding = ItemLookup(self.visual_encoder)
        # recorded in the run's config.yaml (the trainer writes the dict after building the model):
        # which tower, random init or which weights file (sha256), what is tuned, which caches
        config["encoder_info"] = {k: v for k, v in self.visual_encoder.describe().items()
                                  if k not in ("cache_bytes",)}

    def item_representation(self):
        return self.visual_encoder.all()[: self.item_num]  # never the [MASK] row

    def param_groups(self, config):
        return param_groups(self, float(config["learning_rate"]), float(config["weight_decay"]),
                            float(config["encoder_lr"]), float(config["encoder_weight_decay"]))


class PixelNetSequentialMixin(PixelNetMixin):
    """For SequentialRecommender backbones (SASRec, and GRU4Rec / NextItNet the same way): all
    B x 22 slots (window + negatives) encoded in one pass, the backbone's own encode() unchanged."""

    def loss(self, batch):
        with self.item_embedding.precomputed(torch.cat([batch["pos"], batch["neg"]], dim=1)):
            return super().loss(batch)


def pixelnet_sequential(backbone: type) -> type:
    """The PixelNet variant of a SequentialRecommender subclass (the official MO* models)."""
    if not issubclass(backbone, SequentialRecommender):
        raise TypeError(f"{backbone.__name__} is not a SequentialRecommender")
    return type(f"PixelNet{backbone.__name__}", (PixelNetSequentialMixin, backbone),
                {"__doc__": f"PixelNet {backbone.__name__}: item ids encoded from cover pixels."})


PixelNetSASRec = pixelnet_sequential(SASRec)


class PixelNetMF(PixelNetMixin, MF):
    """MOMF: MF with the item table replaced by the image encoder (PAIR, BPR)."""

    def loss(self, batch):
        with self.item_embedding.precomputed(torch.stack([batch["pos"], batch["neg"]])):
            return super().loss(batch)


class PixelNetBERT4Rec(PixelNetMixin, BERT4Rec):
    """MOBERT4Rec (as in the paper's official code): masked and PAD input slots are the all-ones image (id item_num,
    the [MASK] id), target PADs the zero image; the eval table has item_num + 1 rows, the last
    (the ones image) never a candidate. Attention still ignores PAD keys."""

    ones_row = True

    def encode(self, seq):
        ids = torch.where(seq == 0, self.mask_token, seq)  # PAD inputs look like [MASK]
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.input_dropout(self.input_norm(self.item_embedding(ids) + self.position_embedding(positions)[None]))
        return self.encoder(x, additive_mask(seq != 0, causal=False))

    def loss(self, batch):
        inputs = torch.where(batch["input"] == 0, self.mask_token, batch["input"])
        with self.item_embedding.precomputed(torch.cat([inputs, batch["pos"], batch["neg"]], dim=1)):
            return super().loss(batch)  # BERT4Rec's loss, with this class's encode()
