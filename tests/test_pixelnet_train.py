"""PixelNet and ViNet models through the real trainer (train.train, the real registry and
configs/) on a tiny release with covers, its image cache and extracted features."""
import json

import numpy as np
import torch
import pytest
import yaml
from PIL import Image

import toy
from pixelrec_data.baselines.encoders import EncoderConfig, ImageEncoder
from pixelrec_data.baselines.trainer import train as T
from pixelrec_data.baselines.models.vinet.features import extract
from pixelrec_data.covers.cache import prepare_images

N_ITEMS = 24
PIXEL_TINY = {"encoder": "tiny-vit", "embedding_size": 16, "n_heads": 2, "n_layers": 1, "image_size": 32,
              "train_batch_size": 32, "learning_rate": 1e-3, "encoder_lr": 1e-3}


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


def test_pixelnet_bert4rec_trains_from_the_image_cache(release, tmp_path):
    torch.set_num_threads(1)
    folder = T.train(release, "pixelnet_bert4rec", out=tmp_path, overrides={
        **PIXEL_TINY, "epochs": 2, "mask_ratio": 0.5})
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and all(e["loss"] > 0 for e in metrics["per_epoch"])
    assert metrics["items"] == N_ITEMS and 0 <= metrics["final"]["test"]["ndcg@10"] <= 1


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


def _release_with_covers(folder, n_items, seed):
    toy.write_release(folder, toy.chain_sequences(50, n_items, n_chains=2, seed=seed), n_items)
    (folder / "covers").mkdir()
    for i in range(n_items):
        Image.new("RGB", (32, 24), ((i * 53) % 256, (i * 29) % 256, 90)).save(folder / "covers" / f"i{i}.jpg")
    prepare_images(folder, size=32, mode="squash", workers=1)
    return folder


def test_init_from_moves_the_pixel_model_to_another_release(release, tmp_path):
    """Cross-release transfer (Table 7): every PixelNet tensor fits a release with other items."""
    torch.set_num_threads(1)
    other = _release_with_covers(tmp_path / "other", N_ITEMS + 7, seed=5)
    source = T.train(release, "pixelnet_sasrec", out=tmp_path / "a", overrides={**PIXEL_TINY, "epochs": 1})
    # 0 epochs: the run's best.pt is its starting point, i.e. exactly what --init-from loaded
    target = T.train(other, "pixelnet_sasrec", out=tmp_path / "b", overrides={**PIXEL_TINY, "epochs": 0},
                     init_from=source)
    before, after = torch.load(source / "best.pt"), torch.load(target / "best.pt")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    report = yaml.safe_load((target / "config.yaml").read_text())["init_report"]
    assert report["loaded"] == report["of"] == len(before) and not report["shape_mismatch"]
    fresh = T.train(other, "pixelnet_sasrec", out=tmp_path / "b", overrides={**PIXEL_TINY, "epochs": 0})
    assert fresh != target  # the starting weights are part of the run's identity
    assert not torch.equal(torch.load(fresh / "best.pt")["position_embedding.weight"],
                           before["position_embedding.weight"])


def test_init_from_cli_skips_an_item_table_of_another_shape(release, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from schemas.errors import InputError

    torch.set_num_threads(1)
    other = _release_with_covers(tmp_path / "other", N_ITEMS + 7, seed=6)
    tiny = {"embedding_size": 16, "n_heads": 2, "n_layers": 1, "epochs": 1}
    source = T.train(release, "sasrec", out=tmp_path / "a", overrides=tiny)
    root = Path(__file__).resolve().parent.parent
    args = ["train", "--release", str(other), "--model", "sasrec", "--epochs", "0", "--out", str(tmp_path / "b"),
            *[f"--set={k}={v}" for k, v in tiny.items() if k != "epochs"], "--init-from", str(source)]
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", *args], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "init-from" in proc.stdout and "shape mismatch: item_embedding.weight" in proc.stdout
    target = Path(proc.stdout.strip().splitlines()[-1].split("run folder: ")[1])
    before, after = torch.load(source / "best.pt"), torch.load(target / "best.pt")
    assert before["item_embedding.weight"].shape != after["item_embedding.weight"].shape
    for key in before:
        if key != "item_embedding.weight":
            assert torch.equal(before[key], after[key]), key
    with pytest.raises(InputError, match="no best.pt"):
        T.train(other, "sasrec", out=tmp_path / "c", overrides=tiny, init_from=tmp_path / "nothing")
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", *args[:-1], str(tmp_path / "nothing")],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --init-from")
