"""Cover bodies and decodes in bounded memory: a body over the in-memory size (or past the shared
budget) is decoded from its temporary file and gives the very rows and covers an in-memory body
gives, in every format; libjpeg-turbo's decode (simplejpeg) gives Pillow's pixels at every scale
and chroma layout (resize mode repeats chroma pixels instead: never for the worse, and chosen by a
body's size alone, wherever it waited); decodes wait for memory."""
from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from pixelrec_data.covers import store
from pixelrec_data.covers.fetch import FetchOptions, bodies, fetch_release_covers, images
from pixelrec_data.covers.fetch.images import ResizeSpec, process_cover
from test_downloader import covers_by_id, write_items
from test_downloader_server import LocalServer, cover_app, make_image


def jpeg(seed: int, size=(480, 270), subsampling=2, progressive=False, mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)).resize(size)
    noisy = np.asarray(coarse, dtype=np.int16) + rng.integers(-20, 20, (size[1], size[0], 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert(mode).save(
        out, "JPEG", quality=90, subsampling=subsampling, progressive=progressive)
    return out.getvalue()


VARIANTS = [dict(subsampling=s) for s in (0, 1, 2)] + [dict(progressive=True), dict(mode="L")]


RESIZES = (None, ResizeSpec(600), ResizeSpec(300), ResizeSpec(150), ResizeSpec(64),
           ResizeSpec(64, "center_crop"), ResizeSpec(100, "squash"))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_turbo_decodes_are_pillows_pixels_at_every_scale(variant, monkeypatch):
    """With the chroma interpolated as Pillow does, libjpeg-turbo's covers are Pillow's bytes."""
    monkeypatch.setattr(images, "FAST_UPSAMPLE", False)
    source = jpeg(7, size=(1280, 720), **variant)
    for resize in RESIZES:
        turbo = process_cover(source, resize=resize)
        pillow = images._decoded_by_pillow(source, False, resize, images.MAX_PIXELS)
        assert turbo.status == pillow.status == "ok"
        assert turbo == pillow, (variant, resize)  # the same bytes, sizes and phash


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_fast_upsampling_changes_only_interpolated_chroma_and_not_for_the_worse(variant):
    """Resize mode's decode repeats chroma pixels where Pillow interpolates them: the originals'
    rows (default mode) and pictures without subsampled chroma stay Pillow's bytes; a resized
    cover that differs has the same size and is no further from a Lanczos resize of the full
    picture than Pillow's decode gives."""
    source = jpeg(7, size=(1280, 720), **variant)
    full = decoded(source)
    changed = 0
    for resize in RESIZES:
        fast = process_cover(source, resize=resize)
        pillow = images._decoded_by_pillow(source, False, resize, images.MAX_PIXELS)
        if fast == pillow:
            continue
        changed += 1
        assert resize is not None and (fast.width, fast.height) == (pillow.width, pillow.height)
        reference = np.asarray(full.resize((fast.width, fast.height), Image.Resampling.LANCZOS),
                               dtype=np.float64)
        errors = [np.mean((np.asarray(decoded(c.data), dtype=np.float64) - reference) ** 2)
                  for c in (fast, pillow)]
        assert errors[0] <= errors[1], (resize, errors)  # mean squared error, fast vs Pillow's
    assert (changed > 0) == (variant.get("subsampling", 2) != 0 and "mode" not in variant)


def test_which_decoder_a_resized_jpeg_gets_depends_on_its_size_not_where_it_waited(
        tmp_path, monkeypatch):
    source = jpeg(5, size=(640, 360))
    (tmp_path / "body").write_bytes(source)
    resize = ResizeSpec(300)
    pillow = images._decoded_by_pillow(source, False, resize, images.MAX_PIXELS)
    small = process_cover(source, resize=resize)
    assert small != pillow and process_cover(tmp_path / "body", resize=resize) == small
    monkeypatch.setattr(images, "TURBO_MAX_BYTES", len(source) - 1)  # now a large body
    assert process_cover(source, resize=resize) == pillow
    assert process_cover(tmp_path / "body", resize=resize) == pillow


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def test_a_body_that_is_not_turbos_goes_to_pillow():
    cmyk = jpeg(2, mode="CMYK")
    assert process_cover(cmyk).status == "ok"  # Pillow decodes what simplejpeg is not given
    cut = jpeg(3)[:5000]
    assert process_cover(cut).status == "truncated"
    assert process_cover(cut, complete=True).status == "corrupt"
    assert process_cover(cut).error == images._decoded_by_pillow(cut, False, None,
                                                                 images.MAX_PIXELS).error


@pytest.fixture(scope="module")
def server():
    pictures = {f"{n}.jpg": jpeg(n, size=(320 + 16 * n, 180)) for n in range(6)}
    pictures["p.png"] = make_image(9, size=(90, 60), fmt="PNG", mode="RGBA")
    with LocalServer(cover_app(pictures)) as running:
        yield running


def fetch(tmp_path, name, server, fmt, resize, in_memory=None):
    release = tmp_path / name
    release.mkdir()
    urls = {f"i{n}": f"{server.url}/img/{n}.jpg" for n in range(6)}
    write_items(release, {**urls, "i6": f"{server.url}/img/p.png"})
    options = FetchOptions(rate=0, retries=0, timeout=10.0, shard_size=4, allow_private_hosts=True,
                           format=fmt, resize=resize)
    fetch_release_covers(release, options)
    return release


@pytest.mark.parametrize("fmt", ["files", "parquet"])
@pytest.mark.parametrize("resize", [None, ResizeSpec(96)], ids=["original", "resize"])
def test_bodies_decoded_from_their_file_give_the_same_covers(tmp_path, server, monkeypatch, fmt,
                                                             resize):
    in_memory = fetch(tmp_path, "memory", server, fmt, resize)
    spilled = []
    spill = bodies.Body._spill

    def counted(self):
        spilled.append(self.item_id)
        spill(self)

    monkeypatch.setattr(bodies, "IN_MEMORY_BYTES", 1000)  # every cover goes to a file
    monkeypatch.setattr(bodies.Body, "_spill", counted)
    on_disk = fetch(tmp_path, "disk", server, fmt, resize)
    assert sorted(spilled) == [f"i{n}" for n in range(7)]
    rows = covers_by_id(on_disk)
    assert rows == covers_by_id(in_memory) and {r["status"] for r in rows.values()} == {"ok"}
    ids = list(rows)
    read = [store.read(c.location) for c in store.locate(on_disk, ids)]
    assert read == [store.read(c.location) for c in store.locate(in_memory, ids)]
    if resize is None:  # the originals, byte for byte (moved from the temporary file)
        assert read[0] == jpeg(0, size=(320, 180))
    assert not list(on_disk.rglob(".*.tmp-*"))


def test_the_memory_budget_sends_bodies_to_files(tmp_path):
    spool = bodies.BodyStore(tmp_path, budget=100, in_memory=80)
    first, second = spool.body("i1"), spool.body("i2")
    first.append(b"x" * 60)
    second.append(b"y" * 60)  # 120 > 100: this one goes to a file
    first.finish()
    second.finish()
    assert first.content() == b"x" * 60 and second.content().read_bytes() == b"y" * 60
    first.discard()
    second.discard()
    second.discard()  # twice is harmless
    assert spool._used == 0 and list(tmp_path.iterdir()) == []


def test_decodes_wait_for_memory():
    memory = images.DecodeMemory(100)
    order = []

    def decode(name, size, hold_s):
        with memory.hold(size):
            order.append(f"{name}+")
            time.sleep(hold_s)
            order.append(f"{name}-")

    big = threading.Thread(target=decode, args=("big", 500, 0.3))  # over the budget: alone
    big.start()
    time.sleep(0.1)
    small = threading.Thread(target=decode, args=("small", 10, 0))
    small.start()
    big.join()
    small.join()
    assert order == ["big+", "big-", "small+", "small-"] and memory.used == 0
