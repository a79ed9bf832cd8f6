"""PixelNet variants of the other IDNet backbones (the official code's MO* models "swap the ID table
for the visual encoder exactly as in 4.2"): each is the backbone's own class with its
`item_embedding` replaced by the image encoder through `PixelNetMixin` (models.py).

- GRU4Rec, NextItNet (SEQ windows): `pixelnet_sequential`, as PixelNet SASRec.
- SRGNN, LightSANs (AUGSEQ prefixes), FM, DSSM (window positions): their `loss` is run inside
  `ItemLookup.precomputed` over every id the step reads, so the step encodes those items once
  instead of the whole catalogue. Evaluation is the backbones' own code: in eval mode every lookup
  reads the catalogue table encoded once per evaluation.

Registered in models/__init__.py as pixelnet_gru4rec, pixelnet_nextitnet, pixelnet_srgnn,
pixelnet_lightsans, pixelnet_fm, pixelnet_dssm (configs/<name>.yaml).
"""
from __future__ import annotations

import torch

from pixelrec_data.baselines.models.general.dssm import DSSM
from pixelrec_data.baselines.models.general.fm import FM
from pixelrec_data.baselines.models.sequential.gru4rec import GRU4Rec
from pixelrec_data.baselines.models.sequential.lightsans import LightSANs
from pixelrec_data.baselines.models.sequential.nextitnet import NextItNet
from pixelrec_data.baselines.models.sequential.srgnn import SRGNN
from pixelrec_data.baselines.models.pixelnet.models import PixelNetMixin, pixelnet_sequential

PixelNetGRU4Rec = pixelnet_sequential(GRU4Rec)
PixelNetNextItNet = pixelnet_sequential(NextItNet)


def _column(ids: torch.Tensor) -> torch.Tensor:
    return ids.reshape(len(ids), -1)


class PixelNetSRGNN(PixelNetMixin, SRGNN):
    """MOSRGNN: SR-GNN over image-encoded node embeddings (PAD nodes: the zero image)."""

    def loss(self, batch):
        seq = batch["seq"]
        # the session graph pads its node list with id 0 even when the prefix has no PAD slot
        pad = torch.zeros_like(seq[:, :1])
        with self.item_embedding.precomputed(torch.cat([seq, _column(batch["neg"]), pad], dim=1)):
            return super().loss(batch)


class PixelNetLightSANs(PixelNetMixin, LightSANs):
    """MOLightSANs: LightSANs over image-encoded items."""

    def loss(self, batch):
        with self.item_embedding.precomputed(torch.cat([batch["seq"], _column(batch["neg"])], dim=1)):
            return super().loss(batch)


class PixelNetFM(PixelNetMixin, FM):
    """MOFM: FM's second-order set score over image-encoded items (PAD slots masked to 0)."""

    def loss(self, batch):
        ids = [batch["context"], _column(batch["pos"]), _column(batch["neg"])]
        with self.item_embedding.precomputed(torch.cat(ids, dim=1)):
            return super().loss(batch)


class PixelNetDSSM(PixelNetMixin, DSSM):
    """MODSSM: DSSM's mean-of-context user tower and item tower, both image-encoded."""

    def loss(self, batch):
        ids = [batch["context"], _column(batch["pos"]), _column(batch["neg"])]
        with self.item_embedding.precomputed(torch.cat(ids, dim=1)):
            return super().loss(batch)
