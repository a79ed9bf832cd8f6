"""PixelNet GRU4Rec / NextItNet / SRGNN / LightSANs / FM / DSSM (baselines/models/pixelnet/backbones.py): the
backbone's code with its item table replaced by the image encoder. Training steps and full-sort
vs pairwise scores are covered for every registered model by tests/test_baselines_models.py."""
import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from pixelrec_data.baselines.models import model_class
from pixelrec_data.baselines.models.pixelnet.models import ItemLookup
from pixelrec_data.baselines.models.sequential import srgnn
from pixelrec_data.baselines.data.samples import make_samples
from pixelnet_helpers import (accumulation_terms, assert_close_by_arithmetic, data,  # noqa: F401
                              grads, largest, pixels)  # (data, pixels: fixtures)

BASE = Path(__file__).resolve().parent.parent / "pixelrec_data" / "baselines"
TINY = {"encoder": "tiny-vit", "embedding_size": 16, "n_heads": 2, "n_layers": 1, "hidden_size": 1,
        "step": 1, "block_num": 1, "k_interests": 2, "eval_encode_batch": 7, "tune_layers": 1,
        "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
NAMES = ["pixelnet_gru4rec", "pixelnet_nextitnet", "pixelnet_srgnn", "pixelnet_lightsans",
         "pixelnet_fm", "pixelnet_dssm"]


def build(name, data, pixels, **overrides):
    cfg = yaml.safe_load((BASE / "configs" / "overall.yaml").read_text())
    cfg.update(yaml.safe_load((BASE / "configs" / f"{name}.yaml").read_text()))
    cfg.update(TINY, pixel_array=pixels, **overrides)
    torch.manual_seed(0)
    return model_class(name)(cfg, data)


def batch_of(model, data, n=4):
    samples = make_samples(model.train_format, data, **model.sample_options())
    batch = samples.batch(np.arange(min(n, len(samples))), np.random.default_rng(0))
    return {k: torch.as_tensor(np.asarray(v, dtype=np.int64)) for k, v in batch.items()}


@pytest.mark.parametrize("name", NAMES)
def test_item_table_is_the_image_encoder(name, data, pixels):
    model = build(name, data, pixels)
    assert isinstance(model.item_embedding, ItemLookup) and model.item_embedding.encoder is model.visual_encoder
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding) and m.num_embeddings >= data.item_num]
    assert tables == [] and not any(n.startswith("item_embedding") for n, _ in model.named_parameters())
    groups = {g.get("name"): g for g in model.param_groups(model.config)}
    encoder = [p for n, p in model.named_parameters() if n.startswith("visual_encoder.") and p.requires_grad]
    assert len(groups["visual_encoder"]["params"]) == len(encoder) > 0
    model.eval()
    with torch.no_grad():  # the candidate table is the encoded catalogue
        torch.testing.assert_close(model.item_representation(), model.visual_encoder.all()[:data.item_num])


def fast_and_plain_agree(name, data, pixels, batch):
    plain = build(name, data, pixels, dedup=False, trunk_cache="none")
    plain.item_embedding.precomputed = lambda ids: contextlib.nullcontext()  # encode slot by slot
    lp, gp = grads(plain, batch)
    for other in (build(name, data, pixels, dedup=False, trunk_cache="none"),
                  build(name, data, pixels, trunk_cache="host")):
        lf, gf = grads(other, batch)
        terms = accumulation_terms(plain, batch)
        assert_close_by_arithmetic(lf, lp, terms, "loss")
        assert gp.keys() == gf.keys() and any(k.startswith("visual_encoder.") for k in gp)
        for k in gp:  # float sums in another order: bounded relative to the gradient's scale
            assert_close_by_arithmetic(gf[k], gp[k], terms, k, largest(gp))


@pytest.mark.parametrize("name", NAMES)
def test_one_pass_loss_equals_plain_per_slot_encoding(name, data, pixels):
    model = build(name, data, pixels)
    fast_and_plain_agree(name, data, pixels, batch_of(model, data))


@pytest.mark.parametrize("name, pack", [(n, True) for n in NAMES] + [("pixelnet_srgnn", False)])
def test_every_lookup_of_a_step_reads_its_own_item(name, pack, data, pixels, monkeypatch):
    """Inside the one-pass block a lookup of an id that was not encoded would silently read a
    neighbour's row; every lookup the loss makes must equal encoding those ids directly. SR-GNN's
    node list is 0-padded even for a full prefix without PAD slots (repeats): with every slot
    through the layers (CUDA, compiled) id 0 is looked up; packed (CPU) only the real nodes are."""
    monkeypatch.setattr(srgnn, "packs_rows", lambda seq: pack)
    model = build(name, data, pixels, trunk_cache="none").train()
    batch = batch_of(model, data)
    if name == "pixelnet_srgnn":
        full_prefixes = [[1, 2, 1, 3, 4, 5, 6, 7, 8, 9, 10], [3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8]]
        batch = {"seq": torch.tensor(full_prefixes), "neg": torch.tensor([11, 12])}
    lookup, seen = model.item_embedding, []
    plain_forward = lookup.forward
    lookup.forward = lambda ids: seen.append((ids, plain_forward(ids))) or seen[-1][1]
    model.loss(batch)
    assert seen and lookup._ids is None  # the block is closed after the step
    with torch.no_grad():
        for ids, got in seen:
            torch.testing.assert_close(got, model.visual_encoder(ids), rtol=1e-5, atol=1e-6)
    if name == "pixelnet_srgnn":
        assert any((ids == 0).any() for ids, _ in seen) == (not pack)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from PIL import Image

    import toy
    from pixelrec_data.covers.cache import prepare_images

    folder = tmp_path_factory.mktemp("pixb") / "pixb"
    toy.write_release(folder, toy.chain_sequences(30, 16, n_chains=2, seed=0), 16)
    (folder / "covers").mkdir()
    for i in range(16):
        Image.new("RGB", (32, 24), ((i * 37) % 256, (i * 91) % 256, 50)).save(folder / "covers" / f"i{i}.jpg")
    prepare_images(folder, size=32, mode="squash", workers=1)
    return folder


@pytest.mark.parametrize("name", NAMES)
def test_trains_through_the_trainer_from_the_image_cache(name, release, tmp_path):
    import json

    from pixelrec_data.baselines.trainer import train as T
    from pixelrec_data.baselines.config import resolve_config

    torch.set_num_threads(1)
    keys = resolve_config(name)
    overrides = {k: v for k, v in {**TINY, "image_size": 32, "epochs": 1, "train_batch_size": 16,
                                   "learning_rate": 1e-3, "encoder_lr": 1e-3}.items() if k in keys}
    folder = T.train(release, name, out=tmp_path, overrides=overrides)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and np.isfinite(metrics["per_epoch"][0]["loss"])
    assert 0 <= metrics["final"]["test"]["ndcg@10"] <= 1
    assert any(k.startswith("visual_encoder.encoder.") for k in torch.load(folder / "best.pt"))
