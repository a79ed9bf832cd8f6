"""The official files -> a verified release folder <root>/<subset>, with build.source 'official'.

Everything is written under the data root:
    <root>/.official/downloads/<file id>/<name>   the files as served (kept: a rerun fetches none
                                                  that finished; .partial files resume with Range)
    <root>/.official/work/<subset>/               CSVs taken out of zips, the covers so far, and
                                                  the release being built (renamed into place last)
The release goes through `import-official` (ids and columns checked, every official column kept),
gets the covers streamed out of the archive with their statuses,
sequences, manifest and card, is held to the published counts, and only then appears as
<root>/<subset> with one rename.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from schemas.errors import InputError
from pipelines.finish import finish_interrupted_commit, put_in_place
from schemas.lifecycle import release_lock
from schemas.official_sources import DRIVE_HOST, HOST_ENV, OfficialSource, official_source
from schemas.official_subsets import official_subset

from .covers import extract_covers, write_covers_table
from .drive import DriveClient, HostRefused
from .unpack import OfficialFiles, classify, find_covers

OFFICIAL_DIR = ".official"


def host_url(host: str | None = None) -> str:
    """--host-url, else $PIXELREC_OFFICIAL_HOST, else the publisher's host."""
    return (host or os.environ.get(HOST_ENV) or DRIVE_HOST).rstrip("/")


def source_for(subset: str) -> OfficialSource:
    source = official_source(subset)
    if source is None:
        from schemas.official_sources import OFFICIAL_SOURCES
        raise InputError(f"--subset {subset}: not an official subset (official: "
                         f"{', '.join(OFFICIAL_SOURCES)}); releases built here come from a mirror "
                         f"(--mirror URL)")
    return source


def get_official(subset: str, root, *, from_dir=None, host: str | None = None, covers: bool = True,
                 counts: str = "auto", retries: int = 5, backoff: float = 1.0, workers: int = 2,
                 overwrite: bool = False, refetch: bool = False, image_cache: int = 0, log=print,
                 progress=None) -> Path:
    """Build <root>/<subset> from the publisher's files (fetched, or found in from_dir).

    image_cache: also write the training cache of that size (`prepare-images --size N`, squash)
    from the decode that checks each cover (0: none)."""
    source = source_for(subset)
    root = Path(root)
    final = root / source.name
    if final.is_dir() and (final / "manifest.json").is_file() and not overwrite:
        log(f"{final}: already there (rerun with --overwrite to build it again)")
        return final
    finish_interrupted_commit(root)
    with release_lock(final, "download"):
        return _get(source, root, from_dir, host, covers, counts, retries, backoff, workers,
                    overwrite, refetch, image_cache, log, progress)


def _get(source, root: Path, from_dir, host, covers, counts, retries, backoff, workers, overwrite,
         refetch, image_cache, log, progress) -> Path:
    work = root / OFFICIAL_DIR / "work" / source.name
    work.mkdir(parents=True, exist_ok=True)
    downloads = root / OFFICIAL_DIR / "downloads"
    if from_dir is not None:
        files = _local_files(Path(from_dir), source, covers)
    else:
        files = fetch_files(source, downloads, host_url(host), "tables", retries, backoff, log,
                            progress, refetch)
    found = classify(files, source, work / "extracted")

    def covers_archive() -> Path | None:
        """Fetched only once the tables passed their checks (the archive is tens of GB)."""
        if found.covers is None and from_dir is None and source.covers.kind == "file":
            fetched = fetch_files(source, downloads, host_url(host), "covers", retries, backoff,
                                  log, progress, refetch)
            found.covers = find_covers(fetched)
        if found.covers is None:
            log(f"note: no covers archive of {source.name} found; covers.parquet marks every "
                f"cover missing")
        return found.covers

    return _build(source, found, root, work, covers_archive if covers else None, counts, workers,
                  log, progress, image_cache, overwrite)


def _local_files(folder: Path, source: OfficialSource, covers: bool) -> list[tuple[str, Path]]:
    """Every CSV and zip under `folder` (and folders holding covers), by path relative to it."""
    if not folder.is_dir():
        raise InputError(f"--from {folder}: no such folder")
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or any(p.startswith(".") for p in path.relative_to(folder).parts):
            continue
        if path.is_file() and path.suffix.lower() in (".csv", ".zip"):
            out.append((rel, path))
        elif covers and path.is_dir():
            out.append((rel, path))
    return out


def fetch_files(source: OfficialSource, downloads: Path, host: str, which: str, retries: int,
                backoff: float, log, progress, refetch: bool = False) -> list[tuple[str, Path]]:
    """Fetch the subset's "tables" (every matching CSV or zip of its folders) or its "covers"
    archive; return (logical path, local path) pairs."""
    client = DriveClient(host, retries=retries, backoff=backoff, log=log)
    wanted: list[tuple[str, str]] = []  # (logical path, file id)
    if which == "covers":
        wanted.append((source.covers.title, source.covers.id))
    for entry in source.tables if which == "tables" else ():
        for path, file_id in _listing(client, entry, source):
            if path.lower().endswith((".csv", ".zip")) and source.matches(path):
                wanted.append((f"{entry.title}/{path}", file_id))
    out = []
    for logical, file_id in dict.fromkeys(wanted):
        log(f"fetching {logical} ({file_id}) ...")
        if refetch:
            shutil.rmtree(downloads / file_id, ignore_errors=True)
        try:
            path = client.download(file_id, downloads / file_id, progress=_bytes_bar(progress, logical))
        except HostRefused as exc:
            raise InputError(f"{logical}: the host refuses it for now ({exc}); retry later, or "
                             f"download the files by hand from {' , '.join(source.links())} and "
                             f"run `pixelrec download --subset {source.name} --from DIR`") from None
        out.append((logical, path))
    return out


def _listing(client: DriveClient, entry, source) -> list[tuple[str, str]]:
    if entry.kind == "file":
        return [(entry.title, entry.id)]
    try:
        return client.list_tree(entry.id)
    except HostRefused as exc:
        raise InputError(f"{entry.link}: the host refuses the listing ({exc}); download the files "
                         f"by hand and use --from DIR") from None


def _bytes_bar(progress, label):
    if progress is None:
        return None
    state = {}

    def update(n, total, name):
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = progress(total=total, desc=label[-40:], unit="B", unit_scale=True)
        bar.update(n)
        if total is not None and bar.n >= total:
            bar.close()
    return update


def _build(source, found: OfficialFiles, root: Path, work: Path, covers_archive, counts: str,
           workers: int, log, progress, image_cache: int = 0, overwrite: bool = False) -> Path:
    """covers_archive: None (no covers), or a function giving the archive (None if there is none)."""
    from pipelines.official import import_official
    from pipelines.published import check_published_counts

    staging = work / "release" / source.name  # import names the release after its folder
    shutil.rmtree(work / "release", ignore_errors=True)  # a killed run's: rebuilt from the CSVs
    log(f"importing {found.interactions.name} and {found.items.name} ...")
    import_official(found.interactions, found.items, staging)
    # before the covers: a wrong file is refused before minutes of work on its covers
    check_published_counts(staging, counts, where=f"{source.name} (official files)", log=None)
    stored = {}
    if covers_archive is not None:
        stored = _store_covers(staging, covers_archive(), work / "covers", workers, image_cache, log,
                               progress)
    finish_official_release(staging, stored)
    final = put_in_place(root, source.name, staging, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)  # the extracted CSVs; downloads stay for reruns
    return final


def _store_covers(staging: Path, archive: Path | None, covers_dir: Path, workers: int,
                  image_cache: int, log, progress) -> dict[str, dict]:
    """covers.parquet, covers/ and the cache; returns the manifest entries of the stored covers
    (each hashed from the very bytes written, so the manifest need not read them back)."""
    from pixelrec_data.baselines import images

    start = time.perf_counter()
    item_ids = pq.read_table(staging / "items.parquet", columns=["item_id"]).column(0).to_pylist()
    log(f"storing the covers of {len(item_ids):,} items ...")
    array = _RowWriter(images.new_cache_array(staging, image_cache, "squash", len(item_ids))) \
        if image_cache else None
    bar = progress(total=len(item_ids), desc="covers", unit="cover") if progress else None
    try:
        if archive is None:
            rows = [_missing(i) for i in item_ids]
        else:
            rows = extract_covers(archive, item_ids, covers_dir, workers, bar.update if bar else None,
                                  (image_cache, "squash", array) if array is not None else None)
    finally:
        if bar:
            bar.close()
    write_covers_table(rows, staging / "covers.parquet")
    if covers_dir.is_dir():
        os.replace(covers_dir, staging / "covers")
    if array is not None:  # placeholders where prepare-images would put them
        failures = [[n, "missing", f"covers.parquet status {row['status']}"]
                    for n, row in enumerate(rows) if row["status"] != "ok"]
        for n, _, _ in failures:
            array[n] = images.PLACEHOLDER
        array.close()
        images.adopt_cache(staging, image_cache, "squash", failures, time.perf_counter() - start)
    return {f"covers/{row['item_id']}.jpg": {"path": f"covers/{row['item_id']}.jpg",
                                             "bytes": row["bytes"], "sha256": row["sha256"],
                                             "rows": None}
            for row in rows if row["status"] == "ok"}


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


def finish_official_release(folder: Path, covers: dict[str, dict] | None = None) -> None:
    """The staged release after import (which wrote its sequences, manifest and card): the
    manifest described afresh (the covers were added since) and the card that quotes it.
    covers: manifest entries of covers whose bytes were hashed as they were written."""
    from pipelines.card import write_release_card
    from pipelines.manifest import read_manifest, write_manifest

    manifest = read_manifest(folder)  # as refresh_manifest, but the covers are not read again
    write_manifest(folder, manifest["name"], manifest["build"], manifest["counts"], known=covers)
    write_release_card(folder, sequences=False)


def is_official_name(subset: str) -> bool:
    return official_subset(subset) is not None and official_source(subset) is not None


__all__ = ["fetch_files", "finish_official_release", "get_official",
           "host_url", "is_official_name", "source_for"]
