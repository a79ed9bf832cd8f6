"""Cover images: real JPEGs rendered from a video's latent visual features, plus the resize suffix.

The picture is a deterministic function of the features (background colour from hue/saturation/
brightness, a texture of stripes whose frequency is a feature, one or more shapes whose kind, size
and placement are features), so that an image model can recover what users' tastes depend on.
Rendered bytes are cached (LRU, bounded by bytes).
"""
from __future__ import annotations

import colorsys
import io
import re
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image, ImageDraw

# the world's vocabulary (simulator -> synthetic is an allowed import)
from pixelrec_data.synthetic.catalog import LAYOUTS, SHAPE_KINDS, VISUAL_FEATURES

BASE_SIZE = (640, 400)  # 16:10, like the platform's covers
MAX_SIDE = 4096
DEFAULT_ORDER = tuple(VISUAL_FEATURES)
SUFFIX = re.compile(r"^([0-9a-f]{40})\.(jpg|jpeg|png|webp)(?:@([0-9a-z_]*)(?:\.(jpg|jpeg|png|webp|avif))?)?$")
FORMATS = {"jpg": ("JPEG", "image/jpeg"), "jpeg": ("JPEG", "image/jpeg"),
           "png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp")}


def feature_dict(values, names=None) -> dict[str, float]:
    """Map a feature vector onto the renderer's inputs, by name (names default to VISUAL_FEATURES)."""
    values = [float(min(1.0, max(0.0, v))) for v in np.asarray(values, dtype=np.float64).ravel()]
    names = [str(n).lower() for n in (names or DEFAULT_ORDER)]
    out = {name: value for name, value in zip(names, values)}
    defaults = {"hue": 0.0, "saturation": 0.5, "brightness": 0.5, "shape_kind": 0.0, "shape_size": 0.5,
                "texture_freq": 0.0, "layout": 0.0}
    for key, value in defaults.items():
        out.setdefault(key, value)
    out.setdefault("accent_hue", (out["hue"] + 0.5) % 1.0)
    return out


def _pick(value: float, choices) -> str:
    """The entry that value = k / (len(choices) - 1) encodes."""
    return choices[min(len(choices) - 1, max(0, int(round(value * (len(choices) - 1)))))]


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _background(f: dict, size) -> Image.Image:
    """HSV background with diagonal stripes; texture_freq 0 is a flat colour."""
    width, height = size
    base = np.array(_rgb(f["hue"], f["saturation"], 0.15 + 0.85 * f["brightness"]), np.float32)
    if f["texture_freq"] <= 0.0:
        return Image.new("RGB", size, tuple(int(c) for c in base))
    cycles = 1.0 + 29.0 * f["texture_freq"]  # stripes across the width
    # Diagonal stripes depend on x + y only: colour one line of width + height pixels, then view
    # row y as line[y : y + width] (no per-pixel arithmetic).
    wave = np.sin(2.0 * np.pi * cycles * np.arange(width + height, dtype=np.float32) / width)[:, None]
    line = np.clip(base[None, :] * (1.0 + 0.3 * wave) + 20.0 * wave, 0, 255).astype(np.uint8)
    rows = np.lib.stride_tricks.as_strided(line, shape=(height, width, 3),
                                           strides=(line.strides[0], line.strides[0], line.strides[1]))
    return Image.fromarray(np.ascontiguousarray(rows), "RGB")


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, colour) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle((cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r), fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=colour)
    elif kind == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(r * 0.3)))
    else:  # star (five points)
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.42
            angle = np.pi / 2 + k * np.pi / 5
            points.append((cx + radius * np.cos(angle), cy - radius * np.sin(angle)))
        draw.polygon(points, fill=colour)


def render(features: dict, size=BASE_SIZE) -> Image.Image:
    """The cover of one video: background, then the shape(s) where the layout puts them."""
    width, height = size
    image = _background(features, size)
    draw = ImageDraw.Draw(image)
    kind = _pick(features["shape_kind"], SHAPE_KINDS)
    layout = _pick(features["layout"], LAYOUTS)
    radius = min(width, height) * (0.10 + 0.35 * features["shape_size"])
    colour = _rgb(features["accent_hue"], 1.0, 1.0 if features["brightness"] < 0.55 else 0.35)
    if layout == "grid":
        spots = [(width * fx, height * fy, radius * 0.5) for fx in (0.3, 0.7) for fy in (0.28, 0.72)]
    elif layout == "off_centre_with_band":
        band = tuple(int(c * 0.45) for c in _rgb(features["hue"], features["saturation"], 0.9))
        draw.rectangle((0, int(height * 0.78), width, height), fill=band)
        spots = [(width * 0.32, height * 0.4, radius * 0.8)]
    else:  # centre
        spots = [(width / 2, height / 2, radius)]
    for cx, cy, r in spots:
        _draw_shape(draw, kind, cx, cy, r, colour)
    return image


def parse_cover_name(name: str):
    """'<hash>.jpg[@<params>[.fmt]]' -> (hash, ext, params dict, out format) or None when malformed."""
    match = SUFFIX.match(name)
    if not match:
        return None
    cover_hash, ext, params_text, out_ext = match.groups()
    params = {}
    for part in (params_text or "").split("_"):
        found = re.fullmatch(r"(\d+)([a-z])", part)
        if part and not found:
            return None
        if found:
            params[found.group(2)] = int(found.group(1))
    return cover_hash, ext, params, out_ext or ext


def resize(image: Image.Image, params: dict) -> Image.Image:
    """Apply w/h (and crop-to-fill when both are given), as the image server's suffix asks."""
    w, h = params.get("w"), params.get("h")
    src_w, src_h = image.size
    if not w and not h:
        return image
    if w and not h:
        h = max(1, round(w * src_h / src_w))
    elif h and not w:
        w = max(1, round(h * src_w / src_h))
    else:
        scale = max(w / src_w, h / src_h)
        cw, ch = min(src_w, round(w / scale)), min(src_h, round(h / scale))
        left, top = (src_w - cw) // 2, (src_h - ch) // 2
        image = image.crop((left, top, left + cw, top + ch))
    return image.resize((w, h), Image.BICUBIC, reducing_gap=2.0)


def encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    pil_format = FORMATS[fmt][0]
    if pil_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality, subsampling=2, optimize=False)
    elif pil_format == "WEBP":
        image.save(buffer, "WEBP", quality=quality, method=0)
    else:
        image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


class CoverCache:
    """Rendered bytes by (hash, w, h, quality, format); bounded LRU (bytes), thread-safe."""

    def __init__(self, features_of, budget_bytes: int = 64 * 2**20):
        self.features_of = features_of  # cover hash -> feature dict, or None when unknown
        self.budget = budget_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, cover_hash: str, params: dict, fmt: str) -> bytes | None:
        quality = min(100, max(1, params.get("q", 90)))
        key = (cover_hash, params.get("w"), params.get("h"), quality, fmt)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        features = self.features_of(cover_hash)
        if features is None:
            return None
        data = encode(resize(render(features), params), fmt, quality)
        with self._lock:
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.budget and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)
        return data


def corrupt(data: bytes) -> bytes:
    """A broken copy of an image: cut in the middle of the entropy-coded data, no end marker."""
    return data[: max(16, len(data) // 2)]
