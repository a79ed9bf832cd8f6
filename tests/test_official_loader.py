"""load_dataset(NAME, download=True) fetches an absent official subset as `pixelrec download` does."""
from __future__ import annotations

import pytest

from official_host import served_host
from pixelrec_data import load_dataset
from schemas.errors import InputError
from test_official_download import COUNTS, published_as_synthetic, serve_pixel200k  # noqa: F401


@pytest.fixture
def drive(monkeypatch, tmp_path):
    with served_host(tmp_path / "host", monkeypatch) as host:
        serve_pixel200k(host)
        monkeypatch.delenv("PIXELREC_OFFICIAL_HOST", raising=False)
        monkeypatch.setenv("PIXELREC_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("PIXELREC_DATA", raising=False)
        monkeypatch.chdir(tmp_path)
        yield host


def test_download_true_fetches_into_pixelrec_home(drive, published_as_synthetic, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match="no release 'pixel200k'"):
        load_dataset("pixel200k")
    ds = load_dataset("pixel200k", download=True)
    assert set(ds) == {"train", "validation", "test"}
    assert ds["test"].num_rows == COUNTS["users"]
    assert (tmp_path / "home" / "pixel200k" / "manifest.json").is_file()
    fetched = sum(drive.requests.values())
    # found again without download=True, and download=True does not fetch twice
    assert load_dataset("pixel200k")["test"].num_rows == COUNTS["users"]
    load_dataset("pixel200k", download=True)
    assert sum(drive.requests.values()) == fetched
    items = load_dataset("pixel200k", config="items")
    assert "title_en" in items.column_names
    # force_redownload fetches the files again; reuse_cache_if_exists rebuilds from them
    load_dataset("pixel200k", download_mode="reuse_cache_if_exists")
    assert sum(drive.requests.values()) == fetched
    load_dataset("pixel200k", download_mode="force_redownload")
    assert sum(drive.requests.values()) > fetched


def test_a_bad_download_mode_is_one_line(drive):
    with pytest.raises(InputError, match="download_mode 'sometimes'"):
        load_dataset("pixel200k", download_mode="sometimes")
