"""Counter-based random numbers and id permutations for the synthetic world (vectorised numpy).

Every random value of a user or an event is a hash of (seed, stream name, counter), where the counter
is the user's index or the event's global index. So a value never depends on how the users are cut
into chunks: generating 30M users in chunks of 1M gives exactly the numbers of one big chunk, with
no state carried between chunks except the running event count.
"""
from __future__ import annotations

import hashlib

import numpy as np

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV53 = 1.0 / (1 << 53)
_INV32 = 1.0 / (1 << 32)
BASE58 = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
HEX = b"0123456789abcdef"


def _mix_int(value: int) -> int:
    """splitmix64's finaliser on a Python int (for deriving stream keys)."""
    z = value & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_key(seed: int, stream: str) -> int:
    """A 64-bit key per (seed, stream name): named streams never collide (unlike numbered ones)."""
    name = int.from_bytes(hashlib.blake2b(stream.encode(), digest_size=8).digest(), "big")
    return _mix_int(_mix_int(int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) ^ name)


def _mix(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def hash64(seed: int, stream: str, counter) -> np.ndarray:
    """A uint64 per counter, uniform and independent across (seed, stream)."""
    counter = np.asarray(counter).astype(np.uint64, copy=False)
    with np.errstate(over="ignore"):
        return _mix(counter * _GOLDEN + np.uint64(stream_key(seed, stream)))


def uniform(seed: int, stream: str, counter) -> np.ndarray:
    """float64 in the open interval (0, 1), one per counter."""
    return ((hash64(seed, stream, counter) >> np.uint64(11)).astype(np.float64) + 0.5) * _INV53


def uniform_pair(seed: int, stream: str, counter) -> tuple[np.ndarray, np.ndarray]:
    """Two independent float64 uniforms in (0, 1) per counter, with 32-bit resolution, one hash."""
    h = hash64(seed, stream, counter)
    hi = ((h >> np.uint64(32)).astype(np.float64) + 0.5) * _INV32
    lo = ((h & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) * _INV32
    return hi, lo


def normal(seed: int, stream: str, counter) -> np.ndarray:
    """Standard normal per counter (Box-Muller over the two halves of one hash)."""
    u1, u2 = uniform_pair(seed, f"{stream}/normal", counter)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def feistel(values, bits: int, seed: int, stream: str, rounds: int = 4) -> np.ndarray:
    """A keyed bijection of [0, 2**bits) (bits even): distinct inputs give distinct outputs."""
    half = bits // 2
    mask = np.uint64((1 << half) - 1)
    x = np.asarray(values).astype(np.uint64)
    left, right = x >> np.uint64(half), x & mask
    for r in range(rounds):
        f = hash64(seed, f"{stream}/round{r}", right) & mask
        left, right = right, left ^ f
    return (left << np.uint64(half)) | right


def encode_fixed(values, alphabet: bytes, width: int) -> np.ndarray:
    """Integers -> fixed-width strings in `alphabet` (most significant digit first), vectorised."""
    base = len(alphabet)
    v = np.asarray(values).astype(np.uint64)
    digits = np.empty((v.size, width), dtype=np.uint8)
    for pos in range(width - 1, -1, -1):
        digits[:, pos] = (v % np.uint64(base)).astype(np.uint8)
        v = v // np.uint64(base)
    chars = np.frombuffer(alphabet, dtype=np.uint8)[digits]
    return np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(f"U{width}")


def hex_digest(seed: int, stream: str, counter, chars: int = 40) -> np.ndarray:
    """`chars` lower-case hex characters per counter (e.g. a 40-hex cover file name)."""
    counter = np.asarray(counter).astype(np.uint64)
    words = -(-chars // 16)
    parts = [hash64(seed, f"{stream}/word{w}", counter) for w in range(words)]
    nibbles = np.empty((counter.size, words * 16), dtype=np.uint8)
    for w, part in enumerate(parts):
        for n in range(16):
            nibbles[:, w * 16 + n] = ((part >> np.uint64(60 - 4 * n)) & np.uint64(15)).astype(np.uint8)
    chars_arr = np.frombuffer(HEX, dtype=np.uint8)[nibbles[:, :chars]]
    return np.ascontiguousarray(chars_arr).view(f"S{chars}").ravel().astype(f"U{chars}")
