"""Arrow schemas and the manifest JSON Schema: the contracts between the toolkit's stages."""
from .errors import InputError, SchemaError
from .manifest import MANIFEST_SCHEMA
from .tables import (COVERS, INTERACTIONS, ITEMS, RAW_INTERACTIONS, RAW_VIDEOS, SCHEMA_VERSION,
                     SPLIT, SPLIT_NAMES, TABLES)

__all__ = ["InputError", "SchemaError", "MANIFEST_SCHEMA", "TABLES", "SCHEMA_VERSION", "SPLIT_NAMES",
           "RAW_VIDEOS", "RAW_INTERACTIONS", "ITEMS", "INTERACTIONS", "SPLIT", "COVERS"]
