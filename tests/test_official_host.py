"""The client of the publisher's host (gdown and what drive.py adds around it) against the
imitation of the host, reached as drive.google.com / drive.usercontent.google.com over TLS."""
from __future__ import annotations

import os

import pytest

from official_host import WARNING_COOKIE, drive_id, served_host
from pixelrec_data.official.drive import DriveClient, HostRefused
from schemas.errors import InputError

BODY = bytes(range(256)) * 12000  # 3 MB: a truncated answer breaks after whole 512 KB pieces
PLAIN, BIG, BUSY = drive_id("plain"), drive_id("big"), drive_id("busy")


@pytest.fixture
def host(tmp_path, monkeypatch):
    with served_host(tmp_path, monkeypatch) as drive:
        yield drive


def client(tmp_path, **kw):
    return DriveClient(tmp_path / "cookies.txt", backoff=0.0, **{"retries": 4, **kw})


def test_a_plain_file_lands_under_its_served_name(host, tmp_path):
    host.add_file(PLAIN, "Pixel200K.csv", BODY)
    path = client(tmp_path).download(PLAIN, tmp_path / "plain")
    assert path.name == "Pixel200K.csv" and path.read_bytes() == BODY
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["Pixel200K.csv"]
    # a finished file is never fetched again
    client(tmp_path).download(PLAIN, tmp_path / "plain")
    assert host.requests[PLAIN] == 1
    assert host.network.refused == []  # every name asked for was one the imitation serves


@pytest.mark.parametrize("shape", ["form", "form-action-first", "href", "json"])
def test_a_large_file_behind_each_layout_of_the_confirmation_page(host, tmp_path, shape):
    host.add_file(BIG, "covers.zip", BODY, large=True, confirm_shape=shape)
    assert client(tmp_path).download(BIG, tmp_path / "big").read_bytes() == BODY
    assert [kind for _, _, kind in host.answers[BIG]] == ["warning", "file"]


def test_the_confirmed_request_needs_the_pages_cookie_and_uuid(host, tmp_path):
    import requests

    host.add_file(BIG, "covers.zip", BODY, large=True)
    url = f"https://drive.usercontent.google.com/download?id={BIG}&export=download&confirm=t"
    answer = requests.get(url, timeout=10)  # no uuid, no cookie: the page again, not the file
    assert answer.status_code == 200 and "download-form" in answer.text
    page = requests.get(f"{url}&uuid=made-up", cookies={WARNING_COOKIE: "x"}, timeout=10)
    assert "download-form" in page.text and "Content-Disposition" not in page.headers


def test_no_range_on_the_page_hops_and_416_past_the_end(host, tmp_path):
    host.add_file(BIG, "covers.zip", BODY, large=True, truncate_once=True)
    assert client(tmp_path).download(BIG, tmp_path / "big").read_bytes() == BODY
    pages = [asked for _, asked, kind in host.answers[BIG] if kind == "warning"]
    assert pages and all(asked is None for asked in pages)
    assert _resumed(host.answers[BIG])
    import requests  # the host itself: a range at the end of the file is not satisfiable

    host.add_file(PLAIN, "a.csv", BODY)
    answer = requests.get(f"https://drive.google.com/uc?id={PLAIN}&export=download", timeout=10,
                          headers={"Range": f"bytes={len(BODY)}-"})
    assert answer.status_code == 416 and answer.headers["Content-Range"] == f"bytes */{len(BODY)}"
    assert answer.url.startswith("https://drive.usercontent.google.com/download?")


@pytest.mark.parametrize("status", [200, 403, 400])
def test_the_quota_page_is_a_refusal_whatever_its_status(host, tmp_path, status):
    host.add_file(BUSY, "covers.zip", BODY, quota=status)
    with pytest.raises(HostRefused, match="quota exceeded: too many users"):
        client(tmp_path).download(BUSY, tmp_path / "busy")
    assert not any(p.name == "covers.zip" for p in (tmp_path / "busy").iterdir())


def test_busy_answers_then_success(host, tmp_path):
    flaky = drive_id("flaky")
    host.add_file(flaky, "a.csv", BODY, failures=[429, 503, 503])
    assert client(tmp_path).download(flaky, tmp_path / "f").read_bytes() == BODY
    # each failed try is one look by gdown and one plain look at the status: 2 + 2 + the file
    assert host.requests[flaky] == 5


def test_too_many_failures_is_one_line_that_says_rerun(host, tmp_path):
    down = drive_id("down")
    host.add_file(down, "a.csv", BODY, failures=[503] * 10)
    with pytest.raises(InputError, match=r"HTTP 503 \(after 3 tries\); rerun to resume"):
        client(tmp_path, retries=2).download(down, tmp_path / "d")


def test_a_truncated_body_resumes_with_range(host, tmp_path):
    cut = drive_id("cut")
    host.add_file(cut, "a.zip", BODY, truncate_once=True)
    assert client(tmp_path).download(cut, tmp_path / "c").read_bytes() == BODY
    # what came before the cut was kept: the last answer was asked for the rest only
    assert _resumed(host.answers[cut][-1:])


def _resumed(answers) -> bool:
    return any(status == 206 and asked and 0 < int(asked[6:-1]) <= len(BODY) // 2
               for status, asked, _ in answers)


def test_a_wrong_size_is_caught_and_fetched_again(host, tmp_path):
    short = drive_id("short")
    host.add_file(short, "a.csv", BODY, short_once=True)
    assert client(tmp_path).download(short, tmp_path / "s").read_bytes() == BODY


def test_a_resumed_part_of_another_version_starts_again(host, tmp_path):
    version = drive_id("v")
    host.add_file(version, "a.csv", BODY)
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "a.csvABCDEFGH.part").write_bytes(b"x" * 10)
    (folder / ".download.json").write_text('{"total": 99}')
    assert client(tmp_path).download(version, folder).read_bytes() == BODY


def test_a_part_that_is_a_hard_link_is_never_appended_to(host, tmp_path):
    linked = drive_id("linked")
    host.add_file(linked, "a.csv", BODY)
    folder = tmp_path / "l"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    os.link(victim, folder / "a.csvABCDEFGH.part")
    (folder / "b.csvABCDEFGH.part").symlink_to(victim)
    assert client(tmp_path).download(linked, folder).read_bytes() == BODY
    assert victim.read_bytes() == b"precious" and os.stat(victim).st_nlink == 1


def test_folder_listing_with_subfolders(host, tmp_path):
    top, sub, f1, f2 = (drive_id(n) for n in ("top", "sub", "f1", "f2"))
    host.add_folder(top, [(f1, "Pixel200K.csv", False), (sub, "Pixel1M", True)], title="Interaction")
    host.add_folder(sub, [(f2, "item_info.csv", False)], title="Pixel1M")
    assert client(tmp_path).list_tree(top) == [("Pixel200K.csv", f1), ("Pixel1M/item_info.csv", f2)]


def test_an_empty_folder_and_a_page_that_is_no_folder_are_told_apart(host, tmp_path):
    empty = drive_id("empty")
    host.add_folder(empty, [], title="Interaction")
    with pytest.raises(InputError, match="the host lists no files in this folder"):
        client(tmp_path).list_tree(empty)
    with pytest.raises(InputError, match=r"not a folder listing \(HTTP 404"):
        client(tmp_path).list_tree(drive_id("a file, not a folder"))


def test_unknown_file_is_one_line(host, tmp_path):
    with pytest.raises(InputError, match="HTTP 404"):
        client(tmp_path).download(drive_id("nope"), tmp_path / "n")


def test_host_url_is_a_reverse_proxy_for_whole_files_only(tmp_path, monkeypatch):
    from aiohttp import web

    from official_host import warning_page, HostFile
    from official_network import PROXY_VARIABLES, refuse_non_loopback
    from test_downloader_server import LocalServer

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    refuse_non_loopback(monkeypatch)

    async def uc(request):  # a proxy that passes the host's answers through as they are
        if request.query["id"] == "whole":
            return web.Response(body=BODY, headers={"Content-Disposition": 'attachment; filename="a.csv"'})
        page = warning_page("big", HostFile("covers.zip", BODY, large=True), "token")
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/uc", uc)
    with LocalServer(app) as proxy:
        via = client(tmp_path, host=proxy.url)
        assert via.download("whole", tmp_path / "w", name="a.csv").read_bytes() == BODY
        with pytest.raises(InputError, match="the proxy answered a web page, not the file"):
            via.download("page", tmp_path / "p", name="covers.zip")
        assert not (tmp_path / "p" / "covers.zip").exists()
        with pytest.raises(InputError, match="folder listings do not pass a reverse proxy"):
            via.list_tree("folder")
