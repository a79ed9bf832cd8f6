"""Validator/re-encoder: raw bytes -> a checked JPEG with its sha256, size and perceptual hash.

Covers are stored as <item_id>.jpg (the official file names). By default a JPEG is stored byte for
byte as served (nothing lost to a second compression) and any other format is re-encoded to JPEG;
with a ResizeSpec every cover is decoded once, resized and re-encoded. The row describes the STORED
file: sha256, bytes, width, height, and its perceptual hash (in resize mode, of the picture just
before JPEG encoding).

Status kinds: 'ok', 'not_image' (no readable image header: an HTML page, an error text),
'bomb' (the header declares more than `max_pixels` pixels: refused before any pixel is decoded),
'truncated' (the data ends early and the transport could not tell), 'corrupt' (a readable header
but broken pixel data or structure).
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError

from schemas.errors import one_line

from .limits import JPEG_QUALITY, MAX_PIXELS, RESIZE_MODES

# Shrinking with BOX is area averaging, OpenCV's INTER_AREA (img2dataset's choice), and the
# cheapest antialiased filter (covers are usually shrunk by less than 2x, where no draft or
# reduce() helps: 0.84 ms against BILINEAR's 1.02 for 480x270 -> 398x224); enlarging uses BICUBIC.
# reducing_gap lets large reductions start with a cheap box reduce().
SHRINK, ENLARGE = Image.Resampling.BOX, Image.Resampling.BICUBIC
REDUCING_GAP = 3.0
JPEG_SOI = b"\xff\xd8\xff"  # how every JPEG file starts
_JPEG_ONLY = ("JPEG",)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                  Image.DecompressionBombError)


@dataclass(frozen=True)
class ResizeSpec:
    """keep_ratio: the smaller side becomes `size`, aspect kept; center_crop: the same, then the
    centre size x size square; squash: size x size, aspect ignored. Like img2dataset, small
    pictures are enlarged too, so every stored cover has the predictable size."""
    size: int
    mode: str = "keep_ratio"
    quality: int = JPEG_QUALITY

    def __post_init__(self):
        if self.size < 1 or self.mode not in RESIZE_MODES or not 1 <= self.quality <= 100:
            raise ValueError(f"bad resize: {self}")

    @property
    def label(self) -> str:
        """Names the stored format (recorded per shard: a rerun with other settings redoes it)."""
        return f"resize {self.size} {self.mode} q{self.quality}"

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        s = self.size
        if self.mode != "keep_ratio":
            return s, s
        if width <= height:  # integer round-half-up: the same size on every platform
            return s, max(1, (2 * height * s + width) // (2 * width))
        return max(1, (2 * width * s + height) // (2 * height)), s


@dataclass
class Cover:
    status: str  # 'ok' or an error kind (see the module docstring)
    error: str = ""
    data: bytes | None = None  # the bytes to store (JPEG)
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    phash: str | None = None


def process_cover(body: bytes, complete: bool = False, resize: ResizeSpec | None = None,
                  max_pixels: int = MAX_PIXELS) -> Cover:
    """Decode `body` once, fully, and return what to store and how to describe it.

    `complete`: the transport confirmed every byte arrived (Content-Length matched), so an image
    that still ends early is broken at the source ('corrupt'), not cut in transit ('truncated').
    """
    try:
        # reads the header only; a JPEG signature skips asking every other format plugin first
        image = Image.open(io.BytesIO(body), formats=_JPEG_ONLY if body[:3] == JPEG_SOI else None)
    except UnidentifiedImageError:
        # the body's bytes are never quoted: they may be an internal service's answer
        return Cover("not_image", f"not an image ({len(body)} bytes, no known image header)")
    except Image.DecompressionBombError as exc:  # PIL's own limit, when lower than ours
        return Cover("bomb", _one_line(exc))
    except _DECODE_ERRORS as exc:  # a known signature, but no header that makes sense
        return _broken(exc, complete, "not_image")
    with image:
        width, height = image.size
        if width * height > max_pixels:
            return Cover("bomb", f"{width}x{height} = {width * height} pixels, over {max_pixels}")
        try:
            if image.format != "JPEG":
                _verify(body)  # PNG & co: chunk checksums that load() does not look at
            if resize is not None and image.format == "JPEG":
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale when the target is that much smaller
                image.draft("RGB", _draft_size(resize, width, height))
            image.load()  # the one full decode: catches truncated and broken pixel data
        except _DECODE_ERRORS as exc:
            return _broken(exc, complete, "corrupt")
        if resize is not None:
            small = resize_image(_rgb(image), resize, (width, height))
            data = _encode(small, resize.quality)
            return _describe(data, small, _hash_view(small))
        if image.format == "JPEG":
            return _describe(body, image)
        data = _encode(_rgb(image), JPEG_QUALITY, True)
    # A re-encoded original (PNG, WebP ... rare) is described by its stored bytes, decoded again,
    # so that a rerun re-validating the file from disk computes the very same row.
    with Image.open(io.BytesIO(data)) as stored:
        stored.load()
        return _describe(data, stored)


def _describe(data: bytes, stored: Image.Image, hashed: Image.Image | None = None) -> Cover:
    return Cover("ok", data=data, sha256=hashlib.sha256(data).hexdigest(),
                 width=stored.width, height=stored.height, phash=phash_hex(hashed or stored))


def _hash_view(small: Image.Image) -> Image.Image:
    """What a resized cover's phash is taken from: the picture before encoding (decoding the stored
    file again would cost a quarter of the time), halved by 2x2 averaging when its shorter side
    is >= 128 px. phash low-passes to 32x32 anyway; the halving cuts its cost from 0.65 to 0.2 ms
    on a 398x224 cover, and agrees with imagehash.phash of the stored file about as often as the
    unhalved picture does (tests/test_downloader_resize.py; bench covers within 4 bits: 85% vs 88%)."""
    return small.reduce(2) if min(small.size) >= 128 else small


def phash_hex(image: Image.Image) -> str:
    """str(imagehash.phash(image)), with the bits packed by numpy instead of a Python loop."""
    return np.packbits(imagehash.phash(image).hash.ravel()).tobytes().hex()


def resize_image(image: Image.Image, spec: ResizeSpec, original: tuple[int, int]) -> Image.Image:
    """Resize an (possibly draft-reduced) RGB image; the output size follows from `original`."""
    target = spec.output_size(*original)
    box = None
    if spec.mode == "center_crop":  # crop and resize in one pass: only the square is resampled
        w, h = image.size
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
    if image.size == target and box in (None, (0, 0, *target)):
        return image
    source_width = box[2] - box[0] if box else image.width
    resample = SHRINK if target[0] < source_width else ENLARGE
    return image.resize(target, resample, box=box, reducing_gap=REDUCING_GAP)


def _broken(exc: BaseException, complete: bool, kind: str) -> Cover:
    if "truncated" in str(exc).lower() and not complete:
        kind = "truncated"
    return Cover(kind, _one_line(exc))


def _draft_size(spec: ResizeSpec, width: int, height: int) -> tuple[int, int]:
    # draft() keeps both sides >= the size asked for; for center_crop the smaller side must stay
    # >= size, which asking for (size, size) guarantees.
    return (spec.size, spec.size) if spec.mode == "center_crop" else spec.output_size(width, height)


def _verify(body: bytes) -> None:
    with Image.open(io.BytesIO(body)) as probe:
        probe.verify()


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        # flatten transparency on white, as a browser shows a cover on a white page
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, quality: int, optimize: bool = False) -> bytes:
    # optimize (an extra Huffman pass) only for the rare non-JPEG original: resize mode is timed.
    # Pillow's JPEG encoder holds the GIL while it encodes into memory (BytesIO) but not while it
    # writes to a file descriptor, so threads encode into their own in-memory file (memfd, Linux):
    # the same bytes, and 2 threads encode 1.8x as fast as one instead of 0.96x.
    scratch = _scratch_file()
    if scratch is None:
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality, optimize=optimize)
        return out.getvalue()
    scratch.seek(0)
    scratch.truncate()
    image.save(scratch, format="JPEG", quality=quality, optimize=optimize)
    fd = scratch.fileno()
    return os.pread(fd, os.lseek(fd, 0, os.SEEK_CUR), 0)


_SCRATCH = threading.local()


def _scratch_file():
    """This thread's in-memory file (created on first use), or None where memfd is missing."""
    if not hasattr(os, "memfd_create"):
        return None
    scratch = getattr(_SCRATCH, "file", None)
    if scratch is None:
        scratch = _SCRATCH.file = open(os.memfd_create("pixelrec-cover", os.MFD_CLOEXEC), "w+b")
    return scratch


def _one_line(exc: BaseException) -> str:
    return one_line(exc, 200)
