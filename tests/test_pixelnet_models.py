"""PixelNet backbones: SASRec / MF code with the item table replaced by the image encoder."""
import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pixelrec_data.baselines.data import interactions as D
from pixelrec_data.baselines.evaluation import metrics as E
from pixelrec_data.baselines.models.pixelnet.models import PixelNetBERT4Rec, PixelNetMF, PixelNetSASRec
from pixelrec_data.baselines.data.samples import make_samples
from pixelnet_helpers import (N_ITEMS, accumulation_terms, assert_close_by_arithmetic, data,  # noqa: F401
                              grads, largest, pixels)  # (data, pixels: fixtures)

BASE = Path(__file__).resolve().parent.parent / "pixelrec_data" / "baselines"
TINY = {"encoder": "tiny-vit", "embedding_size": 16, "n_heads": 2, "n_layers": 1, "eval_encode_batch": 7,
        "tune_layers": 1, "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


def config(name, **overrides):
    cfg = yaml.safe_load((BASE / "configs" / "overall.yaml").read_text())
    cfg.update(yaml.safe_load((BASE / "configs" / f"{name}.yaml").read_text()))
    cfg.update(TINY, **overrides)
    return cfg


def build(cls, name, data, pixels, **overrides):
    torch.manual_seed(0)
    return cls(config(name, pixel_array=pixels, **overrides), data)


def batch_of(cls, data, n=4):
    samples = make_samples(cls.train_format, data)
    batch = samples.batch(np.arange(min(n, len(samples))), np.random.default_rng(0))
    return {k: torch.as_tensor(np.asarray(v, dtype=np.int64)) for k, v in batch.items()}


@pytest.mark.parametrize("cls,name", [(PixelNetSASRec, "pixelnet_sasrec"), (PixelNetMF, "pixelnet_mf"),
                                      (PixelNetBERT4Rec, "pixelnet_bert4rec")])
def test_one_pass_cached_loss_equals_plain_per_slot_encoding(cls, name, data, pixels):
    batch = batch_of(cls, data)
    plain = build(cls, name, data, pixels, dedup=False, trunk_cache="none")
    plain.item_embedding.precomputed = lambda ids: contextlib.nullcontext()  # encode slot by slot
    one_pass = build(cls, name, data, pixels, dedup=False, trunk_cache="none")  # the official B x 22 pass
    fast = build(cls, name, data, pixels, trunk_cache="host")
    lp, gp = grads(plain, batch)
    for other in (one_pass, fast):
        lf, gf = grads(other, batch)
        terms = accumulation_terms(plain, batch)
        assert_close_by_arithmetic(lf, lp, terms, "loss")
        assert gp.keys() == gf.keys() and any(k.startswith("visual_encoder.") for k in gp)
        for k in gp:
            assert_close_by_arithmetic(gf[k], gp[k], terms, k, largest(gp))


def test_parameter_names_and_groups(data, pixels):
    model = build(PixelNetSASRec, "pixelnet_sasrec", data, pixels, tune_layers=2)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    encoder = [n for n in names if n.startswith("visual_encoder.")]
    assert not any(n.startswith("item_embedding") for n, _ in model.named_parameters())
    blocks = {n.split(".")[5] for n in encoder if ".resblocks." in n}
    assert blocks == {"2", "3"} and "visual_encoder.encoder.dtl.0.weight" in encoder
    groups = {g.get("name"): g for g in model.param_groups(model.config)}
    assert len(groups["visual_encoder"]["params"]) == len(encoder)
    assert groups["visual_encoder"]["weight_decay"] == 0.0 and groups["rec"]["weight_decay"] == 0.1
    info = model.visual_encoder.describe()
    assert info["init"] == "random" and info["trunk_cache"] == "device"


def test_full_scores_match_training_scores_and_catalogue_encoded_once(data, pixels):
    model = build(PixelNetSASRec, "pixelnet_sasrec", data, pixels)
    calls = []  # rows through the DTL: every encoded item passes it once, cached trunk or not
    model.visual_encoder.encoder.dtl.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    users = np.arange(1, 6)
    model.eval()
    batch = {"user": torch.as_tensor(users),
             "history": torch.as_tensor(D.eval_histories(data, users, "validation").astype(np.int64))}
    with torch.no_grad():
        full = model.full_scores(batch)
        items = torch.tensor([[1, 5, 9]] * len(users))
        torch.testing.assert_close(model.score_items(batch, items), full.gather(1, items), rtol=1e-4, atol=1e-5)
    assert full.shape == (5, N_ITEMS + 1)
    calls.clear()
    E.score_users(model, data, "validation", torch.device("cpu"), batch_size=3)
    assert sum(calls) == N_ITEMS + 1  # 4 user batches, one catalogue encoding
    calls.clear()
    E.score_users(model, data, "test", torch.device("cpu"), batch_size=3)
    assert sum(calls) == N_ITEMS + 1  # a new evaluation encodes again (weights may have changed)


def test_a_few_steps_lower_the_loss(data, pixels):
    model = build(PixelNetSASRec, "pixelnet_sasrec", data, pixels, trunk_cache="device")
    opt = torch.optim.AdamW(model.param_groups(model.config))
    batch = batch_of(PixelNetSASRec, data, n=8)
    first = None
    for _ in range(15):
        model.train()
        loss = model.loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first


def test_ce_loss_is_refused(data, pixels):
    from schemas.errors import InputError

    with pytest.raises(InputError, match="bpr"):
        build(PixelNetSASRec, "pixelnet_sasrec", data, pixels, loss="ce")


def test_bert4rec_masked_and_pad_inputs_are_the_all_ones_image(data, pixels):
    model = build(PixelNetBERT4Rec, "pixelnet_bert4rec", data, pixels).eval()
    mask = model.mask_token
    assert mask == N_ITEMS + 1
    visual = model.visual_encoder
    with torch.no_grad():
        size = visual.encoder.image_size
        ones = visual.encoder(torch.ones(1, 3, *size))[0]
        zero = visual.encoder(torch.zeros(1, 3, *size))[0]
        torch.testing.assert_close(visual.encode(torch.tensor([mask]))[0], ones)
        torch.testing.assert_close(visual.encode(torch.tensor([0]))[0], zero)  # target PAD: zero image
        assert visual.all().shape[0] == N_ITEMS + 2 and model.item_representation().shape[0] == N_ITEMS + 1
        seq = torch.tensor([[0, 0, 3, 4, mask], [0, 0, 3, 4, mask]])
        seq[1, 0] = mask  # a PAD input slot reads as [MASK]; attention masks only the other PAD
        swapped = torch.where(seq == 0, mask, seq)
        # PAD inputs enter as the ones image: the same as [MASK] inputs, except for the key mask
        positions = torch.arange(5)
        x = model.input_norm(model.item_embedding(swapped) + model.position_embedding(positions)[None])
        from pixelrec_data.baselines.models.layers import additive_mask
        want = model.encoder(x, additive_mask(seq != 0, causal=False))
        torch.testing.assert_close(model.encode(seq), want)
        assert not torch.allclose(model.encode(seq)[0], model.encode(seq)[1])  # slot 0: PAD vs [MASK]
