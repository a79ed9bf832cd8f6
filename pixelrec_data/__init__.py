"""pixelrec_data: the library and the `pixelrec` command of the PixelRec toolkit.

`load_dataset` and `open_release` are pixelrec_data.loader's own functions (their signatures and
docstrings show in help()); they are imported on first use, so `pixelrec` commands that never load
a release do not pay for pyarrow at start-up.
"""
__version__ = "0.1.0"
__all__ = ["load_dataset", "open_release", "__version__"]


def __getattr__(name):  # PEP 562: the loader module is imported on first access
    if name in ("load_dataset", "open_release"):
        from . import loader
        return getattr(loader, name)
    raise AttributeError(f"module 'pixelrec_data' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
