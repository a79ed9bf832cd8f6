"""PixelNet item encoder: every cost optimisation gives the plain path's loss and gradients."""
import numpy as np
import pytest
import torch

from pixelrec_data.baselines.encoders import EncoderConfig, ImageEncoder
from pixelrec_data.baselines.models.pixelnet import ItemImageEncoder, PixelSource

N_ITEMS = 12


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(N_ITEMS, 48, 48, 3), dtype=np.uint8)  # resized to 64 by the tower


def make(pixels, method="mean", tune=2, name="tiny-vit", cls_only=False, **kw):
    torch.manual_seed(0)
    enc = ImageEncoder(EncoderConfig(name=name, dim=8, tune_layers=tune, method=method, cls_only=cls_only))
    return ItemImageEncoder(enc, PixelSource(pixels), **kw)


def batch_ids():
    # a SEQ-style batch [B, 11, 2] with PADs (0) and repeated items, as in training
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, N_ITEMS, (3, 11, 2), generator=g)
    ids[0, :4] = 0
    ids[:, 0, 1] = 0
    return ids


def loss_and_grads(module, ids):
    module.train()
    module.zero_grad()
    emb = module(ids)  # [B, 11, 2, d]
    query = torch.linspace(-1, 1, emb.shape[-1])
    score = (emb * query).sum(-1)
    loss = -torch.nn.functional.logsigmoid(score[..., 0] - score[..., 1]).sum(-1).mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def assert_same(a, b):
    (la, ga), (lb, gb) = a, b
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-6)
    assert ga.keys() == gb.keys() and ga
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], rtol=1e-4, atol=1e-6, msg=lambda m, n=n: f"{n}: {m}")  # keeps the sizes


@pytest.mark.parametrize("method,tune,cls_only,cache", [
    ("mean", 2, False, "device"), ("mean", 0, False, "host"), ("cls", 1, True, "device"),
    ("cls", 0, True, "host"), ("pool", 2, True, "mmap"),
])
def test_optimised_paths_match_plain_end_to_end(pixels, tmp_path, method, tune, cls_only, cache):
    ids = batch_ids()
    plain = make(pixels, method, tune, dedup=False)
    fast = make(pixels, method, tune, cls_only=cls_only, dedup=True, trunk_cache=cache,
                cache_path=tmp_path / "trunk.npy")
    fast.load_state_dict(plain.state_dict())
    assert_same(loss_and_grads(plain, ids), loss_and_grads(fast, ids))
    # second step: the cache is now read, not filled
    assert_same(loss_and_grads(plain, ids), loss_and_grads(fast, ids))
    fast.close()


def test_dedup_alone_matches_and_encodes_each_item_once(pixels):
    ids = batch_ids()
    plain, fast = make(pixels, dedup=False), make(pixels, dedup=True)
    assert_same(loss_and_grads(plain, ids), loss_and_grads(fast, ids))
    seen = []
    fast.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    fast(ids)
    assert seen == [len(torch.unique(ids))]


def test_resnet_cache_and_dedup_match_with_frozen_batchnorm(pixels):
    ids = batch_ids()
    plain = make(pixels, "pool", 0, name="tiny-rn", dedup=False)
    fast = make(pixels, "pool", 0, name="tiny-rn", dedup=True, trunk_cache="device")
    fast.load_state_dict(plain.state_dict())
    assert_same(loss_and_grads(plain, ids), loss_and_grads(fast, ids))


def test_bf16_cache_is_close_and_halves_memory(pixels):
    ids = batch_ids()
    f32 = make(pixels, trunk_cache="host")
    b16 = make(pixels, trunk_cache="host", cache_dtype=torch.bfloat16)
    (l32, _), (l16, _) = loss_and_grads(f32, ids), loss_and_grads(b16, ids)
    assert abs(l32 - l16) < 0.05 * abs(l32) + 1e-3
    assert b16._cache.nbytes * 2 == f32._cache.nbytes


def test_pad_and_missing_covers_are_the_zero_normalised_image(pixels):
    rows = np.arange(N_ITEMS)
    rows[5] = -1  # item 5 has no cover
    torch.manual_seed(0)
    enc = ImageEncoder(EncoderConfig(name="tiny-vit", dim=8))
    module = ItemImageEncoder(enc, PixelSource(pixels, rows=rows))
    x = module.images(torch.tensor([0, 5, 3]))
    assert torch.count_nonzero(x[:2]) == 0 and torch.count_nonzero(x[2]) > 0
    emb = module.eval()(torch.tensor([0, 5]))
    torch.testing.assert_close(emb[0], emb[1])


def test_encode_all_once_per_evaluation_and_equal_to_lookups(pixels):
    module = make(pixels, trunk_cache="device").eval()
    calls = []
    module.encoder.register_forward_pre_hook(lambda m, a: calls.append(1))
    table = module.encode_all(batch_size=5)
    assert table.shape == (N_ITEMS, 8)
    n_calls = len(calls)
    ids = torch.tensor([[0, 3, 3], [7, 1, 11]])
    torch.testing.assert_close(module(ids), table[ids])
    assert module.all() is table and len(calls) == n_calls  # no re-encoding inside one evaluation
    module.train()
    assert module._table is None
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(module(ids), table[ids], rtol=1e-5, atol=1e-6)


def test_prefill_fills_every_item_and_cache_needs_a_frozen_trunk(pixels, tmp_path):
    module = make(pixels, trunk_cache="mmap", cache_path=tmp_path / "c.npy")
    module.prefill(batch_size=5)
    assert bool(module._cache.filled.all())
    assert (tmp_path / "c.npy").stat().st_size >= module._cache.nbytes
    module.close()
    assert not (tmp_path / "c.npy").exists()
    with pytest.raises(ValueError, match="frozen trunk"):
        make(pixels, tune="all", trunk_cache="device")


@pytest.mark.parametrize("name", ["tiny-swin", "tiny-beit"])
def test_timm_tower_cache_and_dedup_match_plain(pixels, name):
    ids = batch_ids()
    plain = make(pixels, "pool", 2, name=name, dedup=False)
    fast = make(pixels, "pool", 2, name=name, dedup=True, trunk_cache="device")
    fast.load_state_dict(plain.state_dict())
    assert_same(loss_and_grads(plain, ids), loss_and_grads(fast, ids))
