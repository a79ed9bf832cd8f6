"""prepare-images cache and the torch helpers over it, on a small hand-built release."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from schemas.errors import InputError
from test_loader_helpers import CORRUPT_COVER, ITEMS, MISSING_COVER, make_release

ROOT = Path(__file__).resolve().parent.parent
torch = pytest.importorskip("torch")


def _cli(*args):
    env = {**os.environ, "PIXELREC_QUIET": "1"}
    return subprocess.run([sys.executable, "-c", "from pixelrec_data.cli import main; main()", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("data"), "pixel200k")


def _expected(release, item, size, mode):
    with Image.open(release / "covers" / f"i{item}.jpg") as img:
        img = img.convert("RGB")
        if mode == "squash":
            return np.asarray(img.resize((size, size), Image.BILINEAR))
    from torchvision import transforms  # the official transforms, as an independent reference
    return np.asarray(transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])(img))


@pytest.mark.parametrize("mode", ["squash", "center_crop"])
def test_pixels_equal_direct_pillow_decode(release, mode):
    done = _cli("prepare-images", "--release", str(release), "--size", "24", "--mode", mode,
                "--full-decode")
    assert done.returncode == 0, done.stderr
    assert "images/s" in done.stdout
    array = np.load(release / "images" / f"images_24_{mode}.npy", mmap_mode="r")
    assert array.shape == (len(ITEMS), 24, 24, 3) and array.dtype == np.uint8
    index = pq.read_table(release / "images" / f"images_24_{mode}.index.parquet").to_pylist()
    assert [r["item_id"] for r in index] == [f"i{i}" for i in ITEMS]
    for entry in index:
        item = int(entry["item_id"][1:])
        if item in (MISSING_COVER, CORRUPT_COVER):
            assert entry["status"] == ("missing" if item == MISSING_COVER else "failed")
            assert (array[entry["row"]] == 128).all()
        else:
            assert entry["status"] == "ok"
            assert np.array_equal(array[entry["row"]], _expected(release, item, 24, mode))
    report = json.loads((release / "images" / f"images_24_{mode}.report.json").read_text())
    assert (report["ok"], report["missing"], report["failed"]) == (len(ITEMS) - 2, 1, 1)
    assert sorted(p["item_id"] for p in report["placeholders"]) == [f"i{CORRUPT_COVER}", f"i{MISSING_COVER}"]
    again = _cli("prepare-images", "--release", str(release), "--size", "24", "--mode", mode,
                 "--full-decode")
    assert again.returncode == 0 and "up to date" in again.stdout


def test_bad_input_is_one_line(tmp_path):
    done = _cli("prepare-images", "--release", str(tmp_path / "none"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no such release" in done.stderr
    (tmp_path / "empty").mkdir()
    done = _cli("prepare-images", "--release", str(tmp_path / "empty"))
    assert done.returncode == 2 and "items.parquet" in done.stderr and "Traceback" not in done.stderr


def test_resume_and_rebuild_on_change(tmp_path, monkeypatch):
    from pixelrec_data.covers import cache as images, cache_reader as image_cache

    rel = make_release(tmp_path, "r")
    monkeypatch.setattr(images, "CHUNK", 2)
    calls = []
    real = images.decode_cover

    def interrupted(path, size, mode, *full_decode):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path, size, mode, *full_decode)

    monkeypatch.setattr(images, "decode_cover", interrupted)
    with pytest.raises(KeyboardInterrupt):
        images.prepare_images(rel, size=16, workers=1)
    files = images.cache_files(rel, 16, "squash")
    assert not files["array"].exists() and not files["meta"].exists()  # nothing that looks whole
    assert images._read_state(files["state"])["done"] == {0, 1}
    with open(files["state"], "a") as log:  # a line torn by a kill: that chunk is redone
        log.write('{"chunk": 2, "failu')
    decoded = []
    monkeypatch.setattr(images, "decode_cover", lambda *a: decoded.append(a[0]) or real(*a))
    monkeypatch.setattr(images, "_finish", lambda *a: None)  # stop before the rename, log kept
    images.prepare_images(rel, size=16, workers=1)
    assert len(decoded) == len(ITEMS) - 4
    assert images._read_state(files["state"])["done"] == set(range(len(ITEMS) // 2))
    monkeypatch.undo()
    monkeypatch.setattr(images, "CHUNK", 2)
    report = images.prepare_images(rel, size=16, workers=1)
    assert report["items"] == len(ITEMS) and report["missing"] == report["failed"] == 1
    assert not files["state"].exists() and not files["partial"].exists()
    resumed = np.load(files["array"]).tobytes()
    full = images.prepare_images(rel, size=16, workers=1, force=True)
    assert np.load(files["array"]).tobytes() == resumed  # resuming gives the uninterrupted result
    assert full["ok"] == report["ok"]
    assert images.is_current(rel, 16, "squash")
    # a changed cover invalidates the cache
    Image.new("RGB", (30, 20), (255, 0, 0)).save(rel / "covers" / "i0.jpg")
    assert not images.is_current(rel, 16, "squash")
    images.prepare_images(rel, size=16, workers=2)
    cache = image_cache.ImageCache(rel, 16)
    assert cache.numpy(cache.rows(["i0"]))[0, 8, 8, 0] > 240


def test_cache_tensors_and_normalisation(release):
    from pixelrec_data.covers.cache_reader import ImageCache
    from pixelrec_data.covers.cache import prepare_images

    prepare_images(release, size=24, mode="squash", workers=2)
    cache = ImageCache(release, 24, "squash")
    rows = cache.rows(["i3", "i0"])
    raw = cache.tensor(rows, normalize=None)
    assert raw.dtype == torch.uint8 and raw.shape == (2, 3, 24, 24)
    assert np.array_equal(cache.tensor(rows, None, channels_first=False).numpy(), cache.numpy(rows))
    official = cache.tensor(rows, normalize="official")
    assert torch.allclose(official, raw.float() / 127.5 - 1.0, atol=1e-6)
    clip = cache.tensor(np.array([rows[0], -1]), normalize="clip")
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    assert torch.allclose(clip[0], (raw[0].float() / 255 - mean) / std, atol=1e-5)
    assert (clip[1] == 0).all()  # PAD row
    with pytest.raises(InputError):
        cache.rows(["i999"])
    with pytest.raises(InputError, match="prepare-images"):
        ImageCache(release, 48, "squash")


class _Noisy:
    """A dataset whose items use numpy randomness, to check worker seeding too."""

    def __init__(self, cache):
        from image_loading import CoverDataset
        self.inner = CoverDataset(cache)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        row, image = self.inner[i]
        return row, image + float(np.random.rand())


def _batches(loader):
    return [(r.tolist(), x.sum().item()) for r, x in loader]


def test_seeded_loader_same_seed_same_batches(release):
    from image_loading import seeded_loader
    from pixelrec_data.covers.cache_reader import ImageCache
    from pixelrec_data.covers.cache import prepare_images

    prepare_images(release, size=24, mode="squash", workers=1)
    cache = ImageCache(release, 24, "squash")
    data = _Noisy(cache)
    first = _batches(seeded_loader(data, batch_size=3, seed=7, num_workers=2))
    assert first == _batches(seeded_loader(data, batch_size=3, seed=7, num_workers=2))
    assert sorted(r for rows, _ in first for r in rows) == list(range(len(ITEMS)))
    other = _batches(seeded_loader(data, batch_size=3, seed=8, num_workers=2))
    assert other != first
    plain = _batches(seeded_loader(data, batch_size=3, seed=7, shuffle=False))
    assert [r for rows, _ in plain for r in rows] == list(range(len(ITEMS)))


def test_scaled_jpeg_decoding_stays_close_to_a_full_decode(tmp_path):
    """The default decodes a large JPEG at reduced scale (draft) before the same resize: the
    pixels differ from a full decode by resampling noise only (PSNR printed on failure)."""
    from pixelrec_data.covers.cache import decode_cover

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize((1280, 720),
                                                                                       Image.BICUBIC)
    path = tmp_path / "i0.jpg"
    picture.save(path, quality=90)
    for mode in ("squash", "center_crop"):
        scaled, _, _ = decode_cover(str(path), 224, mode)
        full, _, _ = decode_cover(str(path), 224, mode, full_decode=True)
        mse = np.mean((scaled.astype(np.float64) - full.astype(np.float64)) ** 2)
        psnr = 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))
        assert psnr > 35.0, f"{mode}: PSNR {psnr:.1f} dB of the scaled decode against the full one"


def test_squash_decodes_a_wide_cover_at_a_quarter_and_center_crop_at_half(tmp_path):
    """squash may enlarge a side by up to 4/3 after scaled decoding (1280x720 -> 320x180 for 224),
    center_crop keeps both sides >= the size (640x360)."""
    from pixelrec_data.covers.cache import draft_request

    path = tmp_path / "i0.jpg"
    Image.new("RGB", (1280, 720), (10, 200, 30)).save(path, quality=90)
    for mode, expected in (("squash", (320, 180)), ("center_crop", (640, 360))):
        with Image.open(path) as image:
            image.draft("RGB", draft_request(224, mode))
            assert image.size == expected, (mode, image.size)
