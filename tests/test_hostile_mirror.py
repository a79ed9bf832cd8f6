"""`pixelrec download` against a hostile mirror (a real aiohttp server on 127.0.0.1 serving a real
published mirror, with one answer made hostile per test): oversend, a wrong Content-Length, a
slow drip, a huge index, a cross-port redirect, a tampered manifest, a planted symlink. Each ends as
a one-line error, the command stays under 300 MB, writes nothing outside --out, and no release
folder appears."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket

import pytest
from aiohttp import web

from blind_listener import BlindListener
from hostile_helpers import (SECRET, assert_no_secret, assert_one_line_error, assert_small,
                             outside, run_measured)
from manifest_flood import write_flood_mirror
from pixelrec_data.mirror import publish
from test_downloader_server import LocalServer
from test_mirror import make_release

MB = 1 << 20


def hostile_mirror(folder, requests: list, special: dict):
    """Serves `folder` as a static mirror; a path in `special` gets that handler instead."""
    @web.middleware
    async def route(request, handler):
        requests.append(request.path)
        if request.path in special:
            return await special[request.path](request)
        return await handler(request)

    app = web.Application(middlewares=[route])
    app.router.add_static("/", folder)
    return app


async def stream(request, total: int, block: bytes, declared: int | None = None, pause: float = 0):
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if declared is not None:
        resp.content_length = declared
    await resp.prepare(request)
    try:
        for _ in range(total // len(block)):
            await resp.write(block)
            if pause:
                await asyncio.sleep(pause)
    except (ConnectionError, RuntimeError):  # the client hung up
        pass
    return resp


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    make_release(data, "pixel200k", 30)
    mirror = tmp_path / "mirror"
    publish(data, mirror)
    out = tmp_path / "out"
    return tmp_path, mirror, out


def download(server, out, *extra, retries="0"):
    return run_measured("download", "--subset", "pixel200k", "--mirror", server.url, "--out", out,
                        "--retries", retries, "--counts", "off", *extra)


def run_hostile(setup, special, *extra, words=(), before_run=None):
    tmp_path, mirror, out = setup
    requests: list = []
    with LocalServer(hostile_mirror(mirror, requests, special)) as server:
        if before_run:
            before_run(server)
        before = outside(tmp_path, out)
        result = download(server, out, *extra)
    line = assert_one_line_error(result, *words)
    assert_small(result)
    assert outside(tmp_path, out) == before  # nothing written outside --out
    assert not (out / "pixel200k").exists()  # no release folder that looks whole
    return result, requests, line


def manifest_size(mirror, rel):
    entries = json.loads((mirror / "pixel200k" / "manifest.json").read_text())["files"]
    return next(e["bytes"] for e in entries if e["path"] == rel)


def test_oversend_stops_at_the_manifest_size(setup):
    _, mirror, out = setup
    special = {"/pixel200k/items.parquet": lambda r: stream(r, 50 * MB, bytes(MB))}
    run_hostile(setup, special, words=("more than the manifest's",))
    size = manifest_size(mirror, "items.parquet")
    parts = list(out.rglob("items.parquet*"))
    assert all(p.stat().st_size <= size for p in parts)  # the lying bytes were not kept


def test_a_content_length_that_contradicts_the_manifest_is_refused(setup):
    special = {"/pixel200k/items.parquet": lambda r: stream(r, 4 * MB, bytes(MB), declared=4 * MB)}
    run_hostile(setup, special, words=("declares", "manifest"))


def test_a_slow_drip_ends_at_the_file_deadline(setup):
    special = {"/pixel200k/README.md": lambda r: stream(r, 5000, b"x", pause=0.2)}
    run_hostile(setup, special, "--timeout", "1", "--min-rate", "100000", words=("timed out",))


def test_a_huge_index_is_refused_without_reading_it_whole(setup):
    special = {"/index.json": lambda r: stream(r, 400 * MB, b" " * MB)}
    run_hostile(setup, special, words=("index.json", "over"))


def test_a_cross_port_redirect_is_refused(setup):
    tmp_path, _, _ = setup
    hits: list = []

    async def secret(request):
        hits.append(request.path)
        return web.Response(body=SECRET)

    internal_app = web.Application()
    internal_app.router.add_get("/{tail:.*}", secret)
    with LocalServer(internal_app) as internal:
        async def to_internal(request):
            raise web.HTTPFound(f"{internal.url}/pixel200k/items.parquet")

        special = {"/pixel200k/items.parquet": to_internal}
        run_hostile(setup, special, words=("another host or port",))
        # allowed to follow cross-host redirects, the target must still be a public address
        _, _, line = run_hostile(setup, special, "--allow-cross-host-redirects",
                                 words=("loopback address",))
    assert hits == []
    assert_no_secret(tmp_path / "out")


def resolve_to_loopback(monkeypatch, name: str) -> None:
    """`name` resolves to 127.0.0.1 in this process (a mirror's own name; the .test domain never
    resolves in real DNS, so this is the one part of the test that cannot run for real)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real("127.0.0.1" if host == name else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_redirect_to_the_mirrors_own_name_on_another_port_sends_no_byte(setup, monkeypatch):
    """The mirror's own name is trusted on its own port only: on another port its address is
    checked before the connection is made, so the service there hears nothing."""
    from pixelrec_data.mirror import MirrorOptions
    from pixelrec_data.mirror import download as download_release
    from schemas.errors import InputError

    _, mirror, out = setup
    resolve_to_loopback(monkeypatch, "mirror.test")
    with BlindListener() as service:
        async def to_service(request):
            raise web.HTTPFound(f"http://mirror.test:{service.port}/pixel200k/items.parquet")

        special = {"/pixel200k/items.parquet": to_service}
        options = MirrorOptions(retries=0, timeout=5, allow_cross_host_redirects=True)
        with LocalServer(hostile_mirror(mirror, [], special)) as server:
            with pytest.raises(InputError, match="items.parquet: mirror.test is a loopback"):
                download_release("pixel200k", f"http://mirror.test:{server.port}", out, options,
                                 counts="off")
    assert (service.connections, service.received) == (0, b"")
    assert not (out / "pixel200k").exists()


def test_a_tampered_manifest_is_refused_by_the_pinned_sha256(setup):
    _, mirror, _ = setup
    genuine = hashlib.sha256((mirror / "pixel200k" / "manifest.json").read_bytes()).hexdigest()
    # the attacker rewrites the manifest AND the index, so that they agree with each other
    manifest = json.loads((mirror / "pixel200k" / "manifest.json").read_text())
    manifest["counts"]["items"] = 31
    tampered = json.dumps(manifest).encode()
    (mirror / "pixel200k" / "manifest.json").write_bytes(tampered)
    index = json.loads((mirror / "index.json").read_text())
    index["releases"]["pixel200k"].update(manifest_sha256=hashlib.sha256(tampered).hexdigest(),
                                          manifest_bytes=len(tampered))
    (mirror / "index.json").write_text(json.dumps(index))
    _, requests, _ = run_hostile(setup, {}, "--manifest-sha256", genuine,
                                 words=("not the one expected",))
    assert requests == ["/index.json"]  # no file of the release was asked for


def test_a_planted_symlink_is_never_written_through(setup):
    tmp_path, _, out = setup
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    partial = out / ".pixel200k.partial"
    partial.mkdir(parents=True)
    (partial / "items.parquet.part").symlink_to(victim)
    run_hostile(setup, {}, words=("symbolic link",))
    assert victim.read_text() == "keep me\n"


def test_a_hard_linked_part_is_never_written_into(setup):
    tmp_path, _, out = setup
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    partial = out / ".pixel200k.partial"
    partial.mkdir(parents=True)
    os.link(victim, partial / "items.parquet.part")
    _, requests, _ = run_hostile(setup, {}, words=("items.parquet.part", "hard link"))
    assert victim.read_text() == "keep me\n"
    assert requests == ["/index.json", "/pixel200k/manifest.json"]  # refused before any file


def test_parts_are_appended_to_only_as_plain_files_of_one_link(tmp_path):
    """The check is made on the opened file too: a link planted after the folder was looked at
    is not written through either."""
    from pixelrec_data.mirror.folders import TransferError, open_part

    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    os.link(victim, tmp_path / "hard.part")
    (tmp_path / "soft.part").symlink_to(victim)
    for name in ("hard.part", "soft.part"):
        with pytest.raises(TransferError, match="link"):
            open_part(tmp_path / name)
    assert victim.read_bytes() == b"keep" and os.stat(victim).st_nlink == 2
    with open_part(tmp_path / "new.part") as handle:  # a part of its own is written
        handle.write(b"x")
    assert (tmp_path / "new.part").read_bytes() == b"x"


def flood(tmp_path, entries: int, declare: int | None = None):
    """`pixelrec download` from a mirror whose manifest lists `entries` files (none served)."""
    mirror, out, requests = tmp_path / "mirror", tmp_path / "out", []
    write_flood_mirror(mirror, entries, declare)
    with LocalServer(hostile_mirror(mirror, requests, {})) as server:
        result = download(server, out)
    assert_small(result)
    assert not (out / "pixel200k").exists()
    return result, requests


def test_a_manifest_past_the_count_its_index_declares_is_refused_before_any_file(tmp_path):
    result, requests = flood(tmp_path, 20_000, declare=1_000)
    assert_one_line_error(result, "lists more than 1,000 files", "the index declares 1,000")
    assert requests == ["/index.json", "/pixel200k/manifest.json"]


def test_a_large_manifest_is_checked_whole_before_the_first_file(tmp_path):
    result, requests = flood(tmp_path, 20_000)
    assert_one_line_error(result, "not found on mirror", "HTTP 404")
    assert requests[:2] == ["/index.json", "/pixel200k/manifest.json"]
    assert requests[2].startswith("/pixel200k/covers/")


def test_free_space_is_checked_before_any_byte(setup, monkeypatch):
    from pixelrec_data.mirror import folders
    from pixelrec_data.mirror import download as download_release
    from schemas.errors import InputError

    _, mirror, out = setup
    monkeypatch.setattr(folders.shutil, "disk_usage", lambda _: type("U", (), {"free": 1000})())
    with pytest.raises(InputError, match="free"):
        download_release("pixel200k", str(mirror), out, counts="off")
    assert not any(p.is_file() for p in out.rglob("*"))


def test_planted_symlinks_in_the_covers_folder_are_not_followed(tmp_path):
    from pixelrec_data.covers.fetch import FetchOptions, fetch_release_covers
    from schemas.errors import InputError
    from test_downloader import write_items

    victim = tmp_path / "victim"
    victim.mkdir()
    release = tmp_path / "rel"
    release.mkdir()
    write_items(release, {"i1": "http://127.0.0.1:9/a.jpg"})
    (release / "covers").symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        fetch_release_covers(release, FetchOptions(retries=0, allow_private_hosts=True))
    assert list(victim.iterdir()) == []
