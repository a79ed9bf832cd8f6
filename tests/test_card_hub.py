"""The dataset card as a hub user meets it: conventions in the header, the Loading snippets run as
written, the publisher's terms on official releases, and pack-covers' image config (PIL images
through plain `datasets`)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_loader_helpers import CORRUPT_COVER, ITEMS, MISSING_COVER, make_release

datasets = pytest.importorskip("datasets")
ROOT = Path(__file__).resolve().parent.parent
HUB_KEYS = ("license", "license_name", "license_link", "task_categories", "pretty_name",
            "size_categories", "configs", "dataset_info")


def header_and_body(path: Path):
    _, header, body = path.read_text(encoding="utf-8").split("---", 2)
    return yaml.safe_load(header), body


def python_blocks(body: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from pipelines.card import write_cards
    from pipelines.sequences import build_sequences

    root = tmp_path_factory.mktemp("hub") / "data"
    build_sequences(make_release(root, "pixel200k"))  # cards only describe: sequences come first
    write_cards(root)
    return root


def run_snippets(folder: Path, body: str, tmp_path: Path) -> str:
    code = "\n".join(python_blocks(body)) + "\nprint('ROWS', ds['train'].num_rows, len(items))\n"
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("where", ["root", "release"])
def test_card_snippets_run_as_written(data, tmp_path, where):
    folder = data if where == "root" else data / "pixel200k"
    header, body = header_and_body(folder / "README.md")
    assert len(python_blocks(body)) == 2
    out = run_snippets(folder, body, tmp_path)
    assert re.search(r"ROWS \d+ \d+", out), out


def test_header_follows_hub_conventions(data):
    for card in (data / "README.md", data / "pixel200k" / "README.md"):
        header, body = header_and_body(card)
        for key in HUB_KEYS:
            assert header.get(key), f"{card}: {key} missing"
        assert header["license"] == "other" and "image-feature-extraction" not in header["task_categories"]
        assert "recommendation" in header["tags"]
        assert "## License" in body and "## Citation" in body and "@article" in body
    assert header_and_body(data / "pixel200k" / "README.md")[0]["pretty_name"] == "PixelRec pixel200k"


def test_official_release_carries_the_publishers_terms(tmp_path):
    from pipelines.card import licence, write_release_card

    release = make_release(tmp_path, "pixel200k", covers=False)
    (release / "manifest.json").write_text(json.dumps({"name": "pixel200k", "build": {"source": "official"}}))
    write_release_card(release)
    header, body = header_and_body(release / "README.md")
    terms = licence(True)
    assert header["license_name"] == terms["name"] and header["license_link"] == terms["link"]
    assert terms["note"] in body and terms["citation"] in body
    try:
        from schemas import official_sources
    except ImportError:
        return
    assert terms["note"] == official_sources.PUBLISHER_LICENSE_NOTE


def test_pack_covers_gives_pil_images_through_plain_datasets(tmp_path):
    from PIL import Image

    from pipelines.card import write_cards
    from pixelrec_data.covers.store import complete_shards

    root = tmp_path / "data"
    release = make_release(root, "pixel200k")
    write_cards(root)  # the root card is ours: pack-covers refreshes it too
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "pack-covers", "--release",
                           str(release), "--shard-mb", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIXELREC_QUIET": "1"})
    assert proc.returncode == 0, proc.stderr
    assert complete_shards(release, "parquet")
    items = datasets.load_dataset(str(release), "pixel200k_items", split="train",
                                  cache_dir=str(tmp_path / "cache"))
    assert items.num_rows == len(ITEMS) and isinstance(items.features["image"], datasets.Image)
    by_id = {row["item_id"]: row["image"] for row in items}
    assert by_id[f"i{MISSING_COVER}"] is None and by_id[f"i{CORRUPT_COVER}"] is None
    good = [i for i in ITEMS if i not in (MISSING_COVER, CORRUPT_COVER)]
    image = by_id[f"i{good[0]}"]
    assert isinstance(image, Image.Image) and image.size == (64 + good[0], 40 + 2 * good[0])
    root_items = datasets.load_dataset(str(root), "pixel200k_items", split="train",
                                       cache_dir=str(tmp_path / "cache2"))
    assert root_items.num_rows == len(ITEMS)


def test_pack_covers_many_shards_and_no_covers(tmp_path):
    from pixelrec_data.covers.pack import pack
    from schemas.errors import InputError

    release = make_release(tmp_path, "pixel200k")
    summary = pack(release, tmp_path / "packed", shard_bytes=1)  # one cover per shard
    assert len(summary["shards"]) == summary["with_image"] + (summary["items"] > summary["with_image"])
    assert sum(s["rows"] for s in summary["shards"]) == len(ITEMS)
    bare = make_release(tmp_path / "b", "pixel1m", covers=False)
    with pytest.raises(InputError, match="no covers"):
        pack(bare, tmp_path / "packed-bare")


def test_pack_covers_lists_the_shards_in_the_manifest(tmp_path):
    from pipelines.manifest import read_manifest, verify_release, write_manifest

    release = make_release(tmp_path, "pixel200k")
    write_manifest(release, "pixel200k", {"source": "raw"}, {})
    proc = subprocess.run([sys.executable, "-m", "pixelrec_data.cli", "pack-covers", "--release",
                           str(release)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    listed = {f["path"] for f in read_manifest(release)["files"]}
    assert "cover_shards/items-00000.parquet" in listed and "cover_shards/_complete.json" in listed
    assert not [p for p in verify_release(release)["unlisted"] if p.startswith("cover_shards/")]
