"""What the ViNet models share: reading the release's feature file named in the config."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pixelrec_data.baselines.models.vinet.features import aligned_features
from schemas.errors import InputError


def feature_tensor(config: dict, data, dtype=np.float32) -> torch.Tensor:
    """[item_num, ...] features (float32 unless `dtype`) (row 0 = PAD = 0) named by config['features'] under
    config['release'] (set by the trainer), or an in-memory array in config['feature_array']."""
    if config.get("feature_array") is not None:
        arr = np.array(config["feature_array"], dtype=dtype)
        if len(arr) != data.item_num:
            raise InputError(f"feature_array has {len(arr)} rows, the release has {data.item_num} items + PAD")
        return torch.from_numpy(arr)
    release, name = config.get("release"), config.get("features")
    if not release or not name:
        raise InputError("ViNet models need config keys 'release' and 'features' (e.g. RN50_pooled)")
    meta = Path(release) / "features" / f"{name}.json"
    if meta.exists():  # recorded in the run's config.yaml: which tower (random or which weights)
        info = json.loads(meta.read_text())
        encoder = info.get("encoder", {})
        config["features_info"] = {"name": name, "encoder": encoder.get("name"), "init": encoder.get("init"),
                                   "weights": encoder.get("weights"), "weights_sha256": encoder.get("weights_sha256"),
                                   "activation": encoder.get("activation"),
                                   "pixels_from": info.get("pixels_from"), "blank_covers": info.get("blank_covers")}
    arr = aligned_features(release, name, data.item_tokens.to_pylist()
                           if hasattr(data.item_tokens, "to_pylist") else list(data.item_tokens))
    return torch.from_numpy(np.array(arr, dtype=dtype))  # one copy out of the read-only memory map
