"""The storage formats of covers (files, parquet, webdataset): fetched into each, the same covers
come back through the one reader (covers/store.py) and through every consumer (loader, image
cache, ViNet's cover reader); the webdataset and datasets packages read the shards as they are;
pack-covers converts between formats; manifests, verify and mirrors carry every format."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test_downloader_server import LocalServer, cover_app, make_image
from test_loader_helpers import make_release

from pipelines.manifest import read_manifest, verify_release, write_manifest
from pixelrec_data.covers import store
from pixelrec_data.covers.fetch import FetchOptions, fetch_release_covers
from schemas.io import write_table

FORMATS = list(store.FORMATS)
SHARD_SIZE = 3  # items per fetch shard: several shards, one of them partly failed


def with_cover_urls(release: Path, base: str) -> list[str]:
    """Point items.parquet at the test server: every fourth item's cover is missing (404)."""
    table = pq.read_table(release / "items.parquet")
    urls = [f"{base}/missing/{n}" if n % 4 == 0 else f"{base}/img/{n}.jpg"
            for n in range(table.num_rows)]
    table = table.set_column(table.schema.get_field_index("cover_url"), "cover_url", pa.array(urls))
    write_table(table, release / "items.parquet", "items")
    return table.column("item_id").to_pylist()


def options(fmt: str) -> FetchOptions:
    return FetchOptions(format=fmt, rate=0, retries=0, allow_private_hosts=True,
                        shard_size=SHARD_SIZE)


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """One release per format, fetched from the same server; (root, item ids, server's images)."""
    root = tmp_path_factory.mktemp("formats")
    images = {f"{n}.jpg": make_image(n, size=(40 + n, 30)) for n in range(16)}
    with LocalServer(cover_app(images)) as server:
        for fmt in FORMATS:
            ids = with_cover_urls(make_release(root, fmt, covers=False), server.url)
            summary = fetch_release_covers(root / fmt, options(fmt))
            assert summary["ok"] == len(ids) - len(ids[::4]), summary
    return root, ids


def covers_of(release: Path, ids) -> list[bytes | None]:
    return [store.read(c.location) if c.usable else None for c in store.locate(release, ids)]


def test_every_format_keeps_the_same_covers_and_statuses(fetched):
    root, ids = fetched
    expected = covers_of(root / "files", ids)
    assert sum(body is not None for body in expected) == len(ids) - len(ids[::4])
    statuses = pq.read_table(store.status_table(root / "files"))
    for fmt in FORMATS:
        assert store.formats_present(root / fmt) == [fmt]
        got = covers_of(root / fmt, ids)
        differ = [i for i, (a, b) in enumerate(zip(expected, got)) if a != b]
        assert not differ, f"{fmt}: {len(differ)} of {len(ids)} covers differ"
        assert pq.read_table(store.status_table(root / fmt)).equals(statuses), fmt
    shards = store.complete_shards(root / "webdataset", "webdataset")
    assert len(shards) == -(-len(ids) // SHARD_SIZE)


def test_a_rerun_fetches_nothing_and_rewrites_no_shard(fetched, tmp_path):
    root, ids = fetched
    for fmt in ("parquet", "webdataset"):
        copy = shutil.copytree(root / fmt, tmp_path / fmt)
        folder = copy / store.FORMATS[fmt].folder
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        again = fetch_release_covers(copy, options(fmt))
        assert again["fetched_this_run"] == 0, fmt
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, fmt
        assert not list(store.stats_dir(copy).glob(".spool-*")), "spool folders outlive a shard"


def test_the_webdataset_package_and_datasets_read_the_tars_as_they_are(fetched, tmp_path):
    import datasets
    import webdataset

    root, ids = fetched
    expected = dict(zip(ids, covers_of(root / "files", ids)))
    tars = [str(root / "webdataset" / rel) for rel in store.complete_shards(root / "webdataset",
                                                                            "webdataset")]
    samples = list(webdataset.WebDataset(tars, shardshuffle=False, empty_check=False))
    assert sorted(s["__key__"] for s in samples) == sorted(k for k, v in expected.items() if v)
    assert all(s["jpg"] == expected[s["__key__"]] for s in samples)
    table = datasets.load_dataset("webdataset", data_files={"train": tars}, split="train",
                                  cache_dir=str(tmp_path / "cache"))
    assert table.num_rows == len(samples)
    row = table[0]
    assert row["json"]["item_id"] == row["__key__"] and row["jpg"].size[1] == 30


def test_the_loader_the_image_cache_and_vinet_read_every_format(fetched, tmp_path):
    from pipelines.card import write_cards
    from pixelrec_data import load_dataset
    from pixelrec_data.baselines.models.vinet.features import CoverReader
    from pixelrec_data.covers.cache import prepare_images
    from pixelrec_data.covers.cache_reader import ImageCache

    root, ids = fetched
    seen = {}
    for fmt in FORMATS:
        release = shutil.copytree(root / fmt, tmp_path / fmt)
        write_cards(release)
        items = load_dataset(str(release), config="items", with_covers=True, verify="none",
                             cache_dir=str(tmp_path / "hf" / fmt))
        sizes = [None if c is None else c.size for c in items["cover"]]
        prepare_images(release, size=16, workers=1)
        pixels = np.asarray(ImageCache(release, 16).array)
        reader = CoverReader(release, ids, 16)
        assert reader.cache is not None  # the prepared cache is taken first ...
        reader.cache = None  # ... and the covers themselves otherwise
        reader.locations = {c.item_id: c.location for c in store.locate(release, ids)}
        direct, blank = reader.batch(0, len(ids))
        seen[fmt] = (sizes, pixels, direct, blank)
    sizes, pixels, direct, blank = seen["files"]
    assert sum(s is not None for s in sizes) == len(ids) - len(ids[::4])
    assert blank.sum() == len(ids[::4])
    for fmt in FORMATS:
        assert seen[fmt][0] == sizes, f"{fmt}: the loader's covers differ"
        assert np.array_equal(seen[fmt][1], pixels), f"{fmt}: the image cache differs"
        assert np.array_equal(seen[fmt][2], direct) and np.array_equal(seen[fmt][3], blank), fmt


def test_pack_covers_converts_between_formats(fetched, tmp_path):
    from pixelrec_data.covers.pack import pack

    root, ids = fetched
    expected = covers_of(root / "files", ids)
    tars = shutil.copytree(root / "files", tmp_path / "rel")
    summary = pack(tars, tars, to="webdataset", shard_bytes=1)  # one cover per tar
    assert summary["with_image"] == len(summary["shards"]) == sum(e is not None for e in expected)
    shutil.rmtree(store.files_dir(tars))
    assert store.formats_present(tars) == ["webdataset"]
    back = pack(tars, tmp_path / "out", to="files")
    assert back["with_image"] == summary["with_image"]
    shutil.copytree(store.files_dir(tmp_path / "out"), store.files_dir(tars))
    assert covers_of(tars, ids) == expected  # files are read first again


def test_manifest_verify_and_a_mirror_carry_every_format(fetched, tmp_path):
    from pipelines.covers import fetch_covers
    from pixelrec_data.mirror import download, publish

    root, ids = fetched
    images = {f"{n}.jpg": make_image(n, size=(40 + n, 30)) for n in range(16)}
    with LocalServer(cover_app(images)) as server:
        for fmt in FORMATS:
            release = make_release(tmp_path / "data", f"r{fmt}", covers=False)
            with_cover_urls(release, server.url)
            write_manifest(release, release.name, {"source": "raw"}, {})
            assert fetch_covers(release, options(fmt))["manifest_updated"]
            listed = {e["path"] for e in read_manifest(release)["files"]}
            folder = store.FORMATS[fmt].folder
            assert store.STATUS_TABLE in listed
            assert any(p.startswith(f"{folder}/") for p in listed), (fmt, sorted(listed))
            assert verify_release(release)["unlisted"] == []
    publish(tmp_path / "data", tmp_path / "mirror")
    for fmt in FORMATS:
        got = download(f"r{fmt}", str(tmp_path / "mirror"), tmp_path / "copy", counts="off")
        verify_release(got)
        assert covers_of(got, ids) == covers_of(root / "files", ids), fmt
