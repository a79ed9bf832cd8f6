"""Model registry: name -> class, imported lazily (one module per model).

Families, one package each: general/ (MF, LightGCN, FM, DSSM, Pop, Random), sequential/ (SASRec,
BERT4Rec, GRU4Rec, NextItNet, SRGNN, LightSANs), vinet/ (frozen image features) and pixelnet/
(a trainable image encoder in place of the item table); base.py (the contract) and layers.py (the
shared Transformer) serve them all.

To add a model: write <family>/<module>.py with a Recommender subclass (see base.py), add its
configs/<name>.yaml with the paper's tuned hyper-parameters, and one line here.
"""
from __future__ import annotations

import importlib

from schemas.errors import InputError

# name -> "<family>.<module>:Class", the module under pixelrec_data.baselines.models
MODELS = {
    "random": "general.randomrec:RandomRec",
    "pop": "general.pop:Pop",
    "mf": "general.mf:MF",
    "sasrec": "sequential.sasrec:SASRec",
    "gru4rec": "sequential.gru4rec:GRU4Rec",
    "nextitnet": "sequential.nextitnet:NextItNet",
    "bert4rec": "sequential.bert4rec:BERT4Rec",
    "srgnn": "sequential.srgnn:SRGNN",
    "lightsans": "sequential.lightsans:LightSANs",
    "fm": "general.fm:FM",
    "dssm": "general.dssm:DSSM",
    "lightgcn": "general.lightgcn:LightGCN",
    "visrank": "vinet.visrank:VisRank",
    "vbpr": "vinet.vbpr:VBPR",
    "acf": "vinet.acf:ACF",
    "pixelnet_sasrec": "pixelnet.models:PixelNetSASRec",
    "pixelnet_mf": "pixelnet.models:PixelNetMF",
    "pixelnet_bert4rec": "pixelnet.models:PixelNetBERT4Rec",
    "pixelnet_gru4rec": "pixelnet.backbones:PixelNetGRU4Rec",
    "pixelnet_nextitnet": "pixelnet.backbones:PixelNetNextItNet",
    "pixelnet_srgnn": "pixelnet.backbones:PixelNetSRGNN",
    "pixelnet_lightsans": "pixelnet.backbones:PixelNetLightSANs",
    "pixelnet_fm": "pixelnet.backbones:PixelNetFM",
    "pixelnet_dssm": "pixelnet.backbones:PixelNetDSSM",
}


def available() -> list[str]:
    return sorted(MODELS)


def model_class(name: str):
    target = MODELS.get(name.lower())
    if target is None:
        raise InputError(f"unknown model '{name}' (choose from {', '.join(available())})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
