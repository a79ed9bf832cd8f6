"""load_dataset / open_release refuse a release whose files differ from its manifest.json."""
from __future__ import annotations

import os

import pytest

from pipelines.manifest import write_manifest
from pixelrec_data.loader import load_dataset, open_release
from schemas.errors import InputError
from test_loader_helpers import make_release


@pytest.fixture
def release(tmp_path):
    from pipelines.card import write_cards

    make_release(tmp_path, "pixel200k")
    write_cards(tmp_path)
    write_manifest(tmp_path / "pixel200k", "pixel200k", {"source": "test"}, {})
    return tmp_path / "pixel200k"


def flip_a_byte(path):
    """The same size, one byte changed (only a hash sees it)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_clean_release_loads_under_every_mode(release, tmp_path):
    for verify in ("size", "sha256", True, False, "none"):
        open_release(release, verify=verify)
    ds = load_dataset("pixel200k", root=tmp_path, config="items", verify="sha256",
                      cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows > 0


def test_a_changed_size_is_caught_by_the_default(release, tmp_path):
    with open(release / "items.parquet", "ab") as handle:
        handle.write(b"tampered")
    for call in (lambda: open_release(release),
                 lambda: load_dataset("pixel200k", root=tmp_path, config="items",
                                      cache_dir=str(tmp_path / "cache"))):
        with pytest.raises(InputError, match="manifest.json says"):
            call()
    open_release(release, verify=False)  # the check can be turned off


def test_a_flipped_byte_is_caught_by_sha256_only(release, tmp_path):
    flip_a_byte(release / "splits" / "train.parquet")
    open_release(release)  # same size: the fast default does not read the bytes
    with pytest.raises(InputError, match="sha256 differs"):
        open_release(release, verify="sha256")
    with pytest.raises(InputError, match="sha256 differs"):
        load_dataset("pixel200k", root=tmp_path, verify=True, cache_dir=str(tmp_path / "cache"))


def test_a_missing_listed_file_and_a_bad_mode(release):
    os.remove(release / "splits" / "test.parquet")
    with pytest.raises(InputError, match="missing"):
        open_release(release)
    with pytest.raises(InputError, match="verify="):
        open_release(release, verify="fast")
