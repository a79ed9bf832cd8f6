"""`pixelrec download --subset NAME` from the publisher's host (the imitation of it, reached as
drive.google.com through a proxy on 127.0.0.1) or --from DIR."""
from __future__ import annotations

import io
import json
import zipfile

import pyarrow.parquet as pq
import pytest

from official_files import covers_zip, official_tables, zip_of
from official_host import DriveHost, drive_id, served_host
from official_network import guard_dir
from pipelines.manifest import verify_release
from pixelrec_data.cli import main
from schemas.official_sources import COVERS, INTERACTIONS, ITEM_INFO
from schemas.official_subsets import OFFICIAL_SUBSETS, OfficialSubset

INTER, INFO, COUNTS = official_tables()
INTER200K, INTER1M, INFO200K, ITEMS200K = (drive_id(n) for n in ("inter200k", "inter1m", "info200k",
                                                                  "items200k"))


def serve_pixel200k(drive: DriveHost, covers: bytes | None = None, **covers_kw) -> None:
    """The publisher's layout, at the real ids: interactions as a zip, item info in a subfolder,
    the covers archive behind the confirmation page."""
    drive.add_folder(INTERACTIONS.id, [(INTER200K, "Pixel200K.zip", False),
                                       (INTER1M, "Pixel1M.csv", False)], title="Interaction")
    drive.add_file(INTER200K, "Pixel200K.zip", zip_of({"Pixel200K.csv": INTER}))
    drive.add_file(INTER1M, "Pixel1M.csv", b"item_id,user_id,timestamp\n")
    drive.add_folder(ITEM_INFO.id, [(INFO200K, "Pixel200K", True)], title="Item Information")
    drive.add_folder(INFO200K, [(ITEMS200K, "item_info.csv", False)], title="Pixel200K")
    drive.add_file(ITEMS200K, "item_info.csv", INFO)
    drive.add_file(COVERS.id, "covers.zip", covers or covers_zip(), large=True, **covers_kw)


@pytest.fixture
def drive(tmp_path, monkeypatch):
    with served_host(tmp_path / "host", monkeypatch) as host:
        yield host


@pytest.fixture
def published_as_synthetic(monkeypatch):
    """Pretend the paper published Pixel200K with the synthetic files' counts."""
    monkeypatch.setitem(OFFICIAL_SUBSETS, "pixel200k", OfficialSubset(
        "pixel200k", "Pixel200K", COUNTS["users"], COUNTS["items"], COUNTS["interactions"]))


def run(*args) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["download", *map(str, args)])
    return exit_info.value.code


def check_release(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["build"]["source"] == "official"
    assert manifest["counts"]["users"] == COUNTS["users"]
    verify_release(folder)
    items = pq.read_table(folder / "items.parquet")
    assert items.column_names.index("title_en") == items.column_names.index("title") - 1
    assert items.column("title_en").to_pylist()[0] == "English, title 0"
    covers = dict(zip(*pq.read_table(folder / "covers.parquet", columns=["item_id", "status"])
                      .to_pydict().values()))
    assert covers["i1"] == "corrupt" and covers["i2"] == "missing" and covers["i0"] == "ok"
    stored = sorted(p.name for p in (folder / "covers").iterdir())
    assert stored == sorted(f"{i}.jpg" for i, s in covers.items() if s == "ok")
    assert (folder / "README.md").is_file() and (folder / "splits" / "train.parquet").is_file()


def test_download_from_the_host_makes_a_verified_official_release(drive, published_as_synthetic,
                                                                  tmp_path):
    serve_pixel200k(drive)
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root) == 0
    check_release(root / "pixel200k")
    assert drive.requests[INTER1M] == 0  # another subset's file is not fetched
    # a rerun finds the release there and fetches nothing
    before = sum(drive.requests.values())
    assert run("--subset", "pixel200k", "--root", root) == 0
    assert sum(drive.requests.values()) == before


def test_counts_that_differ_from_the_published_ones_exit_2(drive, tmp_path, capsys):
    serve_pixel200k(drive)
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "counts users = 12, the published Pixel200K count is 200,000" in err, err
    assert not (root / "pixel200k").exists()
    assert drive.requests[COVERS.id] == 0  # refused before the covers archive is fetched


def test_the_quota_page_is_one_line_with_the_manual_links(drive, published_as_synthetic, tmp_path,
                                                         capsys):
    serve_pixel200k(drive, quota=200)
    assert run("--subset", "pixel200k", "--root", tmp_path / "d") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "retry later" in err and "--from DIR" in err
    assert f"https://drive.google.com/file/d/{COVERS.id}/view" in err
    assert not (tmp_path / "d" / "pixel200k").exists()


def hand_downloaded(folder, covers: bytes | None = None):
    """What a browser leaves: a folder download zipped as served, a plain CSV, the covers zip."""
    folder.mkdir()
    (folder / "Interaction-20240101T000000Z-001.zip").write_bytes(zip_of({
        "Interaction/Pixel200K.csv": INTER, "Interaction/Pixel1M.csv": b"item_id,user_id,timestamp\n"}))
    (folder / "Pixel200K").mkdir()
    (folder / "Pixel200K" / "item_info.csv").write_bytes(INFO)
    (folder / "covers.zip").write_bytes(covers or covers_zip())
    return folder


def test_from_hand_downloaded_files(published_as_synthetic, tmp_path):
    source = hand_downloaded(tmp_path / "by-hand")
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--from", source) == 0
    check_release(root / "pixel200k")


@pytest.mark.parametrize("member, body, message", [
    ("../x.jpg", b"\xff\xd8\xff", "unsafe member name"),
    ("/abs/i3.jpg", b"\xff\xd8\xff", "unsafe member name"),
    ("covers/i3.jpg", b"\0" * (40 << 20), "zip bomb"),
])
def test_a_hostile_covers_archive_is_refused(published_as_synthetic, tmp_path, capsys, member, body,
                                             message):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("covers/i0.jpg", b"\xff\xd8\xff")
        z.writestr(member, body)
    source = hand_downloaded(tmp_path / "by-hand", archive.getvalue())
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--from", source) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not (root / "pixel200k").exists() and not (tmp_path / "x.jpg").exists()


def test_wrong_columns_are_one_line(tmp_path, capsys):
    source = tmp_path / "by-hand"
    source.mkdir()
    (source / "Pixel200K.csv").write_bytes(b"item,user,time\ni1,u1,5\n")
    (source / "item_info.csv").write_bytes(INFO)
    assert run("--subset", "pixel200k", "--root", tmp_path / "d", "--from", source) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no interactions file of pixel200k found" in err, err


def test_not_an_official_name_without_a_mirror(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIXELREC_MIRROR", raising=False)
    monkeypatch.setenv("PIXELREC_CONFIG", str(tmp_path / "none.toml"))
    assert run("--subset", "mine", "--root", tmp_path / "d", "--from", tmp_path) == 2
    assert "not an official subset" in capsys.readouterr().err


def test_kill_then_rerun_fetches_no_finished_file_and_writes_only_under_root(drive, tmp_path):
    import os
    import subprocess
    import sys
    import time

    padding = os.urandom(4 << 20)  # stored: the covers archive takes ~3 s to serve
    archive = io.BytesIO(covers_zip())
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_STORED) as z:
        z.writestr("covers/padding.bin", padding)
    serve_pixel200k(drive, archive.getvalue(), slow_s=0.05)
    outside = {name: tmp_path / name for name in ("home", "tmp", "cwd")}
    for folder in outside.values():
        folder.mkdir()
    root = tmp_path / "data"
    guard = guard_dir(tmp_path / "guard")  # the child resolves loopback names only
    env = {**os.environ, **drive.env, "HOME": str(outside["home"]), "TMPDIR": str(outside["tmp"]),
           "PIXELREC_QUIET": "1", "PYTHONPATH": os.pathsep.join([str(guard), *sys.path]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("MPLCONFIGDIR", None)
    command = [sys.executable, "-m", "pixelrec_data.cli", "download", "--subset", "pixel200k",
               "--root", str(root), "--counts", "off"]
    proc = subprocess.Popen(command, env=env, cwd=outside["cwd"], stderr=subprocess.PIPE)
    folder = root / ".official" / "downloads" / COVERS.id
    deadline = time.monotonic() + 60

    def part_size():
        parts = list(folder.glob("*.part")) if folder.is_dir() else []
        return max((p.stat().st_size for p in parts), default=0)

    while part_size() <= (1 << 20):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert not (root / "pixel200k").exists()
    done = subprocess.run(command, env=env, cwd=outside["cwd"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    check_release(root / "pixel200k")
    assert drive.requests[INTER200K] == 1 and drive.requests[ITEMS200K] == 1
    size = len(archive.getvalue())
    assert size <= drive.body_bytes[COVERS.id] < 2 * size  # resumed, not fetched again whole
    assert drive.requests[COVERS.id] >= 4  # page + file, killed; page + the rest
    for name, folder in outside.items():
        assert list(folder.rglob("*")) == [], f"written outside --root, in {name}"


def test_publish_refuses_an_official_release(published_as_synthetic, tmp_path, capsys):
    source = hand_downloaded(tmp_path / "by-hand")
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--from", source) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", "--data", str(root), "--out", str(tmp_path / "mirror")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0
    assert "It's prohibited to privately modify the dataset and offer secondary downloads." in err
    assert not (tmp_path / "mirror" / "pixel200k").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", "--data", str(root), "--out", str(tmp_path / "mirror"),
              "--i-am-the-publisher"])
    assert exit_info.value.code == 0 and (tmp_path / "mirror" / "pixel200k" / "manifest.json").is_file()


def test_image_cache_from_the_same_decode_equals_prepare_images(published_as_synthetic, tmp_path):
    import numpy as np

    from pixelrec_data.covers import cache as images

    source = hand_downloaded(tmp_path / "by-hand")
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--from", source, "--image-cache", 16) == 0
    release = root / "pixel200k"
    assert images.is_current(release, 16, "squash")  # prepare-images would find nothing to do
    cache = np.load(release / "images" / "images_16_squash.npy")
    index = pq.read_table(release / "images" / "images_16_squash.index.parquet").to_pylist()
    for entry in index:
        path = release / "covers" / f"{entry['item_id']}.jpg"
        if entry["status"] == "ok":
            pixels, _, _ = images.decode_cover(str(path), 16, "squash")
            assert np.array_equal(cache[entry["row"]], pixels), entry
        else:
            assert (cache[entry["row"]] == images.PLACEHOLDER).all() and not path.exists()
    assert {e["item_id"] for e in index if e["status"] != "ok"} == {"i1", "i2"}


def test_the_number_of_cover_threads_does_not_change_a_byte(published_as_synthetic, tmp_path):
    import hashlib

    source = hand_downloaded(tmp_path / "by-hand")
    digests = []
    for workers in (1, 3):
        root = tmp_path / f"data-{workers}"
        assert run("--subset", "pixel200k", "--root", root, "--from", source, "--image-cache", 16,
                   "--workers", workers) == 0
        release = root / "pixel200k"
        # the cache's run report (its seconds) and meta (a staleness fingerprint over the cover
        # files' mtimes) describe this run, not the data
        digests.append({str(p.relative_to(release)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(release.rglob("*")) if p.is_file()
                        and not p.name.endswith((".report.json", ".meta.json"))})
    differ = sorted(k for k in digests[0].keys() | digests[1].keys()
                    if digests[0].get(k) != digests[1].get(k))
    assert not differ, f"{len(differ)} of {len(digests[0])} files differ: {differ[:5]}"


@pytest.mark.parametrize("case", ["truncated items", "bomb in a zip"])
def test_bad_tables_are_one_line_and_leave_no_release(tmp_path, capsys, case):
    source = tmp_path / "by-hand"
    source.mkdir()
    if case == "truncated items":  # cut inside a quoted title, as a broken download leaves it
        (source / "Pixel200K.csv").write_bytes(INTER)
        (source / "item_info.csv").write_bytes(INFO[: INFO.index(b'\xe6\xa0\x87') + 3])
        expected = "item_info.csv"
    else:
        (source / "Pixel200K.zip").write_bytes(zip_of({"Pixel200K.csv": INTER + b"\0" * (40 << 20)}))
        (source / "item_info.csv").write_bytes(INFO)
        expected = "zip bomb"
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--from", source, "--counts", "off") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err, err
    assert not (root / "pixel200k").exists()
