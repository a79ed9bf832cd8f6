"""The validator's resize path and its limits: exact output sizes per mode and aspect ratio (JPEG
sources decoded at reduced scale, others not), the same picture as a plain full-size resize, bombs
refused from the header alone, and fetch-covers --resize end to end, including reruns that change
the stored format."""
from __future__ import annotations

import hashlib
import io
import time

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageOps, JpegImagePlugin

from pixelrec_data.covers.fetch import FetchOptions, fetch_release_covers, images
from pixelrec_data.covers.fetch.images import ResizeSpec, process_cover
from test_downloader import FAST, covers_by_id, pixelrec, write_items
from test_downloader_server import HITS, LocalServer, bomb_jpeg, broken_png, cover_app, make_image

SOURCES = [(640, 360), (360, 640), (300, 300), (100, 50), (1000, 240)]
EXPECTED = {  # (source size, mode) -> stored size, for S = 64
    "keep_ratio": {(640, 360): (114, 64), (360, 640): (64, 114), (300, 300): (64, 64),
                   (100, 50): (128, 64), (1000, 240): (267, 64)},
    "center_crop": {size: (64, 64) for size in SOURCES},
    "squash": {size: (64, 64) for size in SOURCES},
}


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("mode", list(EXPECTED))
def test_resize_sizes_are_exact_and_describe_the_stored_file(mode, fmt):
    for n, size in enumerate(SOURCES):
        cover = process_cover(make_image(n, size=size, fmt=fmt), resize=ResizeSpec(64, mode))
        assert cover.status == "ok"
        stored = decoded(cover.data)
        assert stored.format == "JPEG" and stored.mode == "RGB"
        assert stored.size == (cover.width, cover.height) == EXPECTED[mode][size], (size, mode)
        assert cover.sha256 == hashlib.sha256(cover.data).hexdigest()


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_reduced_scale_decode_gives_the_same_picture(mode):
    # a 1280x720 JPEG to 64: libjpeg decodes at 1/8 scale; compare with a full-size decode
    source = make_image(3, size=(1280, 720))
    cover = process_cover(source, resize=ResizeSpec(64, mode))
    full = decoded(source)
    if mode == "center_crop":
        reference = ImageOps.fit(full, (64, 64), Image.Resampling.BILINEAR)
    else:
        reference = full.resize(EXPECTED[mode].get((640, 360), (64, 64)) if mode == "keep_ratio"
                                else (64, 64), Image.Resampling.BILINEAR)
    got = np.asarray(decoded(cover.data), dtype=np.int16)
    assert got.shape == np.asarray(reference).shape
    assert np.abs(got - np.asarray(reference, dtype=np.int16)).mean() < 4


def textured_jpeg(seed: int, size=(480, 270)) -> bytes:
    """A cover-like picture: coarse shapes plus fine noise (make_image's blobs are very smooth)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize(size)
    noisy = np.asarray(coarse, dtype=np.int16) + rng.integers(-25, 25, (size[1], size[0], 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=85)
    return out.getvalue()


def test_resize_phash_matches_the_stored_file():
    # in resize mode the hash is taken just before encoding (saving a decode), from the picture
    # halved (160 px >= 128: images._hash_view); on cover-like pictures it is the stored file's
    # hash, give or take a bit or two
    distances = []
    for seed in range(12):
        for mode in EXPECTED:
            cover = process_cover(textured_jpeg(seed), resize=ResizeSpec(160, mode))
            stored_hash = imagehash.phash(decoded(cover.data))
            distances.append(imagehash.hex_to_hash(cover.phash) - stored_hash)
    assert max(distances) <= 2 and distances.count(0) >= len(distances) * 3 // 4
    original = textured_jpeg(99)  # the default mode hashes the stored (original) file exactly
    assert process_cover(original).phash == str(imagehash.phash(decoded(original)))
    png = make_image(5, size=(90, 60), fmt="PNG")  # and a re-encoded original's stored JPEG
    converted = process_cover(png)
    assert converted.phash == str(imagehash.phash(decoded(converted.data)))


def test_jpeg_sources_are_decoded_at_reduced_scale(monkeypatch):
    # whichever decoder runs: libjpeg-turbo through simplejpeg (a JPEG in memory), or Pillow's draft
    scales = []
    draft = JpegImagePlugin.JpegImageFile.draft
    decode_jpeg = images.simplejpeg.decode_jpeg

    def spy(self, mode, size):
        before = self.size
        result = draft(self, mode, size)
        scales.append(before[0] // self.size[0])
        return result

    def turbo_spy(data, *args, **kwargs):
        pixels = decode_jpeg(data, *args, **kwargs)
        scales.append(images.simplejpeg.decode_jpeg_header(data)[1] // pixels.shape[1])
        return pixels

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    monkeypatch.setattr(images.simplejpeg, "decode_jpeg", turbo_spy)
    process_cover(make_image(1, size=(1280, 720)), resize=ResizeSpec(64, "keep_ratio"))
    process_cover(make_image(1, size=(1280, 720)), resize=ResizeSpec(300, "center_crop"))
    process_cover(make_image(1, size=(400, 300)), resize=ResizeSpec(256, "squash"))
    assert scales == [8, 2, 1]  # 720/64 >= 8; 720/300 >= 2; under 2x: full scale
    process_cover(make_image(1, size=(1280, 720)))
    assert scales[3:] in ([], [1])  # the default mode decodes the original at full size


def test_bomb_is_refused_from_the_header_without_decoding(monkeypatch):
    for width, height in [(60000, 60000), (7000, 7000)]:  # over PIL's limit; under it, over ours
        data = bomb_jpeg(width, height)
        assert len(data) < 2000
        started = time.perf_counter()
        cover = process_cover(data)
        assert cover.status == "bomb" and time.perf_counter() - started < 0.5, cover
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # ours does not depend on PIL's setting
    assert process_cover(bomb_jpeg()).status == "bomb"
    assert process_cover(bomb_jpeg(), resize=ResizeSpec(64)).status == "bomb"
    assert process_cover(bomb_jpeg(300, 200)).status != "bomb"  # the limit, not the crafting


def test_broken_pixels_are_corrupt_in_both_modes():
    assert process_cover(broken_png()).status == "corrupt"
    assert process_cover(broken_png(), resize=ResizeSpec(32, "squash")).status == "corrupt"
    jpeg = make_image(4, size=(200, 100))
    assert process_cover(jpeg[: len(jpeg) * 2 // 3], resize=ResizeSpec(32)).status == "truncated"
    assert process_cover(jpeg[: len(jpeg) * 2 // 3], complete=True).status == "corrupt"


def test_fetch_covers_resize_end_to_end_and_format_changes(tmp_path):
    images = {f"{n}.jpg": make_image(n, size=SOURCES[n % len(SOURCES)]) for n in range(6)}
    images["p.png"] = make_image(9, size=(90, 200), fmt="PNG", mode="RGBA")
    release = tmp_path / "rel"
    release.mkdir()
    with LocalServer(cover_app(images)) as server:
        hits = server.app[HITS]
        urls = {f"i{n}": f"{server.url}/img/{n}.jpg" for n in range(6)}
        write_items(release, {**urls, "i6": f"{server.url}/img/p.png"})
        proc = pixelrec("fetch-covers", "--release", release, "--resize", 48, "--resize-mode",
                        "center_crop", "--shard-size", 4, "--per-host", 2, *FAST)
        assert proc.returncode == 0, proc.stderr
        assert "images/s" in proc.stdout
        rows = covers_by_id(release)
        for item, row in rows.items():
            data = (release / "covers" / f"{item}.jpg").read_bytes()
            assert row["status"] == "ok" and (row["width"], row["height"]) == (48, 48)
            assert decoded(data).size == (48, 48) and len(data) == row["bytes"]
            assert hashlib.sha256(data).hexdigest() == row["sha256"] and row["attempts"] == 1
        options = dict(rate=0, retries=0, timeout=5.0, shard_size=4, allow_private_hosts=True)
        resize = ResizeSpec(48, "center_crop")
        assert fetch_release_covers(release, FetchOptions(**options, resize=resize))[
            "fetched_this_run"] == 0  # same settings: nothing to do
        (release / "covers/_stats/shard-00001.json").unlink()  # as if killed inside shard 1
        before = sum(hits.values())
        again = fetch_release_covers(release, FetchOptions(**options, resize=resize))
        # a resized file cannot be checked against its source: shard 1 (3 items) is fetched again
        assert again["fetched_this_run"] == 3 and sum(hits.values()) == before + 3
        assert covers_by_id(release) == rows  # re-encoding is deterministic: the same rows
        (release / "covers/_stats/shard-00001.json").unlink()
        back = fetch_release_covers(release, FetchOptions(**options))  # the originals, please
        assert back["fetched_this_run"] == 7  # no resized file is taken for an original
        assert (release / "covers/i0.jpg").read_bytes() == images["0.jpg"]
        assert covers_by_id(release)["i1"]["width"] == SOURCES[1][0]
        assert fetch_release_covers(release, FetchOptions(**options))["fetched_this_run"] == 0


def test_resize_options_are_checked():
    with pytest.raises(ValueError):
        ResizeSpec(0)
    with pytest.raises(ValueError):
        ResizeSpec(64, "stretch")
    proc = pixelrec("fetch-covers", "--release", ".", "--resize", 64, "--resize-mode", "fill")
    assert proc.returncode == 2 and "fill" in proc.stderr


def test_phash_hex_is_imagehash_phash_as_text():
    from pixelrec_data.covers.fetch.images import phash_hex

    rng = np.random.default_rng(3)
    for n in range(40):
        pixels = rng.integers(0, 256, size=(17 + 7 * n, 23 + 5 * n, 3), dtype=np.uint8)
        image = Image.fromarray(pixels, "RGB")
        assert phash_hex(image) == str(imagehash.phash(image))
    assert phash_hex(decoded(make_image(5, size=(480, 270)))) == str(
        imagehash.phash(decoded(make_image(5, size=(480, 270)))))


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_rgbx_and_rgb_arrays_resize_and_hash_alike(mode):
    # the turbo path decodes to RGBX (4 bytes a pixel), Pillow's path gives RGB: the same picture
    from pixelrec_data.covers.fetch.resize import pixels_phash, resize_pixels

    rng = np.random.default_rng(7)
    for size in [(480, 270), (90, 200), (1000, 240), (64, 64)]:  # shrink, enlarge, past 2x, same
        rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        rgbx = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
        spec = ResizeSpec(64, mode)
        small_rgb, small_rgbx = resize_pixels(rgb, spec, size), resize_pixels(rgbx, spec, size)
        assert small_rgb.shape[:2] == small_rgbx.shape[:2], (size, small_rgb.shape, small_rgbx.shape)
        differ = int((small_rgbx[..., :3] != small_rgb).sum())
        assert differ == 0, f"{size} {mode}: {differ} of {small_rgb.size} values differ"
        assert pixels_phash(small_rgb) == pixels_phash(small_rgbx)


def test_the_resize_is_closer_to_a_lanczos_resize_than_a_box_filter_is():
    # what resize.py claims for its filter: on cover-like pictures shrunk by less than 2x (as
    # every JPEG is after DCT scaling), bilinear lands nearer a Lanczos resize than area averaging
    from pixelrec_data.covers.fetch.resize import resize_pixels

    ours, box = [], []
    for seed in range(6):
        full = np.asarray(decoded(textured_jpeg(seed)).convert("RGB"))
        spec = ResizeSpec(224)
        target = spec.output_size(full.shape[1], full.shape[0])
        image = Image.fromarray(full)
        reference = np.asarray(image.resize(target, Image.Resampling.LANCZOS), dtype=np.float64)
        ours.append(np.mean((resize_pixels(full, spec, image.size) - reference) ** 2))
        box.append(np.mean((np.asarray(image.resize(target, Image.Resampling.BOX)) - reference) ** 2))
    assert np.mean(ours) < np.mean(box), (ours, box)


@pytest.mark.parametrize("mode", ["keep_ratio", "squash"])
def test_a_large_picture_is_reduced_before_it_becomes_an_array_with_the_same_result(mode):
    # Pillow's decoders give 4 bytes a pixel: reducing first keeps the array copy small
    from pixelrec_data.covers.fetch.resize import reduced_image, resize_pixels

    rgb = np.random.default_rng(3).integers(0, 256, (700, 1300, 3), dtype=np.uint8)
    spec, size = ResizeSpec(64, mode), (1300, 700)
    image = Image.fromarray(rgb)
    reduced = reduced_image(image, spec, size)
    assert reduced.width * 2 <= image.width, reduced.size
    early = resize_pixels(np.asarray(reduced), spec, size)
    late = resize_pixels(rgb, spec, size)
    assert early.shape == late.shape and int((early != late).sum()) == 0, (early.shape, late.shape)
