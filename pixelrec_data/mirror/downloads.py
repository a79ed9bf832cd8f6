"""`pixelrec download --mirror`: a release fetched from a mirror, every file verified, then put in
place by pipelines.finish.

Trust runs index.json -> manifest.json (its sha256 is in the index) -> every file (bytes and
sha256 in the manifest). The manifest is streamed to the command's private work folder, its
sha256 checked, then read as a stream (mirror.manifests): its check is linear in its entries,
bounded in memory, capped by the number of files the index declares and held to a deadline
(timeout + its bytes at CHECK_RATE), all before any file is requested. A download lands in
DATA/.<name>.partial/ and becomes DATA/<name> by one rename only when every file is verified, so
a failed or killed download never leaves a release folder that looks whole; rerunning it
continues from the verified files and the .part files.
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pipelines.finish import release_work
from pixelrec_data.mirror.manifests import (MANIFEST, MAX_MANIFEST_FILES, FileTable, Manifest,
                                            check_deadline, read_manifest)
from pixelrec_data.mirror.releases import (INDEX, MAX_INDEX_BYTES, MAX_MANIFEST_BYTES, SHA256_HEX,
                                           check_release_name, parse_index)
from pixelrec_data.mirror.folders import (TransferError, check_free_space, link_or_copy,
                                          partial_sizes, refuse_symlinks)
from pixelrec_data.mirror.transfer import MirrorOptions, Source, fetch_verified, open_source
from schemas.errors import InputError
from schemas.manifest import file_matches
from schemas.official_subsets import check_manifest_counts, subset_to_check

CHECK_RATE = 2 << 20  # bytes/s: the check of a manifest may take timeout + its bytes / CHECK_RATE


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

        fetch = _Download(source, subset, Path(out_dir), options, staging.work / MANIFEST)
        return asyncio.run(fetch.run(progress, counts, check_release, pinned, place))


class _Download:
    def __init__(self, source: Source, subset: str, out_dir: Path, options: MirrorOptions,
                 saved: Path):
        self.source, self.subset, self.options = source, subset, options
        self.saved = saved  # the manifest, in the command's private work folder
        self.final = out_dir / subset
        self.partial = out_dir / f".{subset}.partial"

    async def run(self, progress, counts: str, check_release, pinned: str | None, place) -> Path:
        source = self.source
        try:
            entry = await self._save_manifest(pinned)
            where = f"{entry['path']}/{MANIFEST}"
            deadline = time.monotonic() + self.options.timeout + \
                self.saved.stat().st_size / CHECK_RATE
            manifest = self._check_manifest(entry, where, deadline)
            official, _ = subset_to_check(manifest.head, counts)
            if official is not None:  # a mirror serving wrong data is refused before a byte
                check_manifest_counts(manifest.head, official, f"{source.label}/{entry['path']}",
                                      counts)
            refuse_symlinks(self.final)
            to_fetch = self._bytes_to_fetch(manifest.files)
            check_deadline(deadline, where, "looking at the files already downloaded")
            check_free_space(self.partial, to_fetch)
            await _fetch_all(source, entry["path"], manifest, self.partial, self.final,
                             self.options.concurrency, progress)
        finally:
            await source.close()
        _drop_unlisted(self.partial, manifest.files)
        os.replace(self.saved, self.partial / MANIFEST)  # a rename: never through a planted link
        if check_release is not None:
            check_release(self.partial, f"{source.label}/{entry['path']}")
        place(self.partial, self.final)
        return self.final

    async def _save_manifest(self, pinned: str | None) -> dict:
        """The index entry of the release, its manifest saved to `self.saved` and checked against
        the index's sha256 and `pinned` (the sha256 the user expects) before it is parsed."""
        source, subset = self.source, self.subset
        index = parse_index(await source.read_bytes(INDEX, MAX_INDEX_BYTES),
                            f"{source.label}/{INDEX}")
        entry = index["releases"].get(subset)
        if entry is None:
            have = ", ".join(sorted(index["releases"])) or "none"
            raise InputError(f"mirror {source.label} has no release '{subset}' (it has: {have})")
        if pinned is not None and entry["manifest_sha256"].lower() != pinned:
            raise TransferError(f"mirror {source.label}: the manifest of '{subset}' is not the one "
                                f"expected (sha256 {entry['manifest_sha256'][:16]}..., expected "
                                f"{pinned[:16]}...); refusing every file of it")
        declared = entry.get("manifest_bytes")
        limit = declared if isinstance(declared, int) and 0 < declared <= MAX_MANIFEST_BYTES \
            else MAX_MANIFEST_BYTES
        manifest_rel = f"{entry['path']}/{MANIFEST}"
        if await source.save(manifest_rel, self.saved, limit) != entry["manifest_sha256"].lower():
            raise TransferError(f"{manifest_rel}: sha256 differs from the mirror's {INDEX}")
        return entry

    def _check_manifest(self, entry: dict, where: str, deadline: float) -> Manifest:
        """The manifest read from its saved copy: at most the files the index declares."""
        declared = entry.get("files")
        if declared is not None and (type(declared) is not int or declared < 0):
            raise InputError(f"{self.source.label}/{INDEX}: release '{self.subset}' declares "
                             f"{declared!r:.40} files")
        if declared is not None and declared > MAX_MANIFEST_FILES:
            raise InputError(f"{self.source.label}/{INDEX}: release '{self.subset}' declares "
                             f"{declared:,} files, over the {MAX_MANIFEST_FILES:,} this pixelrec "
                             f"reads; refused")
        cap = MAX_MANIFEST_FILES if declared is None else declared
        why = "" if declared is None else f"the index declares {declared:,}"
        with open(self.saved, "rb") as handle:
            manifest = read_manifest(handle, where, cap, deadline, why)
        if declared is not None and len(manifest.files) != declared:
            raise InputError(f"{where}: lists {len(manifest.files):,} files, the mirror's index "
                             f"declares {declared:,}; refused")
        if manifest.name != self.subset:
            raise InputError(f"{where}: names release '{manifest.name}', not '{self.subset}'")
        return manifest

    def _bytes_to_fetch(self, files: FileTable) -> int:
        """The manifest's bytes less what the partial folder already holds (files and parts);
        one walk of that folder, which also refuses links planted in it."""
        sizes = partial_sizes(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        have: dict[int, int] = {}
        for rel, size in sizes.items():
            number = files.index_of(rel.removesuffix(".part"))
            if number is not None:
                have[number] = max(have.get(number, 0), min(size, files[number].size))
        return files.total_bytes - sum(have.values())


async def _fetch_all(source, remote_dir, manifest: Manifest, partial, final, concurrency,
                     progress):
    files = manifest.files
    bar = progress(total=files.total_bytes, desc=f"download {manifest.name}", unit="B",
                   unit_scale=True, unit_divisor=1024) if progress else None
    numbers = iter(range(len(files)))  # shared by the workers: each file is taken once
    failures: list[BaseException] = []

    async def worker():
        # after a failure no new file starts, but transfers in flight finish: what they fetched
        # is verified and kept for the next run, whatever the timing of the failure
        for number in numbers:
            if failures:
                return
            path, size, sha = files[number]
            dest = partial / path
            try:
                if await asyncio.to_thread(_reuse_verified, dest, final / path, size, sha):
                    on_bytes(size)
                    continue
                await _fetch_file(source, f"{remote_dir}/{path}", dest, size, sha, on_bytes)
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


def _drop_unlisted(partial: Path, files: FileTable) -> None:
    """Remove files an earlier, different manifest left in the partial folder."""
    for path in sorted(partial.rglob("*"), reverse=True):
        rel = path.relative_to(partial).as_posix()
        if path.is_file() and files.index_of(rel) is None:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
