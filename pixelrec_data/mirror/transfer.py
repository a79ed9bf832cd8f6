"""Resumable, verified file transfer from a mirror: an http(s) base URL, a file:// URL or a folder.

A file is fetched into '<dest>.part' (continued with an HTTP Range request, or a seek for a local
mirror, when a part is already there), checked against its expected size and sha256, and only then
renamed to <dest>: a file under its final name is always whole and verified.

Every read is bounded: a file stops at the first byte past its manifest size, a declared
Content-Length or Content-Range must agree with the manifest, documents (index.json,
manifest.json) have a byte cap, and each attempt at a file has a deadline (timeout + size /
min_rate), so a server dripping a byte at a time cannot hold a download forever. Parts are opened
with O_NOFOLLOW and must be plain files of one link (mirror.folders): a symbolic or hard link
planted in the download folder is never written through.
Every request is a guarded GET of the HTTP core (pixelrec_data.net), configured by one
`MirrorOptions`: redirects stay on the mirror's own scheme, host and port unless cross-host
redirects are allowed; then the target follows the address policy of net.addresses.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from pixelrec_data.mirror.folders import TransferError, open_part, part_size
from pixelrec_data.net.addresses import refused_address
from pixelrec_data.net.guarded import (Refused, TooLarge, TooManyRedirects, attempt_deadline,
                                       capped_chunks, declared_over, encoding_refusal, follow,
                                       open_session, within)
from pixelrec_data.net.options import NetOptions
from schemas.errors import InputError
from schemas.manifest import sha256_file

CHUNK = 1 << 20
RETRY_HTTP = {408, 429, 500, 502, 503, 504}
MIN_RATE = 32 * 1024  # bytes/s: an attempt at a file may take timeout + size / MIN_RATE seconds
MAX_DOCUMENT_BYTES = 256 << 20  # a document read whole into memory when no smaller cap is given


@dataclass
class MirrorOptions(NetOptions):
    """How `pixelrec download --mirror` reaches a mirror: the guarded core's options (a mirror's
    own redirects to another host are refused unless allowed) plus the files fetched at once."""
    allow_cross_host_redirects: bool = False
    max_bytes: int = MAX_DOCUMENT_BYTES  # a document read whole (index, manifest)
    timeout: float = 60.0
    min_rate: float | None = MIN_RATE
    concurrency: int = 4


class Source:
    """Where a mirror lives. open_source() picks the kind from the spec."""

    label: str

    async def read_bytes(self, rel: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
        """The whole of `rel`, refused when longer than `limit` bytes."""
        raise NotImplementedError

    async def save(self, rel: str, dest: Path, limit: int) -> str:
        """`rel` written to `dest` (a new file in a private folder), refused when longer than
        `limit` bytes; returns its sha256 (hex)."""
        raise NotImplementedError

    async def copy_into(self, rel: str, part: Path, on_bytes, size: int) -> None:
        """Append the rest of `rel` to `part` (which may hold a prefix already), never past `size`."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


def open_source(spec: str, options: MirrorOptions | None = None) -> Source:
    if not spec:
        raise InputError("no mirror given: pass --mirror URL or set PIXELREC_MIRROR")
    parts = urlsplit(spec)
    if parts.scheme in ("http", "https"):
        return HttpSource(spec, options or MirrorOptions())
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

    async def read_bytes(self, rel: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
        path = self.root / rel
        try:
            if path.stat().st_size > limit:
                raise TransferError(f"{rel}: over {limit} bytes on mirror {self.label}")
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise TransferError(f"{rel}: not found on mirror {self.label}") from None
        if len(data) > limit:
            raise TransferError(f"{rel}: over {limit} bytes on mirror {self.label}")
        return data

    async def save(self, rel: str, dest: Path, limit: int) -> str:
        digest, got = hashlib.sha256(), 0
        try:
            with open(self.root / rel, "rb") as fin, open(dest, "wb") as fout:
                while block := fin.read(CHUNK):
                    got += len(block)
                    if got > limit:
                        raise TransferError(f"{rel}: over {limit} bytes on mirror {self.label}")
                    fout.write(block)
                    digest.update(block)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise TransferError(f"{rel}: not found on mirror {self.label}") from None
        return digest.hexdigest()

    async def copy_into(self, rel: str, part: Path, on_bytes, size: int) -> None:
        src = self.root / rel
        if not src.is_file():
            raise TransferError(f"{rel}: not found on mirror {self.label}")
        done = part_size(part)
        with open(src, "rb") as fin, open_part(part) as fout:
            fin.seek(done)
            while block := fin.read(min(CHUNK, size - done + 1)):
                if done + len(block) > size:
                    raise _Oversend(rel, size)
                fout.write(block)
                done += len(block)
                on_bytes(len(block))
                await asyncio.sleep(0)  # let other transfers and the progress bar run


class HttpSource(Source):
    def __init__(self, base: str, options: MirrorOptions):
        self.base = base.rstrip("/") + "/"
        self.label = base
        self.options = options
        self._session: aiohttp.ClientSession | None = None

    def url(self, rel: str) -> str:
        return self.base + quote(rel)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # the mirror's own origin is the user's choice; any other follows the policy
            self._session = open_session(self.options, trusted=(self.base,))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        limit = self.options.max_bytes if limit is None else limit

        async def once():
            async with await self._response(rel) as resp:
                self._check_whole_answer(resp, rel, limit)
                try:
                    return b"".join([block async for block in capped_chunks(resp, limit, CHUNK)])
                except TooLarge:
                    raise TransferError(f"{rel}: mirror sent over {limit} bytes") from None
        return await self._with_retries(rel, once, limit)

    async def save(self, rel: str, dest: Path, limit: int) -> str:
        async def once():
            async with await self._response(rel) as resp:
                self._check_whole_answer(resp, rel, limit)
                digest = hashlib.sha256()
                with open(dest, "wb") as fout:  # a retry starts the file again
                    try:
                        async for block in capped_chunks(resp, limit, CHUNK):
                            fout.write(block)
                            digest.update(block)
                    except TooLarge:
                        raise TransferError(f"{rel}: mirror sent over {limit} bytes") from None
                return digest.hexdigest()
        return await self._with_retries(rel, once, limit)

    async def copy_into(self, rel: str, part: Path, on_bytes, size: int) -> None:
        async def once():
            done = part_size(part)
            headers = {"Range": f"bytes={done}-"} if done else {}
            async with await self._response(rel, headers) as resp:
                if resp.status == 416:  # the part is longer than the file: start over
                    part.unlink()
                    on_bytes(-done)
                    raise _Retry("range not satisfiable")
                self._check_status(resp, rel)
                _check_identity(resp, rel)
                if done and resp.status == 200:  # the server ignored Range: rewrite from 0
                    part.unlink()
                    on_bytes(-done)
                    done = 0
                _check_declared(resp, rel, done, size)
                with open_part(part) as fout:
                    try:  # never a byte past the manifest's size
                        async for block in capped_chunks(resp, size - done, CHUNK):
                            fout.write(block)
                            on_bytes(len(block))
                    except TooLarge:
                        raise _Oversend(rel, size) from None
        await self._with_retries(rel, once, size - part_size(part))

    def _check_whole_answer(self, resp, rel: str, limit: int) -> None:
        """A whole file's answer: a success status, no content coding, at most `limit` bytes declared."""
        self._check_status(resp, rel)
        _check_identity(resp, rel)
        declared = declared_over(resp, limit)
        if declared is not None:
            raise TransferError(f"{rel}: mirror declares {declared} bytes, over the {limit} allowed")

    async def _response(self, rel: str, headers: dict | None = None) -> aiohttp.ClientResponse:
        """The answer for `rel`, redirects followed by the guarded core (each hop checked)."""
        try:
            return await follow(self.session, self.url(rel), self.options, trusted=self.base,
                                headers=headers)
        except Refused as exc:
            if exc.kind == "cross_host":
                raise TransferError(f"{rel}: mirror {self.label} redirects to another host or "
                                    f"port (refused; pass --allow-cross-host-redirects to "
                                    f"follow)") from None
            raise TransferError(f"{rel}: redirect refused ({exc.reason})") from None
        except TooManyRedirects:
            raise TransferError(f"{rel}: more than {self.options.max_redirects} redirects on "
                                f"mirror {self.label}") from None

    def _check_status(self, resp: aiohttp.ClientResponse, rel: str) -> None:
        if resp.status in RETRY_HTTP:
            raise _Retry(f"HTTP {resp.status}")
        if resp.status == 404:
            raise TransferError(f"{rel}: not found on mirror {self.label} (HTTP 404)")
        if resp.status not in (200, 206):
            raise TransferError(f"{rel}: mirror {self.label} answered HTTP {resp.status}")

    async def _with_retries(self, rel: str, once, expected_bytes: int):
        # one attempt may take timeout + bytes / min_rate: a slow drip ends, and is retried
        options = self.options
        deadline = attempt_deadline(options, expected_bytes)
        for attempt in range(options.retries + 1):
            try:
                async with within(deadline):
                    return await once()
            except (_Retry, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                refused = refused_address(exc)
                if refused is not None:
                    raise TransferError(f"{rel}: {refused}") from None
                if attempt == options.retries:
                    reason = (f"timed out: over {deadline:.0f} s, slower than "
                              f"{options.min_rate:g} bytes/s" if isinstance(exc, TimeoutError)
                              else _reason(exc))
                    raise TransferError(f"{rel}: cannot fetch from mirror {self.label} after "
                                        f"{attempt + 1} tries ({reason})") from None
                await asyncio.sleep(options.backoff * 2 ** attempt)


class _Retry(Exception):
    pass


class _Oversend(TransferError):
    def __init__(self, rel: str, size: int):
        super().__init__(f"{rel}: mirror sent more than the manifest's {size} bytes (stopped there)")


def _reason(exc: BaseException) -> str:
    # an answer's own bytes are never quoted: parser errors are named by their type
    if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.ClientPayloadError)):
        return type(exc).__name__
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return text or type(exc).__name__


def _check_identity(resp: aiohttp.ClientResponse, rel: str) -> None:
    refusal = encoding_refusal(resp)
    if refusal is not None:
        raise TransferError(f"{rel}: mirror answered with {refusal}")


def _check_declared(resp: aiohttp.ClientResponse, rel: str, done: int, size: int) -> None:
    """A Content-Length or Content-Range that disagrees with the manifest ends the transfer before
    a byte of the body is written."""
    declared = resp.content_length
    if declared is not None and declared != size - done:
        raise TransferError(f"{rel}: mirror declares {declared} bytes from byte {done}; the "
                            f"manifest's size leaves {size - done}")
    if resp.status == 206:
        value = resp.headers.get("Content-Range", "")
        unit, _, spec = value.partition(" ")
        span, _, total = spec.partition("/")
        start, _, end = span.partition("-")
        expected = (str(done), str(size - 1), str(size))
        if unit != "bytes" or (start, end, total) != expected:
            raise TransferError(f"{rel}: mirror answered Content-Range {value[:60]!r}, expected "
                                f"bytes {done}-{size - 1}/{size}")


async def fetch_verified(source: Source, rel: str, dest: Path, size: int, sha256: str,
                         on_bytes) -> None:
    """Fetch `rel` to `dest` through '<dest>.part', resuming a part left by an earlier run."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    done = part_size(part)
    if done > size:
        part.unlink()
        done = 0
    on_bytes(done)  # the resumed prefix counts as transferred
    if done < size or size == 0:
        try:
            await source.copy_into(rel, part, on_bytes, size)
        except _Oversend:
            got = part_size(part)
            part.unlink(missing_ok=True)  # a lying mirror's bytes are not kept for a resume
            on_bytes(-got)
            raise
    got_size = part_size(part)
    # the size is checked first: a file of the wrong size is not worth hashing
    got_sha = await asyncio.to_thread(sha256_file, part) if got_size == size else ""
    if got_size != size or got_sha != sha256:
        part.unlink(missing_ok=True)
        on_bytes(-got_size)
        what = (f"{got_size} bytes, expected {size}" if got_size != size
                else f"sha256 {got_sha[:12]}..., expected {sha256[:12]}...")
        raise TransferError(f"{rel}: mirror copy does not match the manifest ({what})")
    os.replace(part, dest)
