"""Image encoders: tune-layers settings, embedding methods, weight files (tiny towers, CPU)."""
import pytest
import torch

from pixelrec_data.baselines.encoders import EncoderConfig, ImageEncoder, param_groups
from pixelrec_data.baselines.encoders.weights import read_state_dict
from encoder_helpers import save_encoder_weights
from schemas.errors import InputError


def tiny(name="tiny-vit", **kw):
    torch.manual_seed(0)
    kw.setdefault("dim", 8)
    return ImageEncoder(EncoderConfig(name=name, **kw))


def trainable(enc):
    return {n for n, p in enc.named_parameters() if p.requires_grad}


def blocks_of(names, prefix):
    return {n.split(".")[3] for n in names if n.startswith(prefix)}


@pytest.mark.parametrize("k", [0, 1, 3, "all"])
def test_vit_tune_layers_train_exactly_the_named_blocks(k):
    enc = tiny(tune_layers=k, method="mean")
    names = trainable(enc)
    dtl = {n for n in names if n.startswith("dtl.")}
    assert dtl == {"dtl.0.weight", "dtl.0.bias"}
    if k == "all":
        assert names == {n for n, _ in enc.named_parameters()}
        return
    tuned = blocks_of(names, "visual.transformer.resblocks.")
    assert tuned == {str(i) for i in range(4 - k, 4)}
    assert names - dtl == {n for n, _ in enc.named_parameters()
                           if n.startswith("visual.transformer.resblocks.")
                           and int(n.split(".")[3]) >= 4 - k}


def test_vit_pool_trains_ln_post_with_the_blocks_and_mean_drops_it():
    pooled = trainable(tiny(tune_layers=1, method="pool"))
    assert {"visual.ln_post.weight", "visual.ln_post.bias"} <= pooled
    assert not any("ln_post" in n for n, _ in tiny(method="mean").named_parameters())
    assert not any(n == "visual.proj" for n, _ in tiny(method="pool").named_parameters())


@pytest.mark.parametrize("k,stages", [(0, set()), (2, {"layer3", "layer4"}), (4, {"layer1", "layer2", "layer3", "layer4"})])
def test_resnet_tune_layers_are_stages_and_attnpool_stays_frozen(k, stages):
    enc = tiny("tiny-rn", tune_layers=k, method="cls")
    names = trainable(enc) - {n for n in trainable(enc) if n.startswith("dtl.")}
    assert {n.split(".")[1] for n in names} == stages
    all_names = trainable(tiny("tiny-rn", tune_layers="all", method="cls"))
    assert any(n.startswith("visual.attnpool.") for n in all_names)
    assert any(n.startswith("visual.conv1") for n in all_names)


def test_rn50_two_tuned_layers_are_layer3_and_layer4():
    enc = ImageEncoder(EncoderConfig(name="RN50", dim=16, tune_layers=2, method="cls"))
    tuned = {n.split(".")[0] for n, p in enc.visual.named_parameters() if p.requires_grad}
    assert tuned == {"layer3", "layer4"}
    assert enc.feature_width == 1024 and enc.describe()["init"] == "random"


def test_only_tuned_parameters_receive_gradients():
    enc = tiny(tune_layers=2, method="cls").train()
    x = enc.normalise(torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8))
    enc(x).sum().backward()
    with_grad = {n for n, p in enc.named_parameters() if p.grad is not None}
    assert with_grad == trainable(enc)


@pytest.mark.parametrize("name,method", [("tiny-vit", "mean"), ("tiny-vit", "cls"), ("tiny-vit", "pool"),
                                         ("tiny-rn", "mean"), ("tiny-rn", "pool")])
def test_split_forward_equals_forward_and_shapes(name, method):
    enc = tiny(name, method=method, tune_layers=2).eval()
    x = enc.normalise(torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8))
    out = enc(x)
    assert out.shape == (4, 8)
    torch.testing.assert_close(enc.tuned_forward(enc.frozen_forward(x)), out)
    if method == "mean":
        assert (out >= 0).all()  # mean of ReLU outputs is non-negative (official quirk 7)


def test_cls_only_last_block_matches_full_block():
    full = tiny(method="cls", cls_only=False).eval()
    short = tiny(method="cls", cls_only=True).eval()
    short.load_state_dict(full.state_dict())
    assert short.uses_cls_only and not full.uses_cls_only
    x = full.normalise(torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8))
    torch.testing.assert_close(short(x), full(x), rtol=1e-5, atol=1e-6)


def test_normalisation_half_maps_to_minus_one_one_and_resizes():
    enc = tiny()
    px = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 32, 32, 3)
    x = enc.normalise(px.contiguous())
    assert x.shape == (2, 3, 64, 64)
    torch.testing.assert_close(x[0], torch.full_like(x[0], -1.0))
    torch.testing.assert_close(x[1], torch.full_like(x[1], 1.0))


def test_weights_round_trip_through_encoder_weights(tmp_path):
    enc = tiny(tune_layers=1)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn_like(p))
    path = save_encoder_weights(enc, tmp_path / "enc.pt")
    again = tiny(tune_layers=1, weights=str(path))
    for (n, a), (_, b) in zip(enc.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), n
    info = again.describe()
    assert info["init"] == "file" and info["dtl_from_file"] and len(info["weights_sha256"]) == 64


def test_full_clip_and_visual_only_and_model_checkpoints_load(tmp_path):
    src = tiny("tiny-rn", method="pool")
    visual = src.visual.state_dict()
    full = {f"visual.{k}": v for k, v in visual.items()}
    full.update({"transformer.resblocks.0.attn.in_proj_weight": torch.zeros(3), "logit_scale": torch.ones(())})
    runs = {"full.pt": {"state_dict": full}, "visual.pt": dict(visual),
            "model.pt": {f"module.visual_encoder.encoder.visual.{k}": v for k, v in visual.items()}}
    for name, state in runs.items():
        torch.save(state, tmp_path / name)
        loaded = tiny("tiny-rn", method="pool", weights=str(tmp_path / name))
        for k, v in visual.items():
            assert torch.equal(loaded.visual.state_dict()[k], v), (name, k)
        assert read_state_dict(tmp_path / name)


@pytest.mark.filterwarnings("ignore")  # torch.jit.trace deprecation and tracer notes
def test_openai_style_torchscript_archive_loads(tmp_path):
    src = tiny("tiny-rn", method="pool").eval()

    class CLIPLike(torch.nn.Module):  # OpenAI releases are scripted full models: visual.* keys
        def __init__(self, visual):
            super().__init__()
            self.visual = visual
            self.logit_scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.visual(x)

    torch.jit.trace(CLIPLike(src.visual), torch.randn(1, 3, 64, 64)).save(str(tmp_path / "RN.pt"))
    loaded = tiny("tiny-rn", method="pool", weights=str(tmp_path / "RN.pt"))
    for k, v in src.visual.state_dict().items():
        assert torch.equal(loaded.visual.state_dict()[k], v), k


def test_bad_weight_files_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        tiny(weights=str(tmp_path / "none.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        tiny(weights=str(tmp_path / "junk.pt"))
    torch.save(tiny("tiny-rn").visual.state_dict(), tmp_path / "rn.pt")
    with pytest.raises(InputError, match="no key matches|missing"):
        tiny("tiny-vit", weights=str(tmp_path / "rn.pt"))
    torch.save(tiny("tiny-vit").visual.state_dict(), tmp_path / "vit.pt")
    with pytest.raises(InputError, match="shape mismatch"):
        ImageEncoder(EncoderConfig(name="tiny-vit", dim=8, extra={"width": 32}, weights=str(tmp_path / "vit.pt")))


def test_param_groups_give_the_encoder_its_own_lr():
    model = torch.nn.Module()
    model.visual_encoder = tiny(tune_layers=1)
    model.pos = torch.nn.Embedding(10, 8)
    groups = param_groups(model, lr=1e-3, weight_decay=0.1, encoder_lr=1e-4, encoder_weight_decay=0.0)
    by_name = {g["name"]: g for g in groups}
    assert by_name["visual_encoder"]["lr"] == 1e-4 and by_name["rec"]["weight_decay"] == 0.1
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters() if p.requires_grad)


def test_unknown_encoder_and_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown encoder"):
        ImageEncoder(EncoderConfig(name="NoSuchNet"))
    with pytest.raises(ValueError):
        EncoderConfig(method="max")
    with pytest.raises(ValueError):
        EncoderConfig(tune_layers=-1)


@pytest.mark.parametrize("name,k,tuned", [("tiny-swin", 2, {"layers.2", "layers.3", "norm"}),
                                          ("tiny-beit", 1, {"blocks.3", "fc_norm"})])
def test_timm_towers_tune_the_last_stages_and_round_trip(tmp_path, name, k, tuned):
    enc = tiny(name, tune_layers=k, method="pool").train()
    names = {n for n in trainable(enc) if not n.startswith("dtl.")}
    assert {".".join(n.split(".")[1:3]) if ".".join(n.split(".")[1:2]) in ("layers", "blocks")
            else n.split(".")[1] for n in names} == tuned
    x = enc.normalise(torch.randint(0, 256, (3, 40, 40, 3), dtype=torch.uint8))
    torch.testing.assert_close(enc.tuned_forward(enc.frozen_forward(x)), enc(x))
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.01)
    path = save_encoder_weights(enc, tmp_path / "t.pt")
    again = tiny(name, tune_layers=k, method="pool", weights=str(path))
    enc.eval(), again.eval()
    torch.testing.assert_close(again(x), enc(x))
    assert enc.describe()["family"].startswith("timm-")
    with pytest.raises(ValueError, match="cls"):
        tiny(name, method="cls")


def openai_release_state(quick_gelu=True) -> dict:
    """A tiny CLIP in OpenAI's release layout with random values: open_clip's CLIP keys, weights
    in float16 as OpenAI ships them, and the three integer marks of OpenAI's files."""
    from open_clip.model import CLIP, convert_weights_to_fp16

    torch.manual_seed(3)
    clip = CLIP(32, vision_cfg={"image_size": 64, "patch_size": 16, "width": 64, "layers": 2},
                text_cfg={"context_length": 8, "vocab_size": 50, "width": 64, "heads": 1, "layers": 1},
                quick_gelu=quick_gelu)
    convert_weights_to_fp16(clip)
    state = {k: v.clone() for k, v in clip.state_dict().items()}
    state.update(input_resolution=torch.tensor(64), context_length=torch.tensor(8),
                 vocab_size=torch.tensor(50))
    return state


def test_openai_weights_run_with_quick_gelu_whatever_the_name(tmp_path):
    from open_clip.model import build_model_from_openai_state_dict
    from open_clip.transformer import QuickGELU

    state = openai_release_state()
    torch.save(state, tmp_path / "openai.pt")
    # the layout is OpenAI's: open_clip's own OpenAI loader builds a model from it
    reference = build_model_from_openai_state_dict(dict(state), cast_dtype=None).float().visual
    kw = {"name": "tiny-vit", "method": "pool", "extra": {"layers": 2, "head_width": 64}}
    enc = tiny(weights=str(tmp_path / "openai.pt"), **kw).eval()
    kinds = {type(m) for m in enc.visual.modules()}
    assert QuickGELU in kinds and torch.nn.GELU not in kinds, kinds
    assert enc.describe()["activation"] == "quick_gelu" and enc.describe()["openai_release"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference.ln_post(reference.transformer(reference._embeds(x))[:, 0])
        torch.testing.assert_close(enc.features(x), expected, rtol=1e-4, atol=1e-4)
        # the same weights under plain GELU give other features: the activation matters here
        plain = tiny(weights=str(tmp_path / "openai.pt"), quick_gelu=False, **kw).eval()
        assert (plain.features(x) - expected).abs().max() > 1e-3


def test_weights_without_openai_marks_keep_the_configs_gelu(tmp_path):
    state = {k: v for k, v in openai_release_state().items()
             if k not in ("input_resolution", "context_length", "vocab_size")}
    torch.save(state, tmp_path / "openclip.pt")
    kw = {"name": "tiny-vit", "extra": {"layers": 2, "head_width": 64}}
    enc = tiny(weights=str(tmp_path / "openclip.pt"), **kw)
    assert enc.describe()["activation"] == "gelu" and not enc.describe()["openai_release"]
    assert tiny(**kw).describe()["activation"] == "gelu"
