"""pixelrec_data: the library and the `pixelrec` command of the PixelRec toolkit."""
__version__ = "0.1.0"


def load_dataset(*args, **kwargs):
    """HF-style loader; see pixelrec_data.loader.load_dataset."""
    from .loader import load_dataset as _load_dataset
    return _load_dataset(*args, **kwargs)


def open_release(*args, **kwargs):
    """Polars/DuckDB view of a release folder; see pixelrec_data.loader.open_release."""
    from .loader import open_release as _open_release
    return _open_release(*args, **kwargs)


__all__ = ["load_dataset", "open_release", "__version__"]
