"""Check a release's table files against its manifest.json before they are loaded.

Modes: "size" (the default of load_dataset and open_release: one stat per file, so instant even
for the full dataset, and it catches a truncated, appended or swapped file), "sha256" (or True:
sizes, then every byte hashed, which catches any change but reads the whole release), and
"none" (or False: no check). A file the manifest does not list is not checked (it was made
locally after the manifest, e.g. by an older build-splits); a listed file that is missing, or
differs, is a one-line error. A release without a manifest.json is loaded unchecked in "size"
mode and refused in "sha256" mode (there is nothing to check it against).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from schemas.errors import InputError
from schemas.manifest import sha256_file

MODES = ("size", "sha256", "none")
DEFAULT_MODE = "size"


def verify_mode(verify) -> str:
    """'size', 'sha256' or 'none', from a mode name or a bool (True = 'sha256')."""
    if verify is True:
        return "sha256"
    if verify is False or verify is None:
        return "none"
    if verify in MODES:
        return verify
    raise InputError(f"verify={verify!r}: expected 'size', 'sha256', True or False")


def check_release_files(release: Path, rel_files, verify=DEFAULT_MODE) -> None:
    """Raise a one-line InputError when a file of `rel_files` differs from manifest.json."""
    mode = verify_mode(verify)
    if mode == "none":
        return
    listed = _listed_files(release, required=mode == "sha256")
    hint = (f"the release changed after manifest.json was written: download or build it again "
            f"(`pixelrec verify --release {release}` lists every difference)")
    for rel in rel_files:
        entry = listed.get(rel)
        if entry is None:
            continue
        path = release / rel
        try:
            size = os.stat(path).st_size
        except OSError:
            raise InputError(f"{path}: missing, but listed in manifest.json; {hint}") from None
        if size != entry["bytes"]:
            raise InputError(f"{path}: {size} bytes, manifest.json says {entry['bytes']}; {hint}")
        if mode == "sha256" and sha256_file(path) != entry["sha256"]:
            raise InputError(f"{path}: sha256 differs from manifest.json; {hint}")


def _listed_files(release: Path, required: bool) -> dict[str, dict]:
    path = release / "manifest.json"
    if not path.is_file():
        if required:
            raise InputError(f"{path}: missing; verify='sha256' needs the release's manifest")
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = {entry["path"]: entry for entry in manifest["files"]
                 if isinstance(entry["bytes"], int) and isinstance(entry["sha256"], str)}
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{path}: not a readable manifest; run `pixelrec verify --release "
                         f"{release}`") from None
    return files
