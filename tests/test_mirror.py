"""publish -> serve over HTTP (a real aiohttp static server) -> download, and what must fail."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from aiohttp import web

from pixelrec_data.mirror import MirrorOptions, check_relpath, download, parse_manifest, publish
from schemas.errors import InputError
from schemas.io import write_table
from schemas.tables import ITEMS, SPLIT
from test_downloader_server import LocalServer

ROOT = Path(__file__).resolve().parent.parent


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_release(data: Path, name: str, n_items: int = 30, extra: dict[str, bytes] | None = None) -> Path:
    """A small but real release folder with its manifest.json."""
    release = data / name
    items = pa.Table.from_pylist([{"item_id": f"i{n}", "title": f"video {n}" * 50, "view_number": n}
                                  for n in range(n_items)], schema=ITEMS)
    write_table(items, release / "items.parquet", "items")
    split = pa.Table.from_pylist([{"item_id": f"i{n % n_items}", "user_id": f"u{n}", "timestamp": n}
                                  for n in range(200)], schema=SPLIT)
    write_table(split, release / "splits" / "train.parquet", "split")
    write_table(split.append_column("source", pa.array(["comment"] * 200)),
                release / "interactions.parquet", "interactions")
    (release / "README.md").write_text(f"# {name}\n" + "x" * 5000)
    rows = {"items.parquet": n_items, "interactions.parquet": 200, "splits/train.parquet": 200,
            "README.md": None}
    for rel, data_bytes in (extra or {}).items():
        (release / rel).parent.mkdir(parents=True, exist_ok=True)
        (release / rel).write_bytes(data_bytes)
        rows[rel] = None
    write_manifest(release, name, [{"path": rel, "bytes": (release / rel).stat().st_size,
                                    "sha256": sha(release / rel), "rows": n}
                                   for rel, n in rows.items()])
    return release


def write_manifest(release: Path, name: str, files: list[dict]) -> None:
    manifest = {"name": name, "schema_version": "1.0", "created_by": "pixelrec 0.1.0 (tests)",
                "build": {"seed": 1, "source": "raw"}, "counts": {"items": 30}, "files": files}
    (release / "manifest.json").write_text(json.dumps(manifest, indent=2))


def pixelrec(*args, env=None):
    code = "import sys; from pixelrec_data.cli import main; main(sys.argv[1:])"
    full_env = {**os.environ, "PIXELREC_QUIET": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)


def static_app(folder: Path, requests: list, delays: dict[str, float] | None = None):
    """Serves `folder` like a plain web server (Range supported); logs (path, Range) per GET.
    `delays` holds back the answer for some paths (seconds), to order transfers in a test."""
    @web.middleware
    async def log(request, handler):
        requests.append((request.path, request.headers.get("Range")))
        await asyncio.sleep((delays or {}).get(request.path, 0))
        return await handler(request)

    app = web.Application(middlewares=[log])
    app.router.add_static("/", folder)
    return app


@pytest.fixture
def mirror(tmp_path):
    data = tmp_path / "data"
    make_release(data, "pixel200k", 30)
    make_release(data, "pixel1m", 60, extra={"covers/i1.jpg": os.urandom(3000)})
    out = tmp_path / "mirror"
    publish(data, out)  # in-process; the command itself is tested below
    requests: list = []
    with LocalServer(static_app(out, requests)) as server:
        yield data, out, server, requests


def test_publish_writes_index_and_release_folders(tmp_path):
    data = tmp_path / "data"
    make_release(data, "pixel200k", 30)
    make_release(data, "pixel1m", 60, extra={"covers/i1.jpg": os.urandom(3000)})
    out = tmp_path / "mirror"
    proc = pixelrec("publish", "--data", data, "--out", out, "--release", "pixel1m")
    assert proc.returncode == 0, proc.stderr
    assert "published pixel1m: 5 files" in proc.stdout
    assert not (out / "pixel200k").exists()
    proc = pixelrec("publish", "--data", data, "--out", out)  # all releases; pixel1m replaced
    assert proc.returncode == 0, proc.stderr
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["releases"]) == ["pixel1m", "pixel200k"]
    entry = index["releases"]["pixel1m"]
    assert entry["manifest_sha256"] == sha(data / "pixel1m/manifest.json")
    assert entry["files"] == 5 and entry["bytes"] == sum(
        (data / "pixel1m" / p).stat().st_size for p in
        ("items.parquet", "interactions.parquet", "splits/train.parquet", "README.md", "covers/i1.jpg"))
    for rel in ("manifest.json", "items.parquet", "splits/train.parquet", "covers/i1.jpg"):
        assert sha(out / "pixel1m" / rel) == sha(data / "pixel1m" / rel)


def test_round_trip_over_http_gives_identical_files_and_reuses_them(mirror, tmp_path):
    data, _, server, requests = mirror
    dest = tmp_path / "downloaded"
    proc = pixelrec("download", "--subset", "pixel200k", "--out", dest,
                    env={"PIXELREC_MIRROR": server.url})
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.relative_to(dest / "pixel200k").as_posix()
                 for p in (dest / "pixel200k").rglob("*") if p.is_file())
    assert got == ["README.md", "interactions.parquet", "items.parquet", "manifest.json",
                   "splits/train.parquet"]
    for rel in got:
        assert sha(dest / "pixel200k" / rel) == sha(data / "pixel200k" / rel)
    # no partial folder left; the data root gets its dataset card
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "pixel200k"]
    requests.clear()
    proc = pixelrec("download", "--subset", "pixel200k", "--out", dest, "--mirror", server.url)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p for p, _ in requests) == ["/index.json", "/pixel200k/manifest.json"]


def test_download_resumes_with_range_and_skips_verified_files(mirror, tmp_path):
    data, _, server, requests = mirror
    dest = tmp_path / "dl"
    partial = dest / ".pixel200k.partial"
    (partial / "splits").mkdir(parents=True)
    items = (data / "pixel200k/items.parquet").read_bytes()
    (partial / "items.parquet.part").write_bytes(items[:1000])  # an interrupted transfer
    (partial / "README.md").write_bytes((data / "pixel200k/README.md").read_bytes())  # done before
    proc = pixelrec("download", "--subset", "pixel200k", "--out", dest, "--mirror", server.url)
    assert proc.returncode == 0, proc.stderr
    log = dict(requests)
    assert log["/pixel200k/items.parquet"] == "bytes=1000-"
    assert "/pixel200k/README.md" not in log
    assert sha(dest / "pixel200k/items.parquet") == sha(data / "pixel200k/items.parquet")


def test_tampered_file_fails_in_one_line_and_leaves_no_release(mirror, tmp_path):
    _, out, _, _ = mirror
    target = out / "pixel200k/splits/train.parquet"
    body = bytearray(target.read_bytes())
    body[len(body) // 2] ^= 0xFF  # same size, different bytes
    target.unlink()  # published files may be hard links: do not alter the source release
    target.write_bytes(bytes(body))
    dest = tmp_path / "dl"
    # items.parquet is still in flight when the bad file fails: it must finish, not be cancelled
    with LocalServer(static_app(out, [], delays={"/pixel200k/items.parquet": 1.0})) as slow:
        proc = pixelrec("download", "--subset", "pixel200k", "--out", dest, "--mirror", slow.url)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "splits/train.parquet" in proc.stderr
    assert "sha256" in proc.stderr and "Traceback" not in proc.stderr
    assert not (dest / "pixel200k").exists()
    # the bad copy is not kept (not even as a .part to resume from); the good files are
    assert not list(dest.rglob("train.parquet*"))
    assert (dest / ".pixel200k.partial/items.parquet").is_file()


def test_a_stale_resumed_prefix_is_refetched_whole(mirror, tmp_path):
    data, _, server, requests = mirror
    dest = tmp_path / "dl"
    (dest / ".pixel200k.partial").mkdir(parents=True)
    # a prefix of another version of the file (as if the mirror was updated since the first run)
    (dest / ".pixel200k.partial/items.parquet.part").write_bytes(os.urandom(1000))
    proc = pixelrec("download", "--subset", "pixel200k", "--out", dest, "--mirror", server.url)
    assert proc.returncode == 0, proc.stderr
    assert [r for p, r in requests if p == "/pixel200k/items.parquet"] == ["bytes=1000-", None]
    assert sha(dest / "pixel200k/items.parquet") == sha(data / "pixel200k/items.parquet")


def test_tampered_manifest_and_unknown_subset_fail(mirror, tmp_path):
    _, out, server, _ = mirror
    proc = pixelrec("download", "--subset", "pixel8m", "--out", tmp_path / "dl", "--mirror", server.url)
    assert proc.returncode == 2 and "has no release 'pixel8m'" in proc.stderr
    assert "pixel1m, pixel200k" in proc.stderr
    manifest = out / "pixel200k/manifest.json"
    text = manifest.read_text().replace('"seed": 1', '"seed": 2')
    manifest.unlink()
    manifest.write_text(text)
    proc = pixelrec("download", "--subset", "pixel200k", "--out", tmp_path / "dl", "--mirror", server.url)
    assert proc.returncode == 2 and "manifest.json: sha256 differs" in proc.stderr
    assert not (tmp_path / "dl/pixel200k").exists()


def test_folder_and_file_url_mirrors(mirror, tmp_path):
    data, out, _, _ = mirror
    for spec, dest in ((str(out), tmp_path / "a"), (out.as_uri(), tmp_path / "b")):
        proc = pixelrec("download", "--subset", "pixel1m", "--out", dest, "--mirror", spec)
        assert proc.returncode == 0, proc.stderr
        assert sha(dest / "pixel1m/covers/i1.jpg") == sha(data / "pixel1m/covers/i1.jpg")


@pytest.mark.parametrize("bad", ["../evil.txt", "/etc/passwd", "a/../../evil.txt", "C:/x", "a\\b", ""])
def test_unsafe_manifest_paths_are_refused(bad):
    with pytest.raises(InputError, match="unsafe file path"):
        check_relpath(bad, "manifest.json")
    manifest = {"name": "r", "schema_version": "1", "created_by": "t", "build": {}, "counts": {},
                "files": [{"path": bad, "bytes": 1, "sha256": "0" * 64}]}
    with pytest.raises(InputError, match="unsafe file path"):
        parse_manifest(json.dumps(manifest).encode(), "manifest.json")


def test_unsafe_paths_refused_by_publish_and_download(tmp_path):
    data = tmp_path / "data"
    release = make_release(data, "evil")
    (tmp_path / "secret.txt").write_text("outside")
    write_manifest(release, "evil", [{"path": "../../secret.txt", "bytes": 7,
                                      "sha256": sha(tmp_path / "secret.txt")}])
    proc = pixelrec("publish", "--data", data, "--out", tmp_path / "mirror")
    assert proc.returncode == 2 and "unsafe file path" in proc.stderr
    # a hand-made hostile mirror: the index vouches for a manifest with an unsafe path
    hostile = tmp_path / "hostile"
    (hostile / "evil").mkdir(parents=True)
    (hostile / "evil/manifest.json").write_bytes((release / "manifest.json").read_bytes())
    (hostile / "index.json").write_text(json.dumps({"format": "pixelrec-mirror", "format_version": 1,
        "releases": {"evil": {"path": "evil", "manifest_sha256": sha(release / "manifest.json")}}}))
    dest = tmp_path / "x" / "y"
    proc = pixelrec("download", "--subset", "evil", "--out", dest, "--mirror", hostile)
    assert proc.returncode == 2 and "unsafe file path '../../secret.txt'" in proc.stderr
    assert not dest.exists() and (tmp_path / "secret.txt").read_text() == "outside"


def test_publish_refuses_a_release_whose_files_do_not_match(tmp_path):
    release = make_release(tmp_path / "data", "pixel200k")
    (release / "README.md").write_text("changed after the manifest was written")
    proc = pixelrec("publish", "--data", tmp_path / "data", "--out", tmp_path / "mirror")
    assert proc.returncode == 2 and "README.md" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "mirror/pixel200k").exists()


def test_download_survives_503s_and_a_server_without_range(tmp_path):
    data = tmp_path / "data"
    make_release(data, "pixel200k")
    out = tmp_path / "mirror"
    publish(data, out)
    seen: set = set()

    async def plain_server(request):  # no Range support, and a 503 on each file's first request
        rel = request.match_info["rel"]
        if rel not in seen:
            seen.add(rel)
            raise web.HTTPServiceUnavailable()
        return web.Response(body=(out / rel).read_bytes())

    app = web.Application()
    app.router.add_get("/{rel:.+}", plain_server)
    dest = tmp_path / "dl"
    partial = dest / ".pixel200k.partial"
    partial.mkdir(parents=True)
    (partial / "items.parquet.part").write_bytes(b"stale prefix")  # must be rewritten, not appended to
    with LocalServer(app) as server:
        folder = download("pixel200k", server.url, dest, MirrorOptions(retries=1, backoff=0.01))
    for rel in ("items.parquet", "splits/train.parquet", "README.md", "manifest.json"):
        assert sha(folder / rel) == sha(data / "pixel200k" / rel)
    assert not partial.exists()


def release_with_cover_urls(data: Path, base_url: str, images: dict) -> Path:
    """data/pixel200k (built from raw/) whose items point at base_url/img/<n>.jpg."""
    from pipelines.manifest import write_manifest

    release = make_release(data, "pixel200k", len(images))
    items = pa.Table.from_pylist([{"item_id": f"i{n}", "cover_url": f"{base_url}/img/{n}.jpg"}
                                  for n in range(len(images))], schema=ITEMS)
    write_table(items, release / "items.parquet", "items")
    write_manifest(release, "pixel200k", {"seed": 1, "source": "raw"}, {"items": len(images)})
    return release


def test_fetched_covers_join_the_manifest_and_travel_through_the_mirror(tmp_path):
    from pipelines.manifest import verify_release
    from test_downloader_server import cover_app, make_image

    images = {f"{n}.jpg": make_image(n) for n in range(3)}
    data = tmp_path / "data"
    with LocalServer(cover_app(images)) as server:
        release = release_with_cover_urls(data, server.url, images)
        proc = pixelrec("fetch-covers", "--release", release, "--allow-private-hosts")
    assert proc.returncode == 0, proc.stderr
    assert "covers listed" in proc.stdout
    listed = {e["path"] for e in json.loads((release / "manifest.json").read_text())["files"]}
    assert {"covers.parquet", "covers/i0.jpg", "covers/i2.jpg"} <= listed
    assert verify_release(release)["unlisted"] == []
    publish(data, tmp_path / "mirror")
    folder = download("pixel200k", str(tmp_path / "mirror"), tmp_path / "dl")
    assert (folder / "covers/i1.jpg").read_bytes() == images["1.jpg"]


def test_download_with_covers_fetches_them_and_lists_them(tmp_path):
    from pipelines.manifest import verify_release
    from test_downloader_server import cover_app, make_image

    images = {f"{n}.jpg": make_image(n) for n in range(3)}
    data = tmp_path / "data"
    with LocalServer(cover_app(images)) as server:
        release_with_cover_urls(data, server.url, images)
        publish(data, tmp_path / "mirror")
        proc = pixelrec("download", "--subset", "pixel200k", "--mirror", tmp_path / "mirror",
                        "--root", tmp_path / "dl", "--with-covers", "--allow-private-hosts")
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "dl" / "pixel200k"
    assert (folder / "covers" / "i2.jpg").read_bytes() == images["2.jpg"]
    assert "3/3 ok" in proc.stdout and "covers listed" in proc.stdout
    assert verify_release(folder)["unlisted"] == []


def test_fetch_covers_refuses_to_vouch_for_a_file_changed_since_the_manifest(tmp_path):
    from test_downloader_server import cover_app, make_image

    images = {f"{n}.jpg": make_image(n) for n in range(2)}
    with LocalServer(cover_app(images)) as server:
        release = release_with_cover_urls(tmp_path / "data", server.url, images)
        before = (release / "manifest.json").read_bytes()
        with open(release / "splits" / "train.parquet", "ab") as handle:
            handle.write(b"tampered")
        proc = pixelrec("fetch-covers", "--release", release, "--allow-private-hosts")
    assert proc.returncode == 2 and "changed since manifest.json was written" in proc.stderr
    assert (release / "manifest.json").read_bytes() == before
