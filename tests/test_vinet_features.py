"""`pixelrec extract-features`: rows aligned to item ids, PAD row, missing covers, atomic output."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pathlib import Path

from encoder_helpers import save_encoder_weights
from toy import write_release
from pixelrec_data.baselines.models.vinet.features import aligned_features, decode_cover, extract, load_features
from pixelrec_data.baselines.encoders import EncoderConfig, ImageEncoder
from schemas.errors import InputError

N_ITEMS = 12
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rel") / "toy"
    rng = np.random.default_rng(0)
    seqs = [list(rng.permutation(N_ITEMS)[:6]) for _ in range(8)]
    write_release(folder, seqs, N_ITEMS)
    covers = folder / "covers"
    covers.mkdir()
    for i in range(N_ITEMS):
        if i == 7:
            continue  # item i7 has no cover
        colour = (i * 20 % 256, 255 - i * 20 % 256, (i * 53) % 256)
        Image.new("RGB", (40 + i, 30), colour).save(covers / f"i{i}.jpg", quality=95)
    (covers / "i3.jpg").write_bytes(b"broken")  # unreadable
    return folder


def run_cli(*args):
    code = "import sys; from pixelrec_data.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PIXELREC_QUIET": "1"}, cwd=str(ROOT))


def test_command_writes_pooled_features_aligned_to_item_ids(release):
    proc = run_cli("extract-features", "--release", str(release), "--encoder", "tiny-rn",
                   "--layer", "pooled", "--batch-size", "5")
    assert proc.returncode == 0, proc.stderr
    arr, ids = load_features(release, "tiny-rn_pooled")
    assert arr.shape == (N_ITEMS + 1, 256) and arr.dtype == np.float32
    assert ids[0] is None and ids[1:] == [f"i{i}" for i in range(N_ITEMS)]
    assert not arr[0].any()  # PAD
    meta = json.loads((release / "features" / "tiny-rn_pooled.json").read_text())
    assert meta["blank_covers"] == 2 and meta["encoder"]["init"] == "random"
    np.testing.assert_array_equal(arr[1 + 7], arr[1 + 3])  # both blank covers
    assert not np.array_equal(arr[1 + 1], arr[1 + 2])
    assert "no --encoder-weights" in proc.stderr


def test_features_equal_the_tower_applied_to_each_cover(release, tmp_path):
    torch.manual_seed(0)
    enc = ImageEncoder(EncoderConfig(name="tiny-vit", tune_layers=0, method="pool"))
    weights = save_encoder_weights(enc, tmp_path / "w.pt")
    out = extract(release, "tiny-vit", "spatial", weights=str(weights), batch_size=4, dtype="float32")
    arr = np.load(out)
    assert arr.shape == (N_ITEMS + 1, 4, 4, 64)
    pixels = decode_cover(release / "covers" / "i5.jpg", 64)
    want = enc.eval().features(enc.normalise(torch.from_numpy(pixels)[None]), "spatial")[0].numpy()
    np.testing.assert_allclose(arr[1 + 5], want, rtol=1e-4, atol=1e-5)
    assert not list((release / "features").glob(".*tmp*"))


def test_aligned_features_reorders_by_item_token(release):
    extract(release, "tiny-rn", "pooled", batch_size=6)
    arr, _ = load_features(release, "tiny-rn_pooled")
    same = aligned_features(release, "tiny-rn_pooled", [f"i{i}" for i in range(N_ITEMS)])
    assert isinstance(same, np.memmap)
    tokens = ["i4", "i0", "i11"]
    got = aligned_features(release, "tiny-rn_pooled", tokens)
    np.testing.assert_array_equal(got[1:], arr[[5, 1, 12]])
    assert not got[0].any()
    with pytest.raises(InputError, match="no row for item i99"):
        aligned_features(release, "tiny-rn_pooled", ["i99"])


def test_bad_input_is_one_line_and_exit_2(tmp_path, release, capsys):
    proc = run_cli("extract-features", "--release", str(tmp_path / "nope"), "--encoder", "tiny-rn")
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    from pixelrec_data.cli import main

    for args, message in ((["--encoder", "NoSuchNet"], "unknown encoder"),
                          (["--encoder", "tiny-rn", "--encoder-weights", str(tmp_path / "w.pt")], "not found")):
        with pytest.raises(SystemExit) as stop:
            main(["extract-features", "--release", str(release), *args])
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_image_cache_and_jpeg_paths_give_the_same_features(release, tmp_path):
    import shutil
    from pixelrec_data.covers.cache import prepare_images

    copy = tmp_path / "toy"
    shutil.copytree(release, copy, ignore=shutil.ignore_patterns("features"))
    jpeg = np.load(extract(copy, "tiny-rn", "pooled", batch_size=5))
    meta = json.loads((copy / "features" / "tiny-rn_pooled.json").read_text())
    assert meta["pixels_from"] == "covers/*.jpg"
    prepare_images(copy, size=64, mode="squash", workers=1)
    cached = np.load(extract(copy, "tiny-rn", "pooled", batch_size=5))
    meta = json.loads((copy / "features" / "tiny-rn_pooled.json").read_text())
    assert meta["pixels_from"] == "image-cache" and meta["blank_covers"] == 2
    np.testing.assert_allclose(cached, jpeg, rtol=1e-5, atol=1e-6)


def test_killed_extraction_resumes_and_leaves_no_temporaries(release, monkeypatch):
    from pixelrec_data.baselines.models.vinet import features as F

    folder = release / "features"
    (folder).mkdir(exist_ok=True)
    (folder / ".tiny-vit_pooled.npy.tmp-dead0000").write_bytes(b"left by a SIGKILL")
    want = extract(release, "tiny-vit", "pooled", batch_size=4, seed=3)
    full = np.load(want).copy()
    want.unlink()
    calls = {"n": 0}
    original = F.CoverReader.batch

    def dying(self, start, stop):  # a kill during the third batch
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, start, stop)

    monkeypatch.setattr(F.CoverReader, "batch", dying)
    with pytest.raises(KeyboardInterrupt):
        extract(release, "tiny-vit", "pooled", batch_size=4, seed=3)
    assert not want.exists() and (folder / ".tiny-vit_pooled.npy.partial").exists()
    record = json.loads((folder / ".tiny-vit_pooled.npy.partial.json").read_text())
    assert record["done"] == 8
    seen = []
    monkeypatch.setattr(F.CoverReader, "batch", lambda self, a, b: seen.append(a) or original(self, a, b))
    extract(release, "tiny-vit", "pooled", batch_size=4, seed=3)
    assert seen == [8]  # only the batch that was not finished
    np.testing.assert_array_equal(np.load(want), full)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".tiny-vit_pooled")) == []
