"""Dataset cards: YAML header, split sizes, sequences, defaults, determinism."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import yaml

from test_loader_helpers import EVENTS, make_release

datasets = pytest.importorskip("datasets")


def _header(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    _, header, body = text.split("---", 2)
    return yaml.safe_load(header), body


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from pipelines.card import write_cards

    from pipelines.sequences import build_sequences

    root = tmp_path_factory.mktemp("data")
    build_sequences(make_release(root, "pixel200k"))
    build_sequences(make_release(root, "pixel1m", covers=False))
    written = write_cards(root)
    assert sorted(p.relative_to(root).as_posix() for p in written) == [
        "README.md", "pixel1m/README.md", "pixel200k/README.md"]
    return root


def test_root_card_declares_every_release(data):
    header, body = _header(data / "README.md")
    names = [c["config_name"] for c in header["configs"]]
    assert names == ["pixel1m", "pixel1m_sequences", "pixel1m_items",
                     "pixel200k", "pixel200k_sequences", "pixel200k_items"]
    defaults = [c["config_name"] for c in header["configs"] if c.get("default")]
    assert defaults == ["pixel200k"]
    config = next(c for c in header["configs"] if c["config_name"] == "pixel200k")
    assert config["data_files"] == [{"split": s, "path": f"pixel200k/splits/{s}.parquet"}
                                    for s in ("train", "validation", "test")]
    assert header["license"]
    assert "arXiv:2309.06789" in body and "An Image Dataset for Benchmarking Recommender Systems" in body
    assert "leave-one-out" in body.lower()


def test_split_sizes_match_files_and_datasets(data, tmp_path):
    header, _ = _header(data / "pixel200k" / "README.md")
    assert [c["data_files"][0]["path"] for c in header["configs"]] == [
        "splits/train.parquet", "sequences/train.parquet", "items.parquet"]
    for info in header["dataset_info"]:
        name = info["config_name"]
        loaded = datasets.load_dataset(str(data), name, cache_dir=str(tmp_path))
        for split in info["splits"]:
            ds = loaded[split["name"]]
            assert split["num_examples"] == ds.num_rows > 0
            recorded = ds.info.splits[split["name"]].num_bytes
            assert abs(split["num_bytes"] - recorded) <= 0.05 * recorded
        features = datasets.Features._from_yaml_list(info["features"])
        assert features == loaded["train"].features


def _hand_sequences():
    """Per split, {user: (history items, history times, target item, target time)}, by hand."""
    out = {"train": {}, "validation": {}, "test": {}}
    for user, events in EVENTS.items():
        seq = [(f"i{i}", t) for i, t in sorted(events, key=lambda e: (e[1], e[0]))]
        cut = {"test": len(seq) - 1, "validation": len(seq) - 2, "train": len(seq) - 3}
        for split, target in cut.items():
            if target >= 0:
                hist = seq[:target]
                out[split][f"u{user}"] = ([i for i, _ in hist], [t for _, t in hist], *seq[target])
    return out


def test_sequences_equal_hand_computation(data):
    for split, expected in _hand_sequences().items():
        rows = pq.read_table(data / "pixel200k" / "sequences" / f"{split}.parquet").to_pylist()
        got = {r["user_id"]: (r["history_item_ids"], r["history_timestamps"], r["target_item_id"],
                              r["target_timestamp"]) for r in rows}
        assert got == expected
        # users in id order (u10 after u4, not after u1)
        assert [r["user_id"] for r in rows] == sorted(got, key=lambda u: int(u[1:]))


def test_rewrite_is_deterministic_and_tracks_splits(data, tmp_path):
    from pipelines.card import write_cards
    from pipelines.sequences import build_sequences
    from schemas.io import write_table
    import pyarrow as pa

    seq = data / "pixel200k" / "sequences" / "test.parquet"
    before = {p.name: p.read_bytes() for p in (data / "pixel200k" / "sequences").iterdir()}
    card = (data / "README.md").read_text()
    mtime = seq.stat().st_mtime_ns
    build_sequences(data / "pixel200k")
    write_cards(data)
    assert seq.stat().st_mtime_ns == mtime  # unchanged splits: sequences kept
    assert (data / "README.md").read_text() == card
    # the same release elsewhere gives byte-identical derived files
    other = tmp_path / "copy"
    build_sequences(make_release(other, "pixel200k"))
    write_cards(other)
    assert {p.name: p.read_bytes() for p in (other / "pixel200k" / "sequences").iterdir()} == before
    # a changed split is noticed
    split = other / "pixel200k" / "splits" / "test.parquet"
    table = pq.read_table(split).slice(1)
    write_table(pa.table(table), split, "split")
    build_sequences(other / "pixel200k")
    write_cards(other)
    assert pq.ParquetFile(other / "pixel200k" / "sequences" / "test.parquet").metadata.num_rows == \
        table.num_rows


def test_default_is_smallest_without_pixel200k(tmp_path):
    from pipelines.card import write_cards
    from schemas.io import write_table
    import pyarrow as pa

    make_release(tmp_path, "big", covers=False)
    small = make_release(tmp_path, "small", covers=False)
    train = small / "splits" / "train.parquet"
    write_table(pa.table(pq.read_table(train).slice(0, 3)), train, "split")
    (tmp_path / "notes").mkdir()  # not a release: ignored
    write_cards(tmp_path)
    header, _ = _header(tmp_path / "README.md")
    assert [c["config_name"] for c in header["configs"] if c.get("default")] == ["small"]
    assert datasets.load_dataset(str(tmp_path), cache_dir=str(tmp_path / "cache"))["train"].num_rows == 3


def test_release_call_refreshes_our_root_card_only(tmp_path):
    from pipelines.card import write_cards

    rel = make_release(tmp_path / "ours", "pixel200k", covers=False)
    assert [p.name for p in write_cards(rel)] == ["README.md"]  # no root card yet: not created
    assert not (tmp_path / "ours" / "README.md").exists()
    write_cards(tmp_path / "ours")
    second = make_release(tmp_path / "ours", "pixel1m", covers=False)
    assert len(write_cards(second)) == 2  # the root card is ours: refreshed with the new release
    header, _ = _header(tmp_path / "ours" / "README.md")
    assert "pixel1m" in [c["config_name"] for c in header["configs"]]
    foreign = make_release(tmp_path / "theirs", "x", covers=False)
    (tmp_path / "theirs" / "README.md").write_text("someone else's notes\n")
    write_cards(foreign)
    assert (tmp_path / "theirs" / "README.md").read_text() == "someone else's notes\n"


def test_card_headers_are_the_same_text_whichever_emitter_writes_them(data):
    """Cards are written with libyaml's emitter where PyYAML has it, and with PyYAML's own where
    not: the text must not depend on which one a machine has."""
    if not hasattr(yaml, "CSafeDumper"):
        pytest.skip("PyYAML without libyaml: only one emitter here")
    headers = [_header(path)[0] for path in (data / "README.md", data / "pixel200k" / "README.md")]
    headers.append({"pretty_name": "PixelRec 像素 ✓", "license_note": "long text " * 30,
                    "list": [{"name": "a: b", "value": None}, "'quoted'", "- dash", 1.5, True]})
    for header in headers:
        options = {"sort_keys": False, "allow_unicode": True, "width": 100}
        assert yaml.dump(header, Dumper=yaml.CSafeDumper, **options) == yaml.safe_dump(header, **options)
