"""Release mirrors: `pixelrec publish` writes one, `pixelrec download` fetches a release from one.

A mirror is a folder of releases (served over HTTP, or read as a folder / file:// URL):

    MIRROR/index.json               {"format": "pixelrec-mirror", "format_version": 1,
                                     "releases": {name: {path, manifest_sha256, manifest_bytes,
                                                         files, bytes, schema_version, counts}}}
    MIRROR/<name>/manifest.json     the release's manifest, byte for byte
    MIRROR/<name>/<path>            every file the manifest lists

Trust runs index.json -> manifest.json (its sha256 is in the index) -> every file (bytes and
sha256 in the manifest). A download lands in DATA/.<name>.partial/ and becomes DATA/<name> by one
rename (pipelines.finish) only when every file is verified, so a failed or killed download never
leaves a release folder that looks whole; rerunning it continues from the verified files and the
.part files.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tomllib
from pathlib import Path

import jsonschema

from pixelrec_data.mirror.transfer import (MirrorOptions, Source, TransferError,
                                           check_free_space, fetch_verified, link_or_copy,
                                           open_source, part_size, refuse_symlinks)
from schemas.errors import InputError
from pipelines.finish import release_work
from pipelines.lifecycle import require_whole
from schemas.atomic import atomic_dir, atomic_write_text
from schemas.manifest import MANIFEST_SCHEMA, file_matches
from schemas.official_sources import PUBLISHER_RULE
from schemas.official_subsets import check_manifest_counts, subset_to_check

INDEX = "index.json"
MANIFEST = "manifest.json"
MIRROR_FORMAT = "pixelrec-mirror"
MIRROR_FORMAT_VERSION = 1
RELEASE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Caps on the documents read whole into memory (a file is streamed to disk, bounded by its size):
# an index lists a few releases; a manifest lists every file, covers included (about 120 bytes
# each), so 256 MiB is room for two million files.
MAX_INDEX_BYTES = 16 << 20
MAX_MANIFEST_BYTES = 256 << 20
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


# --- manifests and paths ----------------------------------------------------------------------
def check_relpath(path: object, where: str) -> str:
    """`path` if it is a safe relative POSIX path (no '..', not absolute, no drive), else error."""
    parts = path.split("/") if isinstance(path, str) else []
    if (not parts or path.startswith("/") or "\\" in path or "\x00" in path
            or any(p in ("", ".", "..") for p in parts) or ":" in parts[0]):
        raise InputError(f"{where}: unsafe file path {path!r:.80} (must be relative, without '..')")
    return path


def check_release_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not RELEASE_NAME.fullmatch(name):
        raise InputError(f"{where}: bad release name {name!r:.60}")
    return name


def parse_manifest(data: bytes, where: str) -> dict:
    """Parse and validate manifest bytes: JSON Schema, safe and distinct file paths."""
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    # Paths first: an unsafe path gets its own clear message rather than a schema error.
    files = manifest.get("files") if isinstance(manifest, dict) else None
    for entry in files if isinstance(files, list) else []:
        if isinstance(entry, dict):
            check_relpath(entry.get("path"), where)
    try:
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise InputError(f"{where}: not a valid manifest at {at}: {exc.message:.120}") from None
    paths = [entry["path"] for entry in manifest["files"]]
    if len(set(paths)) != len(paths) or MANIFEST in paths:
        raise InputError(f"{where}: a file is listed twice, or manifest.json lists itself")
    return manifest


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
    if manifest["name"] != release_dir.name:
        raise InputError(f"{manifest_path}: name '{manifest['name']}' differs from the folder name "
                         f"'{release_dir.name}'")
    if manifest["build"].get("source") == "official" and not publisher:
        raise InputError(f"{release_dir}: official PixelRec data (build.source 'official'), not "
                         f"published: \"{PUBLISHER_RULE}\" (its publisher; --i-am-the-publisher "
                         f"if that is you)")
    bar = progress(total=sum(f["bytes"] for f in manifest["files"]), desc=f"publish {dest.name}",
                   unit="B", unit_scale=True) if progress else None
    try:
        with atomic_dir(dest) as tmp:
            for entry in manifest["files"]:
                src = release_dir / entry["path"]
                if not file_matches(src, entry["bytes"], entry["sha256"]):
                    raise InputError(f"{src}: missing, or its size/sha256 differs from "
                                     f"{manifest_path}; rebuild or verify the release")
                link_or_copy(src, tmp / entry["path"], copy)
                if bar:
                    bar.update(entry["bytes"])
            (tmp / MANIFEST).write_bytes(manifest_bytes)
    finally:
        if bar:
            bar.close()
    return {"path": dest.name,
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "manifest_bytes": len(manifest_bytes),
            "files": len(manifest["files"]),
            "bytes": sum(f["bytes"] for f in manifest["files"]),
            "schema_version": manifest["schema_version"],
            "counts": manifest["counts"]}


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


# --- download ---------------------------------------------------------------------------------
def download(subset: str, mirror: str, out_dir: str | Path, options: MirrorOptions | None = None,
             progress=None, counts: str = "auto", check_release=None, *,
             manifest_sha256: str | None = None, overwrite: bool = False) -> Path:
    """Fetch release `subset` from `mirror` into out_dir/<subset>; returns that folder.

    options: how the mirror is reached (MirrorOptions: retries, backoff, the files fetched at once,
    timeout and min_rate, which bound an attempt at a file to timeout + size / min_rate seconds,
    and the guards of pixelrec_data.net). counts: which releases must carry the published counts
    of their official name (COUNT_MODES), checked on the manifest before any file is fetched.
    check_release(folder, label) checks the whole fetched release before it is put in place (raise
    to refuse it); pipelines.finish then puts it in place as every release (lock, card, journaled
    rename, the user's data of the release it replaces carried over unless overwrite drops them).
    manifest_sha256 binds the mirror: the release's manifest.json must have this sha256.
    """
    options = options or MirrorOptions()
    check_release_name(subset, "--subset")
    if options.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    if manifest_sha256 is not None and not SHA256_HEX.fullmatch(manifest_sha256.lower()):
        raise InputError(f"--manifest-sha256 {manifest_sha256[:80]!r}: expected 64 hex digits")
    if options.timeout <= 0 or not options.min_rate or options.min_rate <= 0:
        raise InputError("--timeout and --min-rate must be > 0")
    source = open_source(mirror, options)
    pinned = manifest_sha256.lower() if manifest_sha256 else None
    with release_work(out_dir, [subset], "download", overwrite=overwrite) as staging:
        def place(partial: Path, final: Path) -> None:
            staging.adopt(final.name, partial)
            staging.commit()

        return asyncio.run(_download(source, subset, Path(out_dir), options.concurrency, progress,
                                     counts, check_release, pinned, place))


async def _read_manifest(source: Source, subset: str, pinned: str | None):
    """(index entry, manifest bytes) of `subset`, the bytes checked against the index's sha256
    and against `pinned` (the sha256 the user expects) before anything else is read."""
    index = parse_index(await source.read_bytes(INDEX, MAX_INDEX_BYTES), f"{source.label}/{INDEX}")
    entry = index["releases"].get(subset)
    if entry is None:
        have = ", ".join(sorted(index["releases"])) or "none"
        raise InputError(f"mirror {source.label} has no release '{subset}' (it has: {have})")
    manifest_rel = f"{entry['path']}/{MANIFEST}"
    if pinned is not None and entry["manifest_sha256"].lower() != pinned:
        raise TransferError(f"mirror {source.label}: the manifest of '{subset}' is not the one "
                            f"expected (sha256 {entry['manifest_sha256'][:16]}..., expected "
                            f"{pinned[:16]}...); refusing every file of it")
    declared = entry.get("manifest_bytes")
    limit = declared if isinstance(declared, int) and 0 < declared <= MAX_MANIFEST_BYTES \
        else MAX_MANIFEST_BYTES
    manifest_bytes = await source.read_bytes(manifest_rel, limit)
    if hashlib.sha256(manifest_bytes).hexdigest() != entry["manifest_sha256"].lower():
        raise TransferError(f"{manifest_rel}: sha256 differs from the mirror's {INDEX}")
    return entry, manifest_bytes


async def _download(source: Source, subset: str, out_dir: Path, concurrency: int, progress,
                    counts: str, check_release, pinned: str | None, place) -> Path:
    try:
        entry, manifest_bytes = await _read_manifest(source, subset, pinned)
        manifest_rel = f"{entry['path']}/{MANIFEST}"
        manifest = parse_manifest(manifest_bytes, manifest_rel)
        if manifest["name"] != subset:
            raise InputError(f"{manifest_rel}: names release '{manifest['name']}', not '{subset}'")
        official, _ = subset_to_check(manifest, counts)
        if official is not None:  # a mirror serving wrong data is refused before a byte is fetched
            check_manifest_counts(manifest, official, f"{source.label}/{entry['path']}", counts)
        final = out_dir / subset
        partial = out_dir / f".{subset}.partial"
        refuse_symlinks(partial)
        refuse_symlinks(final)
        partial.mkdir(parents=True, exist_ok=True)
        check_free_space(partial, _bytes_to_fetch(partial, manifest))
        await _fetch_all(source, entry["path"], manifest, partial, final, concurrency, progress)
    finally:
        await source.close()
    _drop_unlisted(partial, manifest)
    (partial / MANIFEST).unlink(missing_ok=True)  # never written through a planted link
    (partial / MANIFEST).write_bytes(manifest_bytes)
    if check_release is not None:
        check_release(partial, f"{source.label}/{entry['path']}")
    place(partial, final)
    return final


async def _fetch_all(source, remote_dir, manifest, partial, final, concurrency, progress):
    total = sum(f["bytes"] for f in manifest["files"])
    bar = progress(total=total, desc=f"download {manifest['name']}", unit="B",
                   unit_scale=True, unit_divisor=1024) if progress else None
    queue: asyncio.Queue = asyncio.Queue()
    for entry in manifest["files"]:
        queue.put_nowait(entry)

    failures: list[BaseException] = []

    async def worker():
        # after a failure no new file starts, but transfers in flight finish: what they fetched
        # is verified and kept for the next run, whatever the timing of the failure
        while not queue.empty() and not failures:
            entry = queue.get_nowait()
            dest = partial / entry["path"]
            size, sha = entry["bytes"], entry["sha256"]
            try:
                if await asyncio.to_thread(_reuse_verified, dest, final / entry["path"], size, sha):
                    on_bytes(size)
                    continue
                await _fetch_file(source, f"{remote_dir}/{entry['path']}", dest, size, sha, on_bytes)
            except Exception as exc:  # noqa: BLE001 - re-raised below, first one wins
                failures.append(exc)

    def on_bytes(n):
        if bar:
            bar.update(n)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*workers)
        if failures:
            raise failures[0]
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if bar:
            bar.close()


async def _fetch_file(source: Source, rel: str, dest: Path, size: int, sha256: str, on_bytes) -> None:
    """fetch_verified, once more from the first byte when a resumed file fails its check: the
    prefix an earlier run left may be of another version of the file (the mirror was updated)."""
    part = dest.with_name(dest.name + ".part")
    resumed = part.is_file() and part.stat().st_size > 0
    try:
        await fetch_verified(source, rel, dest, size, sha256, on_bytes)
    except TransferError:
        if not resumed or part.exists():  # a network failure keeps the part: nothing to redo
            raise
        await fetch_verified(source, rel, dest, size, sha256, on_bytes)


def _bytes_to_fetch(partial: Path, manifest: dict) -> int:
    """The manifest's bytes less what the partial folder already holds (files and parts)."""
    have = 0
    for entry in manifest["files"]:
        dest = partial / entry["path"]
        have += min(entry["bytes"], max(part_size(dest), part_size(dest.with_name(dest.name + ".part"))))
    return sum(entry["bytes"] for entry in manifest["files"]) - have


def _reuse_verified(dest: Path, existing: Path, size: int, sha256: str) -> bool:
    """True when dest is already right: verified from an earlier run, or taken from the existing
    copy of the release (unchanged files are not downloaded again)."""
    if file_matches(dest, size, sha256):
        return True
    if file_matches(existing, size, sha256):
        dest.unlink(missing_ok=True)
        link_or_copy(existing, dest)  # a hard link survives the old folder's removal
        return True
    return False


def _drop_unlisted(partial: Path, manifest: dict) -> None:
    """Remove files an earlier, different manifest left in the partial folder."""
    keep = {entry["path"] for entry in manifest["files"]}
    for path in sorted(partial.rglob("*"), reverse=True):
        rel = path.relative_to(partial).as_posix()
        if path.is_file() and rel not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


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

