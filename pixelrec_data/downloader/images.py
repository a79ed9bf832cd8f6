"""Validator/re-encoder: raw bytes -> a checked JPEG with its sha256, size and perceptual hash.

Covers are stored as <item_id>.jpg (the official file names), so a PNG/WebP/GIF cover is re-encoded
to JPEG; a JPEG is stored byte for byte as served, so nothing is lost to a second compression.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagehash
from PIL import Image, UnidentifiedImageError

JPEG_QUALITY = 95


@dataclass
class Cover:
    status: str  # 'ok', 'corrupt', 'truncated' or 'too_large'
    error: str = ""
    data: bytes | None = None  # the bytes to store (JPEG)
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    phash: str | None = None


def process_cover(body: bytes, complete: bool = False) -> Cover:
    """Decode `body` fully (verify + load), convert to JPEG if needed, and describe it.

    `complete`: the transport confirmed every byte arrived (Content-Length matched), so an image
    that still ends early is broken at the source ('corrupt'), not cut in transit ('truncated').
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body)) as probe:
                probe.verify()  # structure checks; the image cannot be used after verify()
            image = Image.open(io.BytesIO(body))
            image.load()  # full decode: catches truncated and corrupt pixel data
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Cover("too_large", _one_line(exc))
    except UnidentifiedImageError:
        return Cover("corrupt", f"not an image ({len(body)} bytes, starts {body[:8]!r})")
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        kind = "truncated" if "truncated" in str(exc).lower() and not complete else "corrupt"
        return Cover(kind, _one_line(exc))
    with image:
        data = body if image.format == "JPEG" else _to_jpeg(image)
        return Cover("ok", data=data, sha256=hashlib.sha256(data).hexdigest(),
                     width=image.width, height=image.height, phash=str(imagehash.phash(image)))


def _to_jpeg(image: Image.Image) -> bytes:
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        # flatten transparency on white, as a browser shows a cover on a white page
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
