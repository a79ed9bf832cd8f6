"""The client of the publisher's host against a local server reproducing its answers."""
from __future__ import annotations

import pytest

from official_host import served_host
from pixelrec_data.official.drive import DriveClient, HostRefused
from schemas.errors import InputError

BODY = bytes(range(256)) * 4000  # 1 MB, so a truncated answer breaks mid-stream


@pytest.fixture
def host():
    with served_host() as drive:
        yield drive


def client(host, **kw):
    return DriveClient(host.url, backoff=0.0, **{"retries": 4, **kw})


def test_a_plain_file_lands_under_its_served_name(host, tmp_path):
    host.add_file("plain", "Pixel200K.csv", BODY)
    path = client(host).download("plain", tmp_path / "plain")
    assert path.name == "Pixel200K.csv" and path.read_bytes() == BODY
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["Pixel200K.csv"]
    # a finished file is never fetched again
    client(host).download("plain", tmp_path / "plain")
    assert host.requests["plain"] == 1


def test_a_large_file_behind_the_confirmation_page(host, tmp_path):
    host.add_file("big", "covers.zip", BODY, large=True)
    assert client(host).download("big", tmp_path / "big").read_bytes() == BODY
    assert host.requests["big"] == 2  # the page, then the file


def test_the_quota_page_is_a_refusal_not_a_file(host, tmp_path):
    host.add_file("busy", "covers.zip", BODY, quota=True)
    with pytest.raises(HostRefused, match="quota exceeded: too many users"):
        client(host).download("busy", tmp_path / "busy")
    assert not any(p.name == "covers.zip" for p in (tmp_path / "busy").iterdir())


def test_403_429_503_then_success(host, tmp_path):
    host.add_file("flaky", "a.csv", BODY, failures=[403, 429, 503])
    assert client(host).download("flaky", tmp_path / "f").read_bytes() == BODY
    assert host.requests["flaky"] == 4


def test_too_many_failures_is_one_line_that_says_rerun(host, tmp_path):
    host.add_file("down", "a.csv", BODY, failures=[503] * 10)
    with pytest.raises(InputError, match=r"HTTP 503 \(after 3 tries\); rerun to resume"):
        client(host, retries=2).download("down", tmp_path / "d")


def test_a_truncated_body_resumes_with_range(host, tmp_path):
    host.add_file("cut", "a.zip", BODY, truncate_once=True)
    assert client(host).download("cut", tmp_path / "c").read_bytes() == BODY
    # the first half was kept: the second answer sent only the rest
    assert host.body_bytes["cut"] == len(BODY) // 2 + (len(BODY) - len(BODY) // 2)


def test_a_wrong_size_is_caught_and_fetched_again(host, tmp_path):
    host.add_file("short", "a.csv", BODY, short_once=True)
    assert client(host).download("short", tmp_path / "s").read_bytes() == BODY


def test_a_resumed_part_of_another_version_starts_again(host, tmp_path):
    host.add_file("v", "a.csv", BODY)
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / ".partial").write_bytes(b"x" * 10)
    (folder / ".partial.json").write_text('{"name": "a.csv", "total": 99}')
    assert client(host).download("v", folder).read_bytes() == BODY


def test_folder_listing_with_subfolders(host):
    host.add_folder("top", [("f1", "Pixel200K.csv", False), ("sub", "Pixel1M", True)])
    host.add_folder("sub", [("f2", "item_info.csv", False)])
    assert client(host).list_tree("top") == [("Pixel200K.csv", "f1"), ("Pixel1M/item_info.csv", "f2")]


def test_unknown_file_is_one_line(host, tmp_path):
    with pytest.raises(InputError, match="HTTP 404"):
        client(host).download("nope", tmp_path / "n")
