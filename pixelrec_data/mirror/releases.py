"""Release mirrors: `pixelrec publish` writes one (and reads its index); mirror.downloads fetches
a release from one.

A mirror is a folder of releases (served over HTTP, or read as a folder / file:// URL):

    MIRROR/index.json               {"format": "pixelrec-mirror", "format_version": 1,
                                     "releases": {name: {path, manifest_sha256, manifest_bytes,
                                                         files, bytes, schema_version, counts}}}
    MIRROR/<name>/manifest.json     the release's manifest, byte for byte
    MIRROR/<name>/<path>            every file the manifest lists

Trust runs index.json -> manifest.json (its sha256 is in the index) -> every file (bytes and
sha256 in the manifest): see mirror.downloads.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path

from pipelines.lifecycle import require_whole
from pixelrec_data.mirror.folders import link_or_copy
from pixelrec_data.mirror.manifests import MANIFEST, check_relpath, parse_manifest
from schemas.atomic import atomic_dir, atomic_write_text
from schemas.errors import InputError
from schemas.manifest import file_matches
from schemas.official_sources import PUBLISHER_RULE

INDEX = "index.json"
MIRROR_FORMAT = "pixelrec-mirror"
MIRROR_FORMAT_VERSION = 1
RELEASE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Caps on the documents a mirror serves: an index (read whole into memory) lists a few releases;
# a manifest (streamed to disk, then read as a stream) lists every file, covers included (about
# 120 bytes each), so 256 MiB is room for two million files (MAX_MANIFEST_FILES).
MAX_INDEX_BYTES = 16 << 20
MAX_MANIFEST_BYTES = 256 << 20
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


# --- names -----------------------------------------------------------------------------------
def check_release_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not RELEASE_NAME.fullmatch(name):
        raise InputError(f"{where}: bad release name {name!r:.60}")
    return name


# --- publish ----------------------------------------------------------------------------------
def publish(data_dir: str | Path, out_dir: str | Path, releases: list[str] | None = None,
            copy: bool = False, progress=None, publisher: bool = False) -> dict:
    """Write (or update) the mirror folder out_dir with the given releases of data_dir.

    Every file is checked against its release's manifest first: a mirror never serves a file the
    manifest does not vouch for. A release of the official data (build.source 'official') is
    refused unless `publisher` (its publisher forbids secondary downloads). Returns the index
    written to out_dir/index.json.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    names = list(releases) if releases else _releases_in(data_dir)
    if not names:
        raise InputError(f"{data_dir}: no release folders with a manifest.json")
    index = _read_local_index(out_dir)
    for name in names:
        check_release_name(name, "--release")
        index["releases"][name] = _publish_release(data_dir / name, out_dir / name, copy, progress,
                                                   publisher)
        # an index that names a release whose folder is gone would be a broken mirror
    index["releases"] = {k: v for k, v in sorted(index["releases"].items())
                         if (out_dir / v["path"] / MANIFEST).is_file()}
    atomic_write_text(out_dir / INDEX, json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


def _releases_in(data_dir: Path) -> list[str]:
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: no such folder")
    return sorted(p.name for p in data_dir.iterdir()
                  if (p / MANIFEST).is_file() and RELEASE_NAME.fullmatch(p.name))


def _read_local_index(out_dir: Path) -> dict:
    path = out_dir / INDEX
    if not path.exists():
        return {"format": MIRROR_FORMAT, "format_version": MIRROR_FORMAT_VERSION, "releases": {}}
    return parse_index(path.read_bytes(), str(path))


def _publish_release(release_dir: Path, dest: Path, copy: bool, progress, publisher: bool) -> dict:
    manifest_path = release_dir / MANIFEST
    require_whole(release_dir)
    if not manifest_path.is_file():
        raise InputError(f"{manifest_path}: no such file (build or verify the release first)")
    manifest_bytes = manifest_path.read_bytes()
    manifest = parse_manifest(manifest_bytes, str(manifest_path))
    head, files = manifest
    if manifest.name != release_dir.name:
        raise InputError(f"{manifest_path}: name '{manifest.name}' differs from the folder name "
                         f"'{release_dir.name}'")
    if head["build"].get("source") == "official" and not publisher:
        raise InputError(f"{release_dir}: official PixelRec data (build.source 'official'), not "
                         f"published: \"{PUBLISHER_RULE}\" (its publisher; --i-am-the-publisher "
                         f"if that is you)")
    bar = progress(total=files.total_bytes, desc=f"publish {dest.name}", unit="B",
                   unit_scale=True) if progress else None
    try:
        with atomic_dir(dest) as tmp:
            for path, size, sha256 in files:
                src = release_dir / path
                if not file_matches(src, size, sha256):
                    raise InputError(f"{src}: missing, or its size/sha256 differs from "
                                     f"{manifest_path}; rebuild or verify the release")
                link_or_copy(src, tmp / path, copy)
                if bar:
                    bar.update(size)
            (tmp / MANIFEST).write_bytes(manifest_bytes)
    finally:
        if bar:
            bar.close()
    return {"path": dest.name,
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "manifest_bytes": len(manifest_bytes),
            "files": len(files),
            "bytes": files.total_bytes,
            "schema_version": head["schema_version"],
            "counts": head["counts"]}


def parse_index(data: bytes, where: str) -> dict:
    try:
        index = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    if (not isinstance(index, dict) or index.get("format") != MIRROR_FORMAT
            or not isinstance(index.get("releases"), dict)):
        raise InputError(f"{where}: not a pixelrec mirror index")
    if index.get("format_version") != MIRROR_FORMAT_VERSION:
        raise InputError(f"{where}: mirror format version {index.get('format_version')!r}, this "
                         f"pixelrec reads version {MIRROR_FORMAT_VERSION} (upgrade pixelrec?)")
    for name, entry in index["releases"].items():
        check_release_name(name, where)
        if not isinstance(entry, dict) or not isinstance(entry.get("manifest_sha256"), str):
            raise InputError(f"{where}: release '{name}' has no manifest_sha256")
        check_relpath(entry.get("path"), where)
    return index


# --- the default mirror -------------------------------------------------------------------------
def config_path() -> Path:
    """$PIXELREC_CONFIG, else $XDG_CONFIG_HOME/pixelrec/config.toml, else ~/.config/pixelrec/config.toml."""
    if os.environ.get("PIXELREC_CONFIG"):
        return Path(os.environ["PIXELREC_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "pixelrec" / "config.toml"


def default_mirror() -> str:
    """The mirror when --mirror is not given: $PIXELREC_MIRROR, else `mirror = "..."` in the
    config file; a one-line error naming the three ways when neither is set."""
    mirror = configured_mirror()
    if mirror is None:
        raise InputError(f"no mirror given: pass --mirror URL, set PIXELREC_MIRROR, or write "
                         f"mirror = \"URL\" in {config_path()}")
    return mirror


def configured_mirror() -> str | None:
    """$PIXELREC_MIRROR, else `mirror = "..."` in the config file, else None."""
    from_env = os.environ.get("PIXELREC_MIRROR", "").strip()
    if from_env:
        return from_env
    path = config_path()
    if path.is_file():
        try:
            config = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not valid TOML ({exc})") from None
        mirror = config.get("mirror")
        if mirror is not None and (not isinstance(mirror, str) or not mirror.strip()):
            raise InputError(f"{path}: 'mirror' must be a non-empty string (a URL or a folder)")
        if mirror:
            return mirror.strip()
    elif os.environ.get("PIXELREC_CONFIG"):
        raise InputError(f"{path}: no such file (named by $PIXELREC_CONFIG)")
    return None

