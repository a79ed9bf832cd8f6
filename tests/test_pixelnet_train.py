"""PixelNet and ViNet models through the real trainer (train.train, the real registry and
configs/) on a tiny release with covers, its image cache and extracted features."""
import json

import numpy as np
import torch
import pytest
import yaml
from PIL import Image

from pixelrec_data.baselines import toy
from pixelrec_data.baselines.encoders import EncoderConfig, ImageEncoder
from pixelrec_data.baselines import train as T
from pixelrec_data.baselines.vinet.features import extract
from pixelrec_data.images import prepare_images

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
    extract(folder, "tiny-rn", "spatial", batch_size=8)
    return folder


def test_pixelnet_sasrec_trains_and_evaluates_from_the_image_cache(release, tmp_path):
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


def test_vbpr_visrank_and_acf_train_on_extracted_features(release, tmp_path):
    torch.set_num_threads(1)
    vbpr = T.train(release, "vbpr", out=tmp_path, overrides={
        "features": "tiny-rn_pooled", "embedding_size": 16, "epochs": 2, "train_batch_size": 64})
    visrank = T.train(release, "visrank", out=tmp_path, overrides={"features": "tiny-rn_pooled"})
    acf = T.train(release, "acf", out=tmp_path, overrides={
        "features": "tiny-rn_spatial", "embedding_size": 16, "epochs": 2, "train_batch_size": 64,
        "learning_rate": 1e-2})
    for folder in (vbpr, visrank, acf):
        final = json.loads((folder / "metrics.json").read_text())["final"]["test"]
        assert set(final) == {"recall@5", "recall@10", "ndcg@5", "ndcg@10"}
    assert json.loads((visrank / "metrics.json").read_text())["epochs_run"] == 0
    info = yaml.safe_load((vbpr / "config.yaml").read_text())["features_info"]
    assert info["encoder"] == "tiny-rn" and info["init"] == "random"
    for folder in (vbpr, acf):
        per_epoch = json.loads((folder / "metrics.json").read_text())["per_epoch"]
        assert len(per_epoch) == 2 and all(np.isfinite(e["loss"]) and e["loss"] > 0 for e in per_epoch)
    assert yaml.safe_load((acf / "config.yaml").read_text())["features_info"]["name"] == "tiny-rn_spatial"
