"""load_dataset / open_release on a small hand-built release, against plain `datasets`."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from schemas.errors import InputError
from test_loader_helpers import CORRUPT_COVER, ITEMS, MISSING_COVER, leave_one_out, make_release

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from pipelines.card import write_cards

    from pipelines.sequences import build_sequences

    root = tmp_path_factory.mktemp("data")
    build_sequences(make_release(root, "pixel200k"))
    write_cards(root)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf-cache"))


def _rows(ds):
    return {split: ds[split].data.table.to_pylist() for split in ds}


@pytest.mark.parametrize("config,hf_suffix", [("interactions", ""), ("sequences", "_sequences")])
def test_wrapper_equals_plain_datasets(data, cache, config, hf_suffix):
    from pixelrec_data import load_dataset

    ours = load_dataset("pixel200k", root=data, config=config, cache_dir=cache)
    plain = datasets.load_dataset(str(data), "pixel200k" + hf_suffix, cache_dir=cache)
    from_release = datasets.load_dataset(str(data / "pixel200k"), "pixel200k" + hf_suffix,
                                         cache_dir=cache)
    assert set(ours) == {"train", "validation", "test"}
    assert _rows(ours) == _rows(plain) == _rows(from_release)
    # memory-mapped Arrow, not rows held in Python
    assert all(ours[s].cache_files for s in ours)
    assert type(ours["train"].data).__name__ == "MemoryMappedTable"


def test_interaction_rows_are_the_hand_split(data, cache):
    from pixelrec_data import load_dataset

    ds = load_dataset("pixel200k", root=data, cache_dir=cache)
    for split, rows in leave_one_out().items():
        got = sorted((r["user_id"], r["item_id"], r["timestamp"]) for r in ds[split])
        assert got == sorted(rows)
    one = load_dataset("pixel200k", "test", root=data, cache_dir=cache)
    assert one.num_rows == len(leave_one_out()["test"])
    both = load_dataset("pixel200k", "validation+test[:2]", root=data, cache_dir=cache)
    assert both.num_rows == len(leave_one_out()["validation"]) + 2
    _one_line_error(lambda: load_dataset("pixel200k", "dev", root=data), "split 'dev'")
    _one_line_error(lambda: load_dataset("pixel200k", root=data, config="users"), "config 'users'")


def test_items_and_covers(data, cache):
    from pixelrec_data import load_dataset

    items = load_dataset("pixel200k", root=data, config="items", cache_dir=cache)
    plain = datasets.load_dataset(str(data), "pixel200k_items", split="train", cache_dir=cache)
    assert items.data.table.to_pylist() == plain.data.table.to_pylist()
    assert items["item_id"] == [f"i{i}" for i in ITEMS]
    with_covers = load_dataset("pixel200k", root=data, config="items", with_covers=True, cache_dir=cache)
    assert isinstance(with_covers.features["cover"], datasets.Image)
    for row in with_covers:
        number = int(row["item_id"][1:])
        if number in (MISSING_COVER, CORRUPT_COVER):
            assert row["cover"] is None
            continue
        expected = np.asarray(Image.open(data / "pixel200k" / "covers" / f"{row['item_id']}.jpg"))
        assert np.array_equal(np.asarray(row["cover"]), expected)


def test_streaming(data):
    from pixelrec_data import load_dataset

    stream = load_dataset("pixel200k", root=data, streaming=True)
    assert [r["item_id"] for r in stream["test"]] == [r[1] for r in leave_one_out()["test"]]
    covers = list(load_dataset("pixel200k", root=data, config="items", streaming=True, with_covers=True))
    assert [r["cover"] is None for r in covers] == [i in (MISSING_COVER, CORRUPT_COVER) for i in ITEMS]
    assert covers[0]["cover"].size == (64, 40)


def _one_line_error(call, *words):
    with pytest.raises(InputError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    return message


def test_missing_release_names_download(tmp_path):
    from pixelrec_data import load_dataset

    _one_line_error(lambda: load_dataset("pixel1m", root=tmp_path),
                    "pixelrec download --subset pixel1m")


def test_missing_split_names_build_splits(tmp_path, cache):
    from pixelrec_data import load_dataset
    from pipelines.card import write_cards

    release = make_release(tmp_path, "custom", covers=False)
    write_cards(tmp_path)
    _one_line_error(lambda: load_dataset("custom", root=tmp_path, config="items", with_covers=True,
                                         cache_dir=cache), "pixelrec fetch-covers")
    (release / "splits" / "validation.parquet").unlink()
    for config in ("interactions", "items"):  # datasets resolves every config of a card
        _one_line_error(lambda: load_dataset("custom", root=tmp_path, config=config, cache_dir=cache),
                        "validation.parquet", f"pixelrec build-splits --release {release}")


def test_corrupt_card_fails_in_one_line(tmp_path, cache):
    from pixelrec_data import load_dataset
    from pipelines.card import write_cards

    release = make_release(tmp_path, "pixel200k", covers=False)
    write_cards(tmp_path)
    card = release / "README.md"
    text = card.read_text()
    card.write_text(text.replace("configs:\n", "configs: [\n", 1))
    _one_line_error(lambda: load_dataset("pixel200k", root=tmp_path, cache_dir=cache),
                    "not valid YAML", "build-splits")
    card.unlink()
    _one_line_error(lambda: load_dataset("pixel200k", root=tmp_path, cache_dir=cache),
                    "README.md", "build-splits")


def test_stale_card_split_sizes_are_caught(tmp_path, cache):
    """datasets' own split-size check runs on our cards: a stale count fails, in one line."""
    import yaml

    from pixelrec_data import load_dataset
    from pipelines.card import write_cards

    release = make_release(tmp_path, "pixel200k", covers=False)
    write_cards(tmp_path)
    card = release / "README.md"
    _, header, body = card.read_text().split("---", 2)
    header = yaml.safe_load(header)
    info = next(i for i in header["dataset_info"] if i["config_name"] == "pixel200k")
    test = next(s for s in info["splits"] if s["name"] == "test")
    assert test["num_examples"] == len(leave_one_out()["test"])
    test["num_examples"] += 1
    card.write_text("---\n" + yaml.safe_dump(header, sort_keys=False) + "---" + body)
    _one_line_error(lambda: load_dataset("pixel200k", root=tmp_path, cache_dir=cache),
                    "cannot load config 'pixel200k'", "build-splits")


def test_open_release_polars_and_duckdb(data):
    from pixelrec_data import open_release

    rel = open_release(data / "pixel200k")
    assert {"items", "interactions", "train", "validation", "test", "covers"} <= set(rel.tables)
    frame = rel.train
    assert type(frame).__name__ == "LazyFrame"
    assert frame.collect().height == len(leave_one_out()["train"])
    con = rel.duckdb()
    try:
        n = con.sql("SELECT count(*) FROM interactions JOIN items USING (item_id)").fetchall()[0][0]
        assert n == rel.interactions.collect().height
        seq = con.sql("SELECT count(*) FROM sequences_test").fetchall()[0][0]
        assert seq == len(leave_one_out()["test"])
    finally:
        con.close()
    _one_line_error(lambda: open_release(data / "nope"), "pixelrec download --subset nope")
    _one_line_error(lambda: rel.manifest, "manifest.json")


def test_root_from_environment(data, cache, monkeypatch):
    from pixelrec_data import load_dataset

    monkeypatch.setenv("PIXELREC_DATA", str(data))
    assert load_dataset(split="test", cache_dir=cache).num_rows == len(leave_one_out()["test"])
    monkeypatch.delenv("PIXELREC_DATA")
    monkeypatch.chdir(data.parent)
    _one_line_error(lambda: load_dataset(), "pixelrec download --subset pixel200k --root data")


def test_public_functions_carry_their_signatures_and_docs():
    import inspect

    import pixelrec_data

    params = inspect.signature(pixelrec_data.load_dataset).parameters
    assert list(params)[:3] == ["name", "split", "root"] and "with_covers" in params
    assert "datasets" in pixelrec_data.load_dataset.__doc__
    assert list(inspect.signature(pixelrec_data.open_release).parameters) == ["path", "verify"]
    assert "polars" in pixelrec_data.open_release.__doc__


def test_path_names_get_path_hints(tmp_path, monkeypatch):
    from pixelrec_data import load_dataset
    from pathlib import Path

    from pixelrec_data.loader import release_dir
    from schemas.errors import InputError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as caught:
        load_dataset("data/pixel200k")
    message = str(caught.value)
    assert "--subset data/pixel200k" not in message and "--subset pixel200k --root data" in message
    (tmp_path / "data" / "pixel200k").mkdir(parents=True)
    assert release_dir("data/pixel200k") == Path("data/pixel200k")
