"""PixelNet and ViNet models through the real trainer (train.train) on a tiny release with covers.

The registry and configs/ belong to the trainer; until the models are registered there, this test
points the trainer's registry and config lookup at them (the lines to add are in the docstrings of
pixelnet_models.py and vinet/__init__.py).
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pixelrec_data.baselines import toy
from pixelrec_data.baselines.encoders import EncoderConfig, ImageEncoder
from pixelrec_data.baselines import train as T
from pixelrec_data.baselines.pixelnet_models import PixelNetSASRec
from pixelrec_data.baselines.vinet.features import extract
from pixelrec_data.baselines.vinet.vbpr import VBPR
from pixelrec_data.baselines.vinet.visrank import VisRank
from pixelrec_data.images import prepare_images

BASE = Path(T.__file__).resolve().parent
EXTRA = {"pixelnet_sasrec": (PixelNetSASRec, BASE / "pixelnet_configs"),
         "vbpr": (VBPR, BASE / "vinet" / "configs"), "visrank": (VisRank, BASE / "vinet" / "configs")}
N_ITEMS = 24


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pix") / "pix"
    toy.write_release(folder, toy.chain_sequences(60, N_ITEMS, n_chains=3, seed=0), N_ITEMS)
    (folder / "covers").mkdir()
    for i in range(N_ITEMS):
        Image.new("RGB", (32, 24), ((i * 37) % 256, (i * 91) % 256, (i * 11) % 256)).save(folder / "covers" / f"i{i}.jpg")
    prepare_images(folder, size=32, mode="squash", workers=1)
    extract(folder, "tiny-rn", "pooled", batch_size=8)
    return folder


@pytest.fixture
def registered(monkeypatch, release):
    original_class, original_config = T.model_class, T.resolve_config

    def model_class(name):
        return EXTRA[name][0] if name in EXTRA else original_class(name)

    def resolve_config(name, overrides=None):
        if name not in EXTRA:
            return original_config(name, overrides)
        config = yaml.safe_load((BASE / "configs" / "overall.yaml").read_text())
        config.update(yaml.safe_load((EXTRA[name][1] / f"{name}.yaml").read_text()))
        config.update(overrides or {}, model=name, release=str(release))
        return config

    monkeypatch.setattr(T, "model_class", model_class)
    monkeypatch.setattr(T, "resolve_config", resolve_config)


def test_pixelnet_sasrec_trains_and_evaluates_from_the_image_cache(release, registered, tmp_path):
    torch.set_num_threads(1)
    folder = T.train(release, "pixelnet_sasrec", out=tmp_path, overrides={
        "encoder": "tiny-vit", "embedding_size": 16, "n_heads": 2, "n_layers": 1, "image_size": 32,
        "epochs": 2, "train_batch_size": 32, "learning_rate": 1e-3, "encoder_lr": 1e-3})
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and 0 <= metrics["final"]["test"]["ndcg@10"] <= 1
    state = torch.load(folder / "best.pt")
    assert any(k.startswith("visual_encoder.encoder.visual.") for k in state)
    # the run's checkpoint round-trips as --encoder-weights (tower and DTL)
    again = ImageEncoder(EncoderConfig(name="tiny-vit", dim=16, weights=str(folder / "best.pt")))
    for key, value in again.state_dict().items():
        assert torch.equal(value, state[f"visual_encoder.encoder.{key}"]), key
    assert again.describe()["dtl_from_file"]
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["trunk_cache"] == "device"
    assert config["encoder_info"]["init"] == "random" and config["encoder_info"]["tuned_blocks"] == 2


def test_vbpr_and_visrank_train_on_extracted_features(release, registered, tmp_path):
    torch.set_num_threads(1)
    vbpr = T.train(release, "vbpr", out=tmp_path, overrides={
        "features": "tiny-rn_pooled", "embedding_size": 16, "epochs": 2, "train_batch_size": 64})
    visrank = T.train(release, "visrank", out=tmp_path, overrides={"features": "tiny-rn_pooled"})
    for folder in (vbpr, visrank):
        final = json.loads((folder / "metrics.json").read_text())["final"]["test"]
        assert set(final) == {"recall@5", "recall@10", "ndcg@5", "ndcg@10"}
    assert json.loads((visrank / "metrics.json").read_text())["epochs_run"] == 0
    info = yaml.safe_load((vbpr / "config.yaml").read_text())["features_info"]
    assert info["encoder"] == "tiny-rn" and info["init"] == "random"
    assert np.isfinite(json.loads((vbpr / "metrics.json").read_text())["per_epoch"][-1]["loss"])
