"""`pixelrec download --features image,text`: the publisher's extracted vectors, fetched from the
host (or found in --from), mapped to the release's items and laid out as extract-features does."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from schemas.official_sources import IMAGE_FEATURES, TEXT_FEATURES
from test_official_download import (check_release, drive, hand_downloaded,  # noqa: F401
                                    published_as_synthetic, run, serve_pixel200k)

ITEMS = [f"i{n}" for n in range(9)]  # the synthetic release's items


def vector(item: str, width: int = 4) -> np.ndarray:
    return np.arange(width, dtype=np.float32) + 10 * int(item[1:])


def npz_keyed_shuffled() -> bytes:
    order = ITEMS[::-1] + ["i99"]  # another order, and an item the release does not have
    out = io.BytesIO()
    np.savez(out, item_id=np.array(order), features=np.stack([vector(i) for i in order]))
    return out.getvalue()


def csv_keyed() -> bytes:
    rows = ["item_id,a,b,c"] + [f"{i},{','.join(str(v) for v in vector(i, 3))}" for i in ITEMS[::-1]]
    return ("\n".join(rows) + "\n").encode()


def check_features(release, name: str, width: int):
    from pixelrec_data.baselines.models.vinet.features import aligned_features

    array = np.load(release / "features" / f"{name}.npy")
    index = pq.read_table(release / "features" / f"{name}.index.parquet").to_pydict()
    assert index["item_id"] == [None, *ITEMS] and array.shape == (len(ITEMS) + 1, width)
    assert not array[0].any()
    for row, item in enumerate(ITEMS, 1):
        assert np.array_equal(array[row], vector(item, width)), item
    # the trainer's lookup reads it by that name, as `--set features=NAME` makes it
    assert np.array_equal(aligned_features(release, name, ITEMS[::-1])[1], vector("i8", width))


def test_features_from_the_host_in_two_formats(drive, published_as_synthetic, tmp_path):
    serve_pixel200k(drive)
    drive.add_file(IMAGE_FEATURES.id, "image_features.npz", npz_keyed_shuffled())
    drive.add_file(TEXT_FEATURES.id, "text_features.csv", csv_keyed())
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--features", "image,text") == 0
    release = root / "pixel200k"
    check_release(release)
    check_features(release, "official_image", 4)
    check_features(release, "official_text", 3)
    # a rerun finds the release there and adds the features again from the finished downloads
    before = sum(drive.requests.values())
    assert run("--subset", "pixel200k", "--root", root, "--features", "image") == 0
    assert sum(drive.requests.values()) == before


def torch_file(obj) -> bytes:
    out = io.BytesIO()
    torch.save(obj, out)
    return out.getvalue()


@pytest.mark.parametrize("name, body", [
    ("image.npy", None),
    ("image.pt", None),
    ("image.pkl", pickle.dumps({i: vector(i) for i in ITEMS})),
])
def test_features_from_hand_downloaded_files(published_as_synthetic, tmp_path, name, body):
    source = hand_downloaded(tmp_path / "by-hand")
    path = source / name
    if name.endswith(".npy"):  # row order with the zero padding row first, as the publisher's
        np.save(path, np.stack([np.zeros(4, np.float32)] + [vector(i) for i in ITEMS]))
    elif name.endswith(".pt"):
        path.write_bytes(torch_file({"item_id": ITEMS, "features": torch.tensor(
            np.stack([vector(i) for i in ITEMS]))}))
    else:
        path.write_bytes(body)
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--from", source, "--features", "image") == 0
    check_features(root / "pixel200k", "official_image", 4)


class Gadget:
    pass


@pytest.mark.parametrize("name, make, message", [
    ("image.npy", lambda p: np.save(p, np.ones((5, 4), np.float32)),
     "5 rows without item ids, but the release has 9 items"),
    ("image.npz", lambda p: np.savez(p, item_id=np.array(ITEMS[:3]), features=np.ones((3, 4))),
     "no row for 6 of the release's 9 items"),
    ("image.pkl", lambda p: p.write_bytes(pickle.dumps({"i0": Gadget()})),
     "refused (only plain containers and numpy arrays"),
    ("image.npy", lambda p: np.save(p, np.array(["a", "b"])), "expected one numeric vector per item"),
])
def test_a_features_file_that_does_not_fit_is_one_line(published_as_synthetic, tmp_path, capsys,
                                                       name, make, message):
    source = hand_downloaded(tmp_path / "by-hand")
    make(source / name)
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--from", source, "--features", "image") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and name in err, err
    assert not (root / "pixel200k" / "features" / "official_image.npy").exists()


def test_unknown_feature_kind_is_one_line(tmp_path, capsys):
    assert run("--subset", "pixel200k", "--root", tmp_path, "--features", "audio") == 2
    assert "unknown kind 'audio'" in capsys.readouterr().err


def test_vbpr_and_visrank_train_on_the_publishers_vectors(published_as_synthetic, tmp_path):
    from pixelrec_data.cli import main

    source = hand_downloaded(tmp_path / "by-hand")
    np.save(source / "image.npy", np.random.default_rng(0).random((len(ITEMS), 8), np.float32))
    root = tmp_path / "data"
    assert run("--subset", "pixel200k", "--root", root, "--from", source, "--features", "image",
               "--no-covers") == 0
    for model, extra in (("vbpr", ["--set", "embedding_size=8"]), ("visrank", [])):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--release", str(root / "pixel200k"), "--model", model, "--epochs", "1",
                  "--set", "features=official_image", *extra, "--out", str(tmp_path / "runs")])
        assert exit_info.value.code == 0, model
    config = next((tmp_path / "runs").glob("*vbpr*/config.yaml")).read_text()
    assert "the publisher's image vectors" in config
