"""Validator/re-encoder: raw bytes -> a checked JPEG with its sha256, size and perceptual hash.

Covers are stored as <item_id>.jpg (the official file names). By default a JPEG is stored byte for
byte as served (nothing lost to a second compression) and any other format is re-encoded to JPEG;
with a ResizeSpec every cover is decoded once, then resized and re-encoded as an array
(resize.py). The row describes the STORED file: sha256, bytes, width, height, and its perceptual
hash (in resize mode, of the picture just before JPEG encoding).

Status kinds: 'ok', 'not_image' (no readable image header: an HTML page, an error text),
'bomb' (the header declares more than `max_pixels` pixels: refused before any pixel is decoded),
'truncated' (the data ends early and the transport could not tell), 'corrupt' (a readable header
but broken pixel data or structure).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from schemas.errors import one_line

from .bodies import IN_MEMORY_BYTES
from .limits import JPEG_QUALITY, MAX_PIXELS
from .resize import ResizeSpec, pixels_phash, reduced_image, resized_jpeg

JPEG_SOI = b"\xff\xd8\xff"  # how every JPEG file starts
_JPEG_ONLY = ("JPEG",)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                  Image.DecompressionBombError)
_TURBO_COLORSPACES = ("YCbCr", "Gray")  # decoded to RGB exactly as Pillow does (others: Pillow)
# simplejpeg's array (3 bytes a pixel, or 4 in resize mode) and Pillow's copy of it (4) at most:
# past this size (far above any real cover) Pillow decodes straight into its own buffer.
TURBO_MAX_PIXELS = 8_000_000
_TURBO_BYTES_PER_PIXEL = 7
# Resize mode: chroma upsampled by repeating pixels, merged with the colour conversion (5% of a
# decode), rather than interpolated: the resize and the 4:2:0 encode smooth the chroma again, and
# the stored covers come out closer to a Lanczos resize of the full picture (by 0.3-0.6 dB).
# Pillow interpolates, so in resize mode which decoder a JPEG gets must depend on its bytes alone,
# never on where it waited: one of at most TURBO_MAX_BYTES is libjpeg-turbo's, from memory or read
# back from its file (a body waits in a file when the memory budget is spent); a larger one always
# arrives in a file (bodies.py) and is Pillow's, streamed from there.
FAST_UPSAMPLE = True
TURBO_MAX_BYTES = IN_MEMORY_BYTES


class DecodeMemory:
    """Bytes of decoded pictures held at once by all threads. A picture waits until its bytes fit;
    one larger than the whole budget waits until it is alone. So a few huge covers in flight
    together cannot add up, however many threads decode."""

    def __init__(self, budget: int):
        self.budget, self.used = budget, 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, size: int):
        size = min(size, self.budget)
        with self._changed:
            self._changed.wait_for(lambda: self.used + size <= self.budget)
            self.used += size
        try:
            yield
        finally:
            with self._changed:
                self.used -= size
                self._changed.notify_all()


DECODE_MEMORY = DecodeMemory(4 * MAX_PIXELS)  # one RGB(X) picture of the largest size allowed


@dataclass
class Cover:
    status: str  # 'ok' or an error kind (see the module docstring)
    error: str = ""
    data: bytes | None = None  # the bytes to store (JPEG) ...
    file: Path | None = None  # ... or the file holding them (an original too large for memory)
    size: int | None = None  # bytes stored
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    phash: str | None = None


def process_cover(body: bytes | Path, complete: bool = False, resize: ResizeSpec | None = None,
                  max_pixels: int = MAX_PIXELS) -> Cover:
    """Decode `body` (bytes, or the path of a file holding them) once, fully, and return what to
    store and how to describe it.

    `complete`: the transport confirmed every byte arrived (Content-Length matched), so an image
    that still ends early is broken at the source ('corrupt'), not cut in transit ('truncated').
    A JPEG in memory is decoded by libjpeg-turbo through simplejpeg (the same pixels as Pillow's
    decode, at the same reduced scale, without Pillow's per-image overhead; in resize mode with
    the chroma upsampled the fast way, FAST_UPSAMPLE); any other body, or a JPEG simplejpeg does
    not take, goes through Pillow, which also names what is wrong with it.
    """
    if resize is not None and isinstance(body, Path) and _size(body) <= TURBO_MAX_BYTES:
        body = body.read_bytes()  # decoded as it would be from memory (FAST_UPSAMPLE)
    if isinstance(body, bytes) and body[:3] == JPEG_SOI and (
            resize is None or len(body) <= TURBO_MAX_BYTES):
        cover = _decoded_by_turbo(body, resize, max_pixels)
        if cover is not None:
            return cover
    return _decoded_by_pillow(body, complete, resize, max_pixels)


def _decoded_by_turbo(body: bytes, resize: ResizeSpec | None, max_pixels: int) -> Cover | None:
    """The cover of a JPEG decoded by simplejpeg; None when Pillow must look at it (a colour space
    other than YCbCr or grey, a picture too large for this path, any decoding error)."""
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(body)
    except ValueError:
        return None
    if width * height > max_pixels:
        return _bomb(width, height, max_pixels)
    if colorspace not in _TURBO_COLORSPACES or width * height > TURBO_MAX_PIXELS:
        return None
    scale = draft_scale(resize, width, height)
    decoded = (-(-width // scale), -(-height // scale))
    with DECODE_MEMORY.hold(decoded[0] * decoded[1] * _TURBO_BYTES_PER_PIXEL):
        try:  # strict: a warning (data cut short, a corrupt segment) is an error
            # without a resize, the phash of the original: Pillow's pixels exactly
            pixels = simplejpeg.decode_jpeg(body, "RGB" if resize is None else "RGBX",
                                            fastupsample=resize is not None and FAST_UPSAMPLE,
                                            min_width=decoded[0], min_height=decoded[1])
        except ValueError:
            return None
        if pixels.shape[1::-1] != decoded:  # not the scale Pillow would use: let Pillow do it
            return None
        if resize is not None:
            return _resized(pixels, resize, (width, height))
        image = Image.fromarray(pixels, "RGB")
        del pixels
        return _describe(body, image)


def _decoded_by_pillow(body: bytes | Path, complete: bool, resize: ResizeSpec | None,
                       max_pixels: int) -> Cover:
    try:
        # reads the header only; a JPEG signature skips asking every other format plugin first
        image = Image.open(_stream(body), formats=_JPEG_ONLY if _head(body) == JPEG_SOI else None)
    except UnidentifiedImageError:
        # the body's bytes are never quoted: they may be an internal service's answer
        return Cover("not_image", f"not an image ({_size(body)} bytes, no known image header)")
    except Image.DecompressionBombError as exc:  # PIL's own limit, when lower than ours
        return Cover("bomb", _one_line(exc))
    except _DECODE_ERRORS as exc:  # a known signature, but no header that makes sense
        return _broken(exc, complete, "not_image")
    with image:
        width, height = image.size
        if width * height > max_pixels:
            return _bomb(width, height, max_pixels)
        if resize is not None and image.format == "JPEG":
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale when the target is that much smaller
            image.draft("RGB", _draft_size(resize, width, height))
        with DECODE_MEMORY.hold(image.width * image.height * 4):
            try:
                if image.format != "JPEG":
                    _verify(body)  # PNG & co: chunk checksums that load() does not look at
                image.load()  # the one full decode: catches truncated and broken pixel data
            except _DECODE_ERRORS as exc:
                return _broken(exc, complete, "corrupt")
            if resize is not None:
                small = reduced_image(_rgb(image), resize, (width, height))
                return _resized(np.asarray(small), resize, (width, height))
            if image.format == "JPEG":
                return _describe(body, image)
            data = _encode(_rgb(image), JPEG_QUALITY)
    # A re-encoded original (PNG, WebP ... rare) is described by its stored bytes, decoded again,
    # so that a rerun re-validating the file from disk computes the very same row.
    with Image.open(io.BytesIO(data)) as stored:
        stored.load()
        return _describe(data, stored)


def _resized(pixels: np.ndarray, resize: ResizeSpec, original: tuple[int, int]) -> Cover:
    """The cover of a resized picture; its phash is of the picture just before encoding (decoding
    the stored file again would cost a third of the time; the two agree within a bit or two)."""
    small, data = resized_jpeg(pixels, resize, original)
    return Cover("ok", data=data, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                 width=small.shape[1], height=small.shape[0], phash=pixels_phash(small))


def _describe(stored_bytes: bytes | Path, stored: Image.Image) -> Cover:
    """The row of a cover whose stored bytes are `stored_bytes` (or that file's)."""
    if isinstance(stored_bytes, bytes):
        data, file, digest = stored_bytes, None, hashlib.sha256(stored_bytes).hexdigest()
    else:
        data, file = None, stored_bytes
        with open(file, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return Cover("ok", data=data, file=file, size=_size(stored_bytes), sha256=digest,
                 width=stored.width, height=stored.height, phash=phash_hex(stored))


def phash_hex(image: Image.Image) -> str:
    """str(imagehash.phash(image)), with the bits packed by numpy instead of a Python loop."""
    return np.packbits(imagehash.phash(image).hash.ravel()).tobytes().hex()


def _broken(exc: BaseException, complete: bool, kind: str) -> Cover:
    if "truncated" in str(exc).lower() and not complete:
        kind = "truncated"
    return Cover(kind, _one_line(exc))


def _draft_size(spec: ResizeSpec, width: int, height: int) -> tuple[int, int]:
    # draft() keeps both sides >= the size asked for; for center_crop the smaller side must stay
    # >= size, which asking for (size, size) guarantees.
    return (spec.size, spec.size) if spec.mode == "center_crop" else spec.output_size(width, height)


def draft_scale(spec: ResizeSpec | None, width: int, height: int) -> int:
    """The reduction JPEG's scaled decoding gets (1, 2, 4 or 8): Pillow's draft rule, the largest
    power of two that keeps both sides >= the size asked for (1 without a resize)."""
    if spec is None:
        return 1
    asked_w, asked_h = _draft_size(spec, width, height)
    scale = min(width // asked_w, height // asked_h)
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def _bomb(width: int, height: int, max_pixels: int) -> Cover:
    return Cover("bomb", f"{width}x{height} = {width * height} pixels, over {max_pixels}")


def _stream(body: bytes | Path):
    return io.BytesIO(body) if isinstance(body, bytes) else body  # Pillow opens and closes a path


def _head(body: bytes | Path) -> bytes:
    if isinstance(body, bytes):
        return body[:3]
    with open(body, "rb") as handle:
        return handle.read(3)


def _size(body: bytes | Path) -> int:
    return len(body) if isinstance(body, bytes) else os.stat(body).st_size


def _verify(body: bytes | Path) -> None:
    with Image.open(_stream(body)) as probe:
        probe.verify()


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        # flatten transparency on white, as a browser shows a cover on a white page
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, quality: int) -> bytes:
    # an original in another format (PNG, WebP ... rare): an extra Huffman pass keeps it small
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def _one_line(exc: BaseException) -> str:
    return one_line(exc, 200)
