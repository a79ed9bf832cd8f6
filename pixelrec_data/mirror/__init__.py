"""Release mirrors: `pixelrec publish` writes one, `pixelrec download --mirror URL` reads one.

- `releases`: the mirror's index and manifests, `publish` and `download` (verify, then one rename);
- `transfer`: moving bytes from a mirror (HTTP, file:// or a folder) with resume and sha256 checks,
  every HTTP request a guarded GET of pixelrec_data.net configured by one `MirrorOptions`.
A mirror serves only releases built here: the official data is fetched from its publisher.
"""
from .releases import (check_relpath, configured_mirror, default_mirror, download, parse_index,
                       parse_manifest, publish)
from .transfer import MirrorOptions

__all__ = ["MirrorOptions", "check_relpath", "configured_mirror", "default_mirror", "download",
           "parse_index", "parse_manifest", "publish"]
