"""The official files -> a verified release folder <root>/<subset>, with build.source 'official'.

Everything is written under the data root:
    <root>/.official/downloads/<file id>/<name>   the files as served (kept: a rerun fetches none
                                                  that finished; parts resume with Range)
    <root>/.official/cookies.txt                  the session's cookies (only while a command runs)
    <root>/.official/work/<subset>/               CSVs taken out of zips and the covers so far
The release is staged as `import-official` stages one (ids and columns checked, every official
column kept), held to the published counts, gets the covers streamed out of the covers archives
with their statuses, and is finished once by pipelines.finish (sequences, manifest, card, one
rename). The publisher's extracted vectors (`features`) are added to the release's features/
folder afterwards, through the same entry, as `pixelrec extract-features` adds its own.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipelines.finish import change_release, release_work
from pixelrec_data.covers import store as cover_store
from schemas.errors import InputError
from schemas.official_sources import (FEATURE_KIND_WORDS, FEATURE_SUFFIXES, HOST_ENV,
                                      OFFICIAL_FEATURES, OfficialSource, official_source)
from schemas.official_subsets import official_subset

from .archives import ARCHIVE_SUFFIXES
from .covers import extract_covers, write_covers_table
from .drive import DriveClient
from .fetch import Fetcher, start_cookie_session
from .unpack import OfficialFiles, classify

OFFICIAL_DIR = ".official"


def host_url(host: str | None = None) -> str | None:
    """--host-url, else $PIXELREC_OFFICIAL_HOST: a reverse proxy's address; None: the host itself."""
    chosen = host or os.environ.get(HOST_ENV)
    return chosen.rstrip("/") if chosen else None


def source_for(subset: str) -> OfficialSource:
    source = official_source(subset)
    if source is None:
        from schemas.official_sources import OFFICIAL_SOURCES
        raise InputError(f"--subset {subset}: not an official subset (official: "
                         f"{', '.join(OFFICIAL_SOURCES)}); releases built here come from a mirror "
                         f"(--mirror URL)")
    return source


def parse_feature_kinds(text: str | None) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(k.strip().lower() for k in (text or "").split(",") if k.strip()))
    unknown = [k for k in kinds if k not in OFFICIAL_FEATURES]
    if unknown:
        raise InputError(f"--features {text}: unknown kind {unknown[0]!r} (the publisher's: "
                         f"{', '.join(OFFICIAL_FEATURES)})")
    return kinds


def get_official(subset: str, root, *, from_dir=None, host: str | None = None, covers: bool = True,
                 counts: str = "auto", retries: int = 5, backoff: float = 1.0, workers: int = 2,
                 overwrite: bool = False, refetch: bool = False, image_cache: int = 0, log=print,
                 progress=None, cookies=None, features: tuple[str, ...] = ()) -> Path:
    """Build <root>/<subset> from the publisher's files (fetched, or found in from_dir), and add
    the publisher's extracted vectors of `features` ('image', 'text') to its features/.

    image_cache: also write the training cache of that size (`prepare-images --size N`, squash)
    from the decode that checks each cover (0: none). cookies: a browser's cookies.txt."""
    source = source_for(subset)
    root = Path(root)
    final = root / source.name
    session_cookies = root / OFFICIAL_DIR / "cookies.txt"
    if from_dir is None:
        start_cookie_session(session_cookies, cookies)
    client = DriveClient(session_cookies, host_url(host), retries=retries, backoff=backoff, log=log)
    fetcher = Fetcher(source, root / OFFICIAL_DIR / "downloads", client, log, progress, refetch)
    try:
        with release_work(root, [source.name], "download", overwrite=overwrite) as staging:
            # asked once a killed run's commit is finished: that release is there, and whole
            if final.is_dir() and (final / "manifest.json").is_file() and not overwrite:
                log(f"{final}: already there (rerun with --overwrite to build it again)")
            else:
                _get(source, staging, from_dir, fetcher, covers, counts, workers, image_cache,
                     log, progress)
        if features:
            def add(release, _overlay):  # features/ is local: nothing of the manifest changes
                add_features(release, features, fetcher, from_dir, log)
                return None, None, None
            change_release(final, "download", add)
    finally:
        session_cookies.unlink(missing_ok=True)  # a signed-in session does not outlive the command
    return final


def _get(source, staging, from_dir, fetcher: Fetcher, covers, counts, workers, image_cache, log,
         progress) -> None:
    work = staging.root / OFFICIAL_DIR / "work" / source.name
    work.mkdir(parents=True, exist_ok=True)
    files = _local_files(Path(from_dir), covers) if from_dir is not None else fetcher.tables()
    found = classify(files, source, work / "extracted")

    def covers_archives() -> list[Path]:
        """Fetched only once the tables passed their checks (the archive is tens of GB)."""
        for logical, sniffed in found.refused:
            from .archives import refuse_format
            refuse_format(sniffed, logical, source.name)
        if not found.covers and from_dir is None:
            found.covers = fetcher.covers()
        if not found.covers:
            log(f"note: no covers archive of {source.name} found; {cover_store.STATUS_TABLE} "
                f"marks every cover missing")
        return found.covers

    _build(source, found, staging, work, covers_archives if covers else None, counts, workers,
           log, progress, image_cache)


def add_features(release: Path, kinds, fetcher: Fetcher, from_dir, log) -> None:
    from .features import write_official_features

    files = _local_features(Path(from_dir), kinds) if from_dir is not None else fetcher.features(kinds)
    for kind, path in files.items():
        log(f"mapping {path.name} to the items of {release.name} ...")
        out = write_official_features(release, kind, path)
        log(f"{kind} features: {out} (train with --set features={out.stem})")


def _local_features(folder: Path, kinds) -> dict[str, Path]:
    """The features file of each kind in a --from folder, told by its name."""
    out = {}
    for kind in kinds:
        candidates = [p for p in sorted(folder.rglob("*")) if p.is_file()
                      and p.suffix.lower() in FEATURE_SUFFIXES
                      and any(w in p.name.lower() for w in FEATURE_KIND_WORDS[kind])
                      and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise InputError(f"--from {folder}: {len(candidates)} {kind} features files (a "
                             f"{'/'.join(FEATURE_SUFFIXES)} file whose name says "
                             f"{' or '.join(FEATURE_KIND_WORDS[kind][:3])}); found: {found}")
        out[kind] = candidates[0]
    return out


def _local_files(folder: Path, covers: bool) -> list[tuple[str, Path]]:
    """Every CSV and archive under `folder` (and folders holding covers), by path relative to it."""
    if not folder.is_dir():
        raise InputError(f"--from {folder}: no such folder")
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or any(p.startswith(".") for p in path.relative_to(folder).parts):
            continue
        if path.is_file() and path.suffix.lower() in (".csv", *ARCHIVE_SUFFIXES):
            out.append((rel, path))
        elif covers and path.is_dir():
            out.append((rel, path))
    return out


def _build(source, found: OfficialFiles, staging, work: Path, covers_archives, counts: str,
           workers: int, log, progress, image_cache: int = 0) -> None:
    """covers_archives: None (no covers), or a function giving the archives (maybe none)."""
    from pipelines.official import import_release
    from pipelines.published import check_published_counts

    def add_covers(folder: Path, build: dict, release_counts: dict):
        # before the covers: a wrong file is refused before minutes of work on its covers
        described = {"name": source.name, "build": build,
                     "counts": {k: int(v) for k, v in release_counts.items()}}
        check_published_counts(folder, counts, where=f"{source.name} (official files)", log=None,
                               manifest=described)
        if covers_archives is None:
            return None
        return _store_covers(folder, covers_archives(), work / "covers", workers, image_cache,
                             log, progress)

    log(f"importing {found.interactions.name} and {found.items.name} ...")
    import_release(staging, source.name, found.interactions, found.items, extend=add_covers)
    staging.commit()
    shutil.rmtree(work, ignore_errors=True)  # the extracted CSVs; downloads stay for reruns


def _store_covers(staging: Path, archives: list[Path], covers_dir: Path, workers: int,
                  image_cache: int, log, progress) -> dict[str, dict]:
    """The status table, the covers (files) and the cache; returns the manifest entries of the covers
    (each hashed from the very bytes written, so the manifest need not read them back)."""
    from pixelrec_data.covers import cache as images

    start = time.perf_counter()
    item_ids = pq.read_table(staging / "items.parquet", columns=["item_id"]).column(0).to_pylist()
    log(f"storing the covers of {len(item_ids):,} items ...")
    array = _RowWriter(images.new_cache_array(staging, image_cache, "squash", len(item_ids))) \
        if image_cache else None
    bar = progress(total=len(item_ids), desc="covers", unit="cover") if progress else None
    try:
        if not archives:
            rows = [_missing(i) for i in item_ids]
        else:
            rows = extract_covers(archives, item_ids, covers_dir, workers, bar.update if bar else None,
                                  (image_cache, "squash", array) if array is not None else None)
    finally:
        if bar:
            bar.close()
    write_covers_table(rows, cover_store.status_table(staging))
    if covers_dir.is_dir():
        os.replace(covers_dir, cover_store.files_dir(staging))
    if array is not None:  # placeholders where prepare-images would put them
        failures = [[n, "missing", f"{cover_store.STATUS_TABLE} status {row['status']}"]
                    for n, row in enumerate(rows) if row["status"] != "ok"]
        for n, _, _ in failures:
            array[n] = images.PLACEHOLDER
        array.close()
        images.adopt_cache(staging, image_cache, "squash", failures, time.perf_counter() - start)
    entries = ({"path": cover_store.manifest_path(row["item_id"]), "bytes": row["bytes"],
                "sha256": row["sha256"], "rows": None} for row in rows if row["status"] == "ok")
    return {entry["path"]: entry for entry in entries}


class _RowWriter:
    """Rows of a fresh .npy cache written with pwrite, not through the memory map: mapped pages
    count in the process's RSS until the kernel writes them back (GBs for a large subset)."""

    def __init__(self, array):
        self.offset, self.row_bytes = array.offset, int(np.prod(array.shape[1:]))
        self.shape = array.shape[1:]
        path = array.filename
        del array
        self.fd = os.open(path, os.O_WRONLY)

    def __setitem__(self, row: int, pixels) -> None:
        block = np.broadcast_to(np.asarray(pixels, dtype=np.uint8), self.shape)
        os.pwrite(self.fd, np.ascontiguousarray(block).tobytes(), self.offset + row * self.row_bytes)

    def close(self) -> None:
        os.close(self.fd)


def _missing(item_id: str) -> dict:
    return {"item_id": item_id, "status": "missing", "error": "no covers archive given",
            "sha256": None, "width": None, "height": None, "bytes": None, "phash": None,
            "attempts": 0}


def is_official_name(subset: str) -> bool:
    return official_subset(subset) is not None and official_source(subset) is not None


__all__ = ["add_features", "get_official", "host_url",
           "is_official_name", "parse_feature_kinds", "source_for"]
