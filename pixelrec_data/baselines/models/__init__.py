"""Model registry: name -> class, imported lazily (one module per model).

To add a model: write models/<module>.py with a Recommender subclass (see base.py), add its
configs/<name>.yaml with the paper's tuned hyper-parameters, and one line here.
"""
from __future__ import annotations

import importlib

from schemas.errors import InputError

# name -> "module:Class" (a bare module name is under pixelrec_data.baselines.models)
MODELS = {
    "random": "randomrec:RandomRec",
    "pop": "pop:Pop",
    "mf": "mf:MF",
    "sasrec": "sasrec:SASRec",
    "gru4rec": "gru4rec:GRU4Rec",
    "nextitnet": "nextitnet:NextItNet",
    "bert4rec": "bert4rec:BERT4Rec",
    "srgnn": "srgnn:SRGNN",
    "lightsans": "lightsans:LightSANs",
    "fm": "fm:FM",
    "dssm": "dssm:DSSM",
    "lightgcn": "lightgcn:LightGCN",
    # ViNet (frozen image features) and PixelNet (trainable image encoder) live beside the trainer
    "visrank": "pixelrec_data.baselines.vinet.visrank:VisRank",
    "vbpr": "pixelrec_data.baselines.vinet.vbpr:VBPR",
    "acf": "pixelrec_data.baselines.vinet.acf:ACF",
    "pixelnet_sasrec": "pixelrec_data.baselines.pixelnet.models:PixelNetSASRec",
    "pixelnet_mf": "pixelrec_data.baselines.pixelnet.models:PixelNetMF",
    "pixelnet_bert4rec": "pixelrec_data.baselines.pixelnet.models:PixelNetBERT4Rec",
    "pixelnet_gru4rec": "pixelrec_data.baselines.pixelnet.backbones:PixelNetGRU4Rec",
    "pixelnet_nextitnet": "pixelrec_data.baselines.pixelnet.backbones:PixelNetNextItNet",
    "pixelnet_srgnn": "pixelrec_data.baselines.pixelnet.backbones:PixelNetSRGNN",
    "pixelnet_lightsans": "pixelrec_data.baselines.pixelnet.backbones:PixelNetLightSANs",
    "pixelnet_fm": "pixelrec_data.baselines.pixelnet.backbones:PixelNetFM",
    "pixelnet_dssm": "pixelrec_data.baselines.pixelnet.backbones:PixelNetDSSM",
}


def available() -> list[str]:
    return sorted(MODELS)


def model_class(name: str):
    target = MODELS.get(name.lower())
    if target is None:
        raise InputError(f"unknown model '{name}' (choose from {', '.join(available())})")
    module, attr = target.split(":")
    path = module if "." in module else f"{__name__}.{module}"
    return getattr(importlib.import_module(path), attr)
