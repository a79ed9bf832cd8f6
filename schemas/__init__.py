"""Arrow schemas and the manifest JSON Schema: the contracts between the toolkit's stages.

Attributes load lazily, so that importing a light submodule (errors, atomic) does not load
pyarrow.
"""
_WHERE = {"InputError": "errors", "SchemaError": "errors", "MANIFEST_SCHEMA": "manifest",
          **{name: "tables" for name in ("COVERS", "INTERACTIONS", "ITEMS", "RAW_INTERACTIONS",
                                         "RAW_VIDEOS", "SCHEMA_VERSION", "SPLIT", "SPLIT_NAMES",
                                         "TABLES")}}
__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        import importlib
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(name)
