"""Release mirrors: `pixelrec publish` writes one, `pixelrec download --mirror URL` reads one.

- `releases`: the mirror's index, `publish`, the default mirror;
- `downloads`: `download` (the manifest checked before any file is fetched; verify, then one
  rename);
- `manifests`: a release's manifest read as a stream, checked in time linear in its entries and
  bounded memory (`read_manifest`, `FileTable`);
- `transfer`: moving bytes from a mirror (HTTP, file:// or a folder) with resume and sha256 checks,
  every HTTP request a guarded GET of pixelrec_data.net configured by one `MirrorOptions`;
- `folders`: the download folder (parts of one link, no symbolic links, free space).
A mirror serves only releases built here: the official data is fetched from its publisher.
"""
from .downloads import download
from .manifests import check_relpath, parse_manifest, read_manifest
from .releases import configured_mirror, default_mirror, parse_index, publish
from .transfer import MirrorOptions

__all__ = ["MirrorOptions", "check_relpath", "configured_mirror", "default_mirror", "download",
           "parse_index", "parse_manifest", "publish", "read_manifest"]
