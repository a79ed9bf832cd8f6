"""A mirror whose release lists a flood of files: index.json and one manifest.json of N entries,
size and sha256 consistent in the index (what a hostile mirror would serve to stall a client).

    python tests/manifest_flood.py MIRROR_DIR N [--declare M]

writes MIRROR_DIR/index.json and MIRROR_DIR/pixel200k/manifest.json (1.8M entries: about 217 MB,
in a few seconds); the files themselves are never written. `--declare M` makes the index claim M
files instead of N.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

NAME = "pixel200k"
HEAD = {"name": NAME, "schema_version": "1.0", "created_by": "pixelrec 0.1.0 (flood)",
        "build": {"seed": 1, "source": "raw"}, "counts": {"items": 30}}


def flood_entry(number: int) -> bytes:
    """One manifest entry, about 130 bytes as a real cover's entry is; sizes under 4 KB, so
    that the free-space check passes (1.8M entries: 3.7 GB in all)."""
    sha = hashlib.sha256(number.to_bytes(8, "little")).hexdigest()
    return (f'{{"path": "covers/{number % 1000:03d}/{number:09d}.jpg", "bytes": '
            f'{number * 7919 % 4096}, "sha256": "{sha}"}}').encode()


def write_flood_mirror(mirror: Path, entries: int, declare: int | None = None,
                       name: str = NAME) -> Path:
    """The mirror folder (index + manifest of `entries` files); returns the manifest's path."""
    manifest = mirror / name / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(manifest, "wb") as out:
        def put(data: bytes) -> None:
            nonlocal size
            out.write(data)
            digest.update(data)
            size += len(data)

        put(json.dumps({**HEAD, "name": name})[:-1].encode() + b', "files": [')
        block: list[bytes] = []
        for number in range(entries):
            block.append(flood_entry(number))
            if len(block) == 10000:
                put((b", " if number >= len(block) else b"") + b", ".join(block))
                block = []
        if block:
            put((b", " if entries > len(block) else b"") + b", ".join(block))
        put(b"]}")
    release = {"path": name, "manifest_sha256": digest.hexdigest(), "manifest_bytes": size,
               "files": entries if declare is None else declare, "bytes": 0,
               "schema_version": "1.0", "counts": HEAD["counts"]}
    index = {"format": "pixelrec-mirror", "format_version": 1, "releases": {name: release}}
    (mirror / "index.json").write_text(json.dumps(index))
    return manifest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirror", type=Path)
    parser.add_argument("entries", type=int)
    parser.add_argument("--declare", type=int, default=None)
    args = parser.parse_args()
    path = write_flood_mirror(args.mirror, args.entries, args.declare)
    print(f"{path}: {args.entries:,} entries, {path.stat().st_size:,} bytes")
