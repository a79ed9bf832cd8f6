"""The official PixelRec data from the publisher's own hosting (or files downloaded from it by hand).

`get_official(subset, root)` fetches the subset's files (sources in schemas/official_sources.py),
turns them into a verified release folder <root>/<subset> and returns it; `pixelrec download
--subset NAME` and `load_dataset(NAME, download=True)` both run it.
"""
from .build import get_official, host_url, is_official_name, parse_feature_kinds

__all__ = ["get_official", "host_url", "is_official_name", "parse_feature_kinds"]
