"""Resize mode's pixel work on the decoded array: resize, JPEG encode and perceptual hash.

A cover is decoded once (images.py) into an RGBX array (RGB plus a padding byte: libjpeg-turbo
writes it as fast as RGB, and OpenCV's bit-exact resize runs twice as fast on 4 channels as on
3; an RGB array from Pillow's decoders works the same) and stays an array here: resized by
OpenCV, encoded by libjpeg-turbo (simplejpeg), hashed with numpy. No Pillow image is made on the
common path: that copy alone cost a third of a resize.

The filter: after the decoder's DCT scaling (1/2, 1/4, 1/8) a JPEG is within 2x of its target,
where bilinear interpolation (OpenCV's bit-exact variant: the same bytes on every CPU) is both the
cheapest filter and, measured against a Lanczos resize of the full picture, closer to it than a
box filter (41 dB against 34 on 480x270 covers shrunk to 224). A picture further than 2x from its
target (not a JPEG, or past 1/8) is first box-reduced by whole factors; an enlarged one (a cover
smaller than the target) is resampled bicubically.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import simplejpeg
from PIL import Image

from .limits import JPEG_QUALITY, RESIZE_MODES

SUBSAMPLING = "420"  # Pillow's default for a JPEG save: the stored covers keep their format
_COLORSPACES = {3: "RGB", 4: "RGBX"}  # simplejpeg's name of an array's layout, by channel count
# The 8 lowest-frequency rows of the 32-point DCT-II: phash's 8x8 block is C @ P @ C.T
_DCT_LOW = np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(32)[None, :] + 1) / 64)


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


@functools.cache
def _cv2():
    """OpenCV, loaded when a cover is first resized: its libraries add tens of MB to a process
    that only keeps originals."""
    import cv2

    # fetch-covers resizes several covers at once in its own threads; OpenCV's pool would only
    # add threads competing for the same cores
    cv2.setNumThreads(1)
    return cv2


def resized_jpeg(pixels: np.ndarray, spec: ResizeSpec, original: tuple[int, int]
                 ) -> tuple[np.ndarray, bytes]:
    """The picture to store (resize_pixels) and its JPEG bytes. `pixels`: RGB or RGBX, possibly
    decoded at reduced scale (the output size follows from the `original` size)."""
    small = resize_pixels(pixels, spec, original)
    return small, simplejpeg.encode_jpeg(small, spec.quality, _COLORSPACES[small.shape[2]],
                                         SUBSAMPLING)


def resize_pixels(pixels: np.ndarray, spec: ResizeSpec, original: tuple[int, int]) -> np.ndarray:
    """The stored picture: `pixels` (H x W x 3 or 4, uint8) cropped for center_crop and resized
    to spec.output_size(original)."""
    target = spec.output_size(*original)
    if spec.mode == "center_crop":
        height, width = pixels.shape[:2]
        side = min(width, height)
        top, left = (height - side) // 2, (width - side) // 2
        pixels = pixels[top:top + side, left:left + side]
    height, width = pixels.shape[:2]
    if (width, height) == target:
        return np.ascontiguousarray(pixels)
    if width < target[0] or height < target[1]:
        return np.asarray(_image(pixels).resize(target, Image.Resampling.BICUBIC))
    whole = _whole_factors((width, height), target)
    if whole is not None:
        pixels = np.asarray(_image(pixels).reduce(whole))
    cv2 = _cv2()
    return cv2.resize(pixels, target, interpolation=cv2.INTER_LINEAR_EXACT)


def reduced_image(image: Image.Image, spec: ResizeSpec, original: tuple[int, int]) -> Image.Image:
    """A Pillow-decoded picture (PNG, WebP ...) box-reduced by the whole factors resize_pixels
    would use, before it becomes an array: the array copy is then of the reduced picture, not of
    one that may be tens of megapixels."""
    target = spec.output_size(*original)
    width, height = image.size
    if spec.mode == "center_crop":
        width = height = min(width, height)
    whole = _whole_factors((width, height), target)
    return image.reduce(whole) if whole is not None else image


def _whole_factors(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int] | None:
    """The whole factors to box-reduce `size` by before the bilinear resize to `target`, or None
    when it is within 2x (bilinear reads 2 source pixels a side: past 2x it would skip some)."""
    whole = (size[0] // target[0], size[1] // target[1])
    return whole if max(whole) >= 2 and min(whole) >= 1 else None


def _image(pixels: np.ndarray) -> Image.Image:
    """A Pillow RGB image of the array (the rare resizes done by Pillow: enlarging, big reductions)."""
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB")


def pixels_phash(pixels: np.ndarray) -> str:
    """imagehash.phash's steps on an RGB(X) array, as hex text: luma, 32x32, the 2-D DCT's 8x8
    lowest frequencies, each bit whether a coefficient is above their median. The 32x32 picture
    is area-averaged (imagehash resamples with Lanczos through Pillow), halved first where the
    picture allows (OpenCV averages 2x2 blocks far faster than it averages arbitrary areas)."""
    cv2 = _cv2()
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY if pixels.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
    height, width = gray.shape
    if min(height, width) >= 64:
        gray = cv2.resize(gray, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    tiny = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64)
    low = (_DCT_LOW @ tiny @ _DCT_LOW.T).ravel()
    middle = np.partition(low, (31, 32))  # the median of 64 values: the mean of the middle two
    return np.packbits(low > (middle[31] + middle[32]) / 2).tobytes().hex()
