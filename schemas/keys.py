"""The keyed-hash contract: how a platform user id becomes `user_key`.

user_key = first 8 bytes, big-endian, of HMAC-SHA256(key, "mid:<mid>") for a commenter and of
HMAC-SHA256(key, "midhash:<midHash>") for a danmaku sender. With join_danmaku, commenters are hashed
through "midhash:<crc32 hex of mid>" so that both sources meet (approximately: CRC-32 collides).
The key is the raw bytes of a key file kept outside raw/ and every release.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import zlib
from pathlib import Path

from .errors import InputError

KEY_BYTES = 32


def load_or_create_key(path: str | os.PathLike) -> bytes:
    """Read the key file; create it with 32 random bytes and mode 0600 when absent."""
    path = Path(path)
    if path.exists():
        if path.is_dir():
            raise InputError(f"{path}: key file is a folder")
        key = path.read_bytes()
        if len(key) < 16:
            raise InputError(f"{path}: key file holds {len(key)} bytes, at least 16 are needed")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def mid_hash(mid: int | str) -> str:
    """The platform's danmaku pseudonym: lower-case hex of crc32 over the decimal mid, unpadded."""
    return format(zlib.crc32(str(int(mid)).encode()) & 0xFFFFFFFF, "x")


def _keyed(key: bytes, text: str) -> int:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def user_key_for_mid(key: bytes, mid: int | str, join_danmaku: bool = False) -> int:
    if join_danmaku:
        return user_key_for_midhash(key, mid_hash(mid))
    return _keyed(key, f"mid:{int(mid)}")


def user_key_for_midhash(key: bytes, midhash: str) -> int:
    return _keyed(key, f"midhash:{midhash.strip().lower()}")


def keyed_rank_value(key: bytes, namespace: str, value: str) -> int:
    """A keyed 64-bit value used to order things (e.g. dense item ids) independently of crawl order."""
    return _keyed(key, f"{namespace}:{value}")
