"""JSON Schema of data/<release>/manifest.json, and the checksum it records for every file."""
import hashlib
import os


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks): manifests, mirrors, weights files."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_matches(path, size: int, sha256: str) -> bool:
    """True when `path` is a file of exactly `size` bytes with this sha256 (size checked first)."""
    try:
        return (os.path.isfile(path) and os.stat(path).st_size == size
                and sha256_file(path) == sha256)
    except OSError:
        return False


MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "PixelRec release manifest",
    "type": "object",
    "required": ["name", "schema_version", "created_by", "build", "counts", "files"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
        "schema_version": {"type": "string"},
        "created_by": {"type": "string"},
        "build": {
            "type": "object",
            "description": "build parameters: seed, subset sizes, filters, source; never the key",
            "not": {"anyOf": [{"required": ["key"]}, {"required": ["key_bytes"]}]},
        },
        "counts": {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "bytes", "sha256"],
                "properties": {
                    "path": {"type": "string", "pattern": "^[^/][^\\\\]*$", "not": {"pattern": "\\.\\."}},
                    "bytes": {"type": "integer", "minimum": 0},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "rows": {"type": ["integer", "null"], "minimum": 0},
                },
                "additionalProperties": False,
            },
        },
    },
}
