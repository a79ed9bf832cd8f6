"""Resumable, verified file transfer from a mirror: an http(s) base URL, a file:// URL or a folder.

A file is fetched into '<dest>.part' (continued with an HTTP Range request, or a seek for a local
mirror, when a part is already there), checked against its expected size and sha256, and only then
renamed to <dest>: a file under its final name is always whole and verified.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from schemas.errors import InputError
from schemas.manifest import sha256_file

CHUNK = 1 << 20
RETRY_HTTP = {408, 429, 500, 502, 503, 504}


class TransferError(InputError):
    """A file that could not be fetched or does not match what the manifest says."""


class Source:
    """Where a mirror lives. open_source() picks the kind from the spec."""

    label: str

    async def read_bytes(self, rel: str) -> bytes:
        raise NotImplementedError

    async def copy_into(self, rel: str, part: Path, on_bytes) -> None:
        """Append the rest of `rel` to `part` (which may hold a prefix already)."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


def open_source(spec: str, *, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0) -> Source:
    if not spec:
        raise InputError("no mirror given: pass --mirror URL or set PIXELREC_MIRROR")
    parts = urlsplit(spec)
    if parts.scheme in ("http", "https"):
        return HttpSource(spec, timeout=timeout, retries=retries, backoff=backoff)
    if parts.scheme == "file":
        return FolderSource(Path(unquote(parts.path)), spec)
    if parts.scheme and len(parts.scheme) > 1:  # one letter: a Windows drive, i.e. a folder
        raise InputError(f"mirror {spec}: unsupported scheme '{parts.scheme}' (use http(s)://, file:// or a folder)")
    return FolderSource(Path(spec), spec)


class FolderSource(Source):
    def __init__(self, root: Path, label: str):
        if not root.is_dir():
            raise InputError(f"mirror {label}: no such folder")
        self.root, self.label = root, label

    async def read_bytes(self, rel: str) -> bytes:
        path = self.root / rel
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise TransferError(f"{rel}: not found on mirror {self.label}") from None

    async def copy_into(self, rel: str, part: Path, on_bytes) -> None:
        src = self.root / rel
        if not src.is_file():
            raise TransferError(f"{rel}: not found on mirror {self.label}")
        done = part.stat().st_size if part.exists() else 0
        with open(src, "rb") as fin, open(part, "ab") as fout:
            fin.seek(done)
            while block := fin.read(CHUNK):
                fout.write(block)
                on_bytes(len(block))
                await asyncio.sleep(0)  # let other transfers and the progress bar run


class HttpSource(Source):
    def __init__(self, base: str, *, timeout: float, retries: int, backoff: float):
        self.base = base.rstrip("/") + "/"
        self.label = base
        self.retries, self.backoff = retries, backoff
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    def url(self, rel: str) -> str:
        return self.base + quote(rel)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def read_bytes(self, rel: str) -> bytes:
        async def once():
            async with self.session.get(self.url(rel)) as resp:
                self._check_status(resp, rel)
                return await resp.read()
        return await self._with_retries(rel, once)

    async def copy_into(self, rel: str, part: Path, on_bytes) -> None:
        async def once():
            done = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={done}-"} if done else {}
            async with self.session.get(self.url(rel), headers=headers) as resp:
                if resp.status == 416:  # the part is longer than the file: start over
                    part.unlink()
                    on_bytes(-done)
                    raise _Retry("range not satisfiable")
                self._check_status(resp, rel)
                if done and resp.status == 200:  # the server ignored Range: rewrite from 0
                    part.unlink()
                    on_bytes(-done)
                with open(part, "ab") as fout:
                    async for block in resp.content.iter_chunked(CHUNK):
                        fout.write(block)
                        on_bytes(len(block))
        await self._with_retries(rel, once)

    def _check_status(self, resp: aiohttp.ClientResponse, rel: str) -> None:
        if resp.status in RETRY_HTTP:
            raise _Retry(f"HTTP {resp.status}")
        if resp.status == 404:
            raise TransferError(f"{rel}: not found on mirror {self.label} (HTTP 404)")
        if resp.status not in (200, 206):
            raise TransferError(f"{rel}: mirror {self.label} answered HTTP {resp.status}")

    async def _with_retries(self, rel: str, once):
        for attempt in range(self.retries + 1):
            try:
                return await once()
            except (_Retry, aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise TransferError(f"{rel}: cannot fetch from mirror {self.label} after "
                                        f"{attempt + 1} tries ({reason})") from None
                await asyncio.sleep(self.backoff * 2 ** attempt)


class _Retry(Exception):
    pass


async def fetch_verified(source: Source, rel: str, dest: Path, size: int, sha256: str,
                         on_bytes) -> None:
    """Fetch `rel` to `dest` through '<dest>.part', resuming a part left by an earlier run."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    if done > size:
        part.unlink()
        done = 0
    on_bytes(done)  # the resumed prefix counts as transferred
    if done < size or size == 0:
        await source.copy_into(rel, part, on_bytes)
    got_size = part.stat().st_size if part.exists() else 0
    # the size is checked first: a file of the wrong size is not worth hashing
    got_sha = await asyncio.to_thread(sha256_file, part) if got_size == size else ""
    if got_size != size or got_sha != sha256:
        part.unlink(missing_ok=True)
        on_bytes(-got_size)
        what = (f"{got_size} bytes, expected {size}" if got_size != size
                else f"sha256 {got_sha[:12]}..., expected {sha256[:12]}...")
        raise TransferError(f"{rel}: mirror copy does not match the manifest ({what})")
    os.replace(part, dest)


def link_or_copy(src: Path, dest: Path, copy: bool = False) -> None:
    """Hard-link src to dest (same file system, no extra space), else copy it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copyfile(src, dest)
