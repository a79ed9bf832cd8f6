"""`pixelrec download` against the host as it really answers (the imitation in official_host.py):
the quota page at 200/403/400, cookies, 416 on a finished part, no Range on the page hops, the
303 to the second host with the absolute form action, empty folders and pages that are no folder,
covers archives as zip / tar / tar.gz / tar.zst / several, 7z refused before its download."""
from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from official_files import covers_tar, covers_zip, zip_of
from official_host import CONTENT, drive_id
from schemas.official_sources import COVERS, INTERACTIONS, ITEM_INFO, PIXEL50K
from schemas.official_subsets import OFFICIAL_SUBSETS, OfficialSubset
from test_official_download import (COUNTS, INFO, INTER, check_release, drive,  # noqa: F401
                                    published_as_synthetic, run, serve_pixel200k)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("status", [200, 403, 400])
def test_quota_page_at_any_status_is_the_advice_line(drive, published_as_synthetic, tmp_path,
                                                     capsys, status):
    serve_pixel200k(drive, quota=status)
    assert run("--subset", "pixel200k", "--root", tmp_path / "d") == 2
    err = one_line_error(capsys)
    assert "too many users have viewed or downloaded this file recently" in err
    assert "--cookies FILE" in err and "--from DIR" in err
    assert f"https://drive.google.com/file/d/{COVERS.id}/view" in err


def browser_cookies(path, name="SID", value="signed-in"):
    path.write_text("# Netscape HTTP Cookie File\n"
                    f".google.com\tTRUE\t/\tTRUE\t0\t{name}\t{value}\n")
    return path


def test_a_file_that_needs_cookies_works_with_cookies_and_is_one_line_without(
        drive, published_as_synthetic, tmp_path, capsys):
    serve_pixel200k(drive, quota=403, quota_unless_cookie="SID=signed-in")
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root) == 2
    assert "--cookies FILE" in one_line_error(capsys)
    cookies = browser_cookies(tmp_path / "cookies.txt")
    assert run("--subset", "pixel200k", "--root", root, "--cookies", cookies) == 0
    check_release(root / "pixel200k")
    assert not (root / ".official" / "cookies.txt").exists()  # the session's copy is gone
    assert cookies.read_text().count("signed-in") == 1  # the user's file is left as it was
    (tmp_path / "bad.txt").write_text("not a cookie file\n")
    assert run("--subset", "pixel200k", "--root", tmp_path / "d2", "--cookies", tmp_path / "bad.txt") == 2
    assert "not a readable cookies.txt" in one_line_error(capsys)


@pytest.mark.parametrize("recorded", [True, False])
def test_a_whole_part_left_by_a_kill_finishes_or_restarts(drive, published_as_synthetic, tmp_path,
                                                          recorded):
    archive = covers_zip()
    serve_pixel200k(drive, archive)
    root = tmp_path / "data"
    folder = root / ".official" / "downloads" / COVERS.id
    folder.mkdir(parents=True)
    (folder / "covers.zipq1w2e3r4.part").write_bytes(archive)  # killed before the rename
    if recorded:
        (folder / ".download.json").write_text(f'{{"total": {len(archive)}}}')
    assert run("--subset", "pixel200k", "--root", root) == 0
    check_release(root / "pixel200k")
    answers = drive.answers[COVERS.id]
    if recorded:  # finished from the record: the host was not asked for the archive at all
        assert answers == []
    else:  # asked past the end (416), then started again
        assert any(kind == "416" for _, _, kind in answers), answers
        assert answers[-1] == (200, None, "file")
    # the hops that only yield the confirmation page never carry a Range
    assert all(asked is None for _, asked, kind in answers if kind == "warning")


def test_cross_host_redirect_and_absolute_form_action(drive, published_as_synthetic, tmp_path):
    serve_pixel200k(drive, confirm_shape="form-action-first")
    assert run("--subset", "pixel200k", "--root", tmp_path / "d") == 0
    assert [kind for _, _, kind in drive.answers[COVERS.id]] == ["warning", "file"]
    assert drive.network.refused == [] and set(drive.network.ports) >= {CONTENT}


def test_an_empty_folder_and_a_page_that_is_no_folder_are_one_line_each(drive, tmp_path, capsys):
    serve_pixel200k(drive)
    drive.folders[INTERACTIONS.id] = ("Interaction", [])
    assert run("--subset", "pixel200k", "--root", tmp_path / "a") == 2
    err = one_line_error(capsys)
    assert "lists no files in this folder" in err and INTERACTIONS.id in err
    serve_pixel200k(drive)
    del drive.folders[ITEM_INFO.id]
    assert run("--subset", "pixel200k", "--root", tmp_path / "b") == 2
    err = one_line_error(capsys)
    assert "not a folder listing (HTTP 404" in err and ITEM_INFO.id in err


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tar.zst"])
def test_covers_archive_as_zip_or_tar(drive, published_as_synthetic, tmp_path, kind):
    archive = covers_zip() if kind == "zip" else covers_tar(kind.partition(".")[2])
    serve_pixel200k(drive, archive)
    drive.files[COVERS.id].name = "covers.bin"  # the format is told by the bytes, not the name
    assert run("--subset", "pixel200k", "--root", tmp_path / "d") == 0
    check_release(tmp_path / "d" / "pixel200k")


@pytest.mark.parametrize("signature, name", [(b"7z\xbc\xaf\x27\x1c\x00\x04", "7z"),
                                             (b"Rar!\x1a\x07\x01\x00", "rar")])
def test_7z_or_rar_covers_are_refused_before_their_download(drive, published_as_synthetic, tmp_path,
                                                            capsys, signature, name):
    body = signature + os.urandom(4 << 20)
    serve_pixel200k(drive, body, slow_s=0.02)
    assert run("--subset", "pixel200k", "--root", tmp_path / "d") == 2
    err = one_line_error(capsys)
    assert f"a {name} archive" in err and "--from DIR" in err and COVERS.id in err
    assert drive.body_bytes[COVERS.id] < len(body) // 2  # only its first bytes were read


def serve_pixel50k(drive, covers: dict[str, bytes]):
    entries = [(drive_id("50k-inter"), "interaction.csv", False),
               (drive_id("50k-items"), "item_info.csv", False)]
    drive.add_file(drive_id("50k-inter"), "interaction.csv", INTER)
    drive.add_file(drive_id("50k-items"), "item_info.csv", INFO)
    for name, body in covers.items():
        entries.append((drive_id(name), name, False))
        drive.add_file(drive_id(name), name, body, large=True)
    drive.add_folder(PIXEL50K.id, entries, title="PixelRec50K")


@pytest.fixture
def published_50k(monkeypatch):
    monkeypatch.setitem(OFFICIAL_SUBSETS, "pixel50k", OfficialSubset(
        "pixel50k", "PixelRec50K", COUNTS["users"], COUNTS["items"], COUNTS["interactions"]))


def test_two_covers_archives_are_both_read(drive, published_50k, tmp_path):
    serve_pixel50k(drive, {"cover1.zip": covers_zip(only=range(0, 5)),
                           "cover2.tar.gz": covers_tar("gz", only=range(5, 9))})
    root = tmp_path / "data"
    assert run("--subset", "pixel50k", "--root", root) == 0
    check_release(root / "pixel50k")
    statuses = dict(zip(*pq.read_table(root / "pixel50k" / "covers.parquet",
                                       columns=["item_id", "status"]).to_pydict().values()))
    assert statuses["i3"] == "ok" and statuses["i7"] == "ok"  # one from each archive


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_covers_archive_with_two_members_for_one_cover_is_refused(published_as_synthetic,
                                                                     tmp_path, capsys, kind):
    from official_files import cover_members
    from test_official_download import hand_downloaded

    members = cover_members()
    if kind == "zip":
        twice = zip_of({**members, "other/i3.jpg": members["covers/i3.jpg"]})
    else:
        twice = covers_tar(extra={"other/i3.jpg": members["covers/i3.jpg"]})
    source = hand_downloaded(tmp_path / "by-hand", twice)
    assert run("--subset", "pixel200k", "--root", tmp_path / "d", "--from", source) == 2
    err = one_line_error(capsys)
    assert "two members for cover i3" in err and "refusing the archive" in err
