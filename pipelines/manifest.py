"""Stage 7: manifest.json (written last) and `verify` against it.

The manifest lists every file of the release folder with bytes, sha256 and (for Parquet) rows. It
holds no time stamp and `created_by` is the tool version only, so identical builds give identical
manifests.
"""
from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq

from pixelrec_data.covers import store as cover_store
from schemas.errors import InputError
from schemas.atomic import atomic_write_text
from schemas.io import check_schema
from pipelines.lifecycle import require_whole
from schemas.manifest import MANIFEST_SCHEMA, sha256_file
from schemas.tables import SCHEMA_VERSION, SPLIT_NAMES

from .digests import matches, sha256_of

MANIFEST = "manifest.json"
TABLE_OF_FILE = {"items.parquet": "items", "interactions.parquet": "interactions",
                 cover_store.STATUS_TABLE: "covers",
                 **{f"splits/{s}.parquet": "split" for s in SPLIT_NAMES}}


def tool_version() -> str:
    try:
        return f"pixelrec {metadata.version('pixelrec')}"
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "pixelrec unknown"


# Derived locally and never shipped in a release: the dataset card (written after the manifest,
# since it quotes it), the image cache and extracted features (rebuilt from the covers), and the
# downloader's per-shard run logs (they hold timings, which would break byte-identical rebuilds).
LOCAL_ONLY = ("README.md", "images/", "features/", f"{cover_store.STATS_DIR}/")


def is_local_only(rel: str) -> bool:
    return any(rel == entry or (entry.endswith("/") and rel.startswith(entry)) for entry in LOCAL_ONLY)


def release_files(release: Path) -> list[Path]:
    """Every shipped file of the folder: not the manifest, dot-named (temporary) or local-only ones."""
    out = []
    for path in release.rglob("*"):
        rel = path.relative_to(release)
        if (any(part.startswith(".") for part in rel.parts) or rel.as_posix() == MANIFEST
                or is_local_only(rel.as_posix())):
            continue
        if path.is_file() and not path.is_symlink():
            out.append(path)
    return sorted(out, key=lambda p: p.relative_to(release).as_posix())


def file_entry(release: Path, path: Path) -> dict:
    rel = path.relative_to(release).as_posix()
    rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None
    # files this process wrote were hashed as they were written: no read back
    return {"path": rel, "bytes": path.stat().st_size, "sha256": sha256_of(path), "rows": rows}


def write_manifest(release: str | Path, name: str, build: dict, counts: dict,
                   known: dict[str, dict] | None = None, extra: list[dict] | None = None) -> dict:
    """Describe every file of `release` and write manifest.json (call it last).

    known: entries by path already checked against their files (taken as they are, not hashed again).
    extra: entries of files that join the folder before it is put in place (the user's covers,
    carried over from the release this one replaces).
    """
    release = Path(release)
    known = known or {}
    files = [known.get(p.relative_to(release).as_posix()) or file_entry(release, p)
             for p in release_files(release)]
    present = {entry["path"] for entry in files}
    files += [entry for entry in extra or () if entry["path"] not in present]
    manifest = {
        "name": name,
        "schema_version": SCHEMA_VERSION,
        "created_by": tool_version(),
        "build": build,
        "counts": {k: int(v) for k, v in sorted(counts.items())},
        "files": sorted(files, key=lambda entry: entry["path"]),
    }
    jsonschema.validate(manifest, MANIFEST_SCHEMA)
    atomic_write_text(release / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def refresh_manifest(release: str | Path, counts: dict | None = None,
                     rewritten: tuple[str, ...] | None = None) -> dict:
    """Rewrite the manifest of a release whose files changed, keeping its name and build record.

    rewritten: the path prefixes a command just wrote (e.g. covers); every other listed file must
    still match its entry (one hash each; a changed one is an error and the manifest stays as it
    was) and keeps that entry. None: every file is described afresh.
    """
    release = Path(release)
    manifest = read_manifest(release)
    known = None
    if rewritten is not None:
        known = {}
        for entry in manifest["files"]:
            if entry["path"].startswith(rewritten):
                continue
            if not matches(release / entry["path"], entry["bytes"], entry["sha256"]):
                raise InputError(f"{release / entry['path']}: changed since manifest.json was "
                                 "written; the manifest was left as it was")
            known[entry["path"]] = entry
    return write_manifest(release, manifest["name"], manifest["build"],
                          {**manifest["counts"], **(counts or {})}, known)


def read_manifest(release: str | Path) -> dict:
    path = Path(release) / MANIFEST
    if not path.is_file():
        raise InputError(f"{path}: no manifest (not a release folder?)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise InputError(f"{path}: does not match the manifest schema at {where}: {exc.message}") from None
    return manifest


def verify_release(release: str | Path) -> dict:
    """Check every file against the manifest (bytes, sha256, rows) and the table schemas.

    Raises InputError at the first mismatch; returns a summary otherwise.
    """
    release = Path(release)
    if not release.is_dir():
        raise InputError(f"{release}: release folder not found")
    require_whole(release)
    manifest = read_manifest(release)
    for entry in manifest["files"]:
        path = release / entry["path"]
        if not path.is_file():
            raise InputError(f"{path}: listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise InputError(f"{path}: {size} bytes, the manifest says {entry['bytes']}")
        if sha256_file(path) != entry["sha256"]:
            raise InputError(f"{path}: sha256 differs from the manifest")
        if path.suffix == ".parquet":
            table = TABLE_OF_FILE.get(entry["path"])
            if table:
                check_schema(path, table)
            rows = pq.ParquetFile(path).metadata.num_rows
            if entry.get("rows") is not None and rows != entry["rows"]:
                raise InputError(f"{path}: {rows} rows, the manifest says {entry['rows']}")
    listed = {entry["path"] for entry in manifest["files"]}
    missing = [name for name in ("items.parquet", "interactions.parquet") if name not in listed]
    if missing:
        raise InputError(f"{release / MANIFEST}: does not list {', '.join(missing)}")
    unlisted = [p.relative_to(release).as_posix() for p in release_files(release)
                if p.relative_to(release).as_posix() not in listed]
    return {"name": manifest["name"], "files": len(listed), "unlisted": unlisted}
