"""JSON Schema of data/<release>/manifest.json."""

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
