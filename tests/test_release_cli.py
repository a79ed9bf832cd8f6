"""The release commands through the real `pixelrec` entry point: bad input, round trips, exports."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test_pipeline_build import KEY, T0, community, video, write_raw

ROOT = Path(__file__).resolve().parent.parent


def pixelrec(*args, cwd=None):
    env = {**os.environ, "PIXELREC_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "pixelrec_data.cli", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, env=env, timeout=120)


def assert_input_error(proc, *words):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def good_raw(root: Path, **changes) -> Path:
    """A valid raw/ folder, with `changes` applied to the first interactions shard's columns."""
    videos = [video(f"BV{i}", title=f"t{i}, \"quoted\"\nline") for i in range(8)]
    write_raw(root, videos, community(12, 8, 5))
    if changes:
        path = root / "interactions" / "part-00000.parquet"
        table = pq.read_table(path)
        for name, column in changes.items():
            table = table.drop_columns([name]) if column is None else table.set_column(
                table.schema.get_field_index(name), name, column(table))
        pq.write_table(table, path)
    return root


def bad_utf8_videos(root: Path) -> Path:
    good_raw(root)
    path = root / "videos" / "part-00000.parquet"
    table = pq.read_table(path)
    data, offsets = b"".join([b"\xff\xfe"] * table.num_rows), list(range(0, 2 * table.num_rows + 1, 2))
    bad = pa.Array.from_buffers(pa.string(), table.num_rows,
                                [None, pa.py_buffer(pa.array(offsets, pa.int32()).buffers()[1]), pa.py_buffer(data)])
    pq.write_table(table.set_column(table.schema.get_field_index("title"), "title", bad), path)
    return root


def renamed(root: Path) -> Path:
    good_raw(root)
    path = root / "interactions" / "part-00000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.rename_columns(["platform_video_id", "user", "timestamp", "source"]), path)
    return root


def empty_shard(root: Path) -> Path:
    good_raw(root)
    (root / "interactions" / "part-00001.parquet").write_bytes(b"")
    return root


def no_shards(root: Path) -> Path:
    good_raw(root)
    for path in (root / "interactions").iterdir():
        path.unlink()
    return root


BAD_RAW = {
    "missing folder": (lambda root: root, "raw folder not found"),
    "no shards": (no_shards, "no part-*.parquet"),
    "empty file": (empty_shard, "empty file"),
    "misnamed column": (renamed, "missing column 'user_key'"),
    "wrong type": (lambda root: good_raw(root, timestamp=lambda t: pa.array([str(v) for v in t["timestamp"].to_pylist()])),
                   "column 'timestamp' has type string"),
    "negative time": (lambda root: good_raw(root, timestamp=lambda t: pa.array([-5] * t.num_rows, pa.int64())),
                      "before 2000-01-01"),
    "future time": (lambda root: good_raw(root, timestamp=lambda t: pa.array([int(time.time()) + 10 * 86400] * t.num_rows, pa.int64())),
                    "in the future"),
    "bad source": (lambda root: good_raw(root, source=lambda t: pa.array(["like"] * t.num_rows)), "source"),
    "non-UTF-8": (bad_utf8_videos, "UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD_RAW))
def test_build_release_bad_raw_exits_2_without_output(tmp_path, case):
    make, words = BAD_RAW[case]
    raw = make(tmp_path / "raw")
    proc = pixelrec("build-release", "--raw", raw, "--out", tmp_path / "data", "--key-file", tmp_path / "key",
                    "--subset", "a=all")
    assert_input_error(proc, words)
    assert not (tmp_path / "data").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("subsets,words", [(["a=all", "b=50"], "only 12 users"), (["a=lots"], "SIZE"),
                                           (["a=5", "b=9"], "must not grow")])
def test_build_release_bad_subsets(tmp_path, subsets, words):
    raw = good_raw(tmp_path / "raw")
    args = [a for s in subsets for a in ("--subset", s)]
    proc = pixelrec("build-release", "--raw", raw, "--out", tmp_path / "data", "--key-file", tmp_path / "key", *args)
    assert_input_error(proc, words)
    assert not (tmp_path / "data").exists()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    raw = good_raw(base / "raw")
    (base / "key").write_bytes(KEY)
    proc = pixelrec("build-release", "--raw", raw, "--out", base / "data", "--key-file", base / "key",
                    "--seed", 4, "--subset", "all=all", "--subset", "six=6")
    assert proc.returncode == 0, proc.stderr
    assert "six: 6 users" in proc.stdout
    return base


def test_verify_stats_and_build_splits_on_a_built_release(built):
    release = built / "data" / "six"
    proc = pixelrec("verify", "--release", release)
    assert proc.returncode == 0 and "ok" in proc.stdout
    before = (release / "splits" / "test.parquet").read_bytes()
    (release / "splits" / "test.parquet").unlink()
    proc = pixelrec("build-splits", "--release", release)
    assert proc.returncode == 0 and "test 6 rows" in proc.stdout
    assert (release / "splits" / "test.parquet").read_bytes() == before
    proc = pixelrec("stats", "--release", release)
    assert proc.returncode == 0 and "#users" in proc.stdout and "30" in proc.stdout
    assert pixelrec("verify", "--release", release).returncode == 0
    with open(release / "items.parquet", "ab") as handle:
        handle.write(b"tampered")
    assert_input_error(pixelrec("verify", "--release", release), "items.parquet")


def write_csv(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_import_official_round_trip_and_recbole(built, tmp_path):
    release = built / "data" / "all"
    assert pixelrec("export", "--release", release, "--format", "pixelrec-csv", "--out", tmp_path / "csv").returncode == 0
    proc = pixelrec("import-official", "--interactions", tmp_path / "csv" / "all.csv",
                    "--items", tmp_path / "csv" / "all_items.csv", "--out", tmp_path / "imported")
    assert proc.returncode == 0, proc.stderr
    for name, columns in (("interactions", ["item_id", "user_id", "timestamp"]),
                          ("items", ["item_id", "view_number", "title", "tag", "description"])):
        original = pq.read_table(release / f"{name}.parquet", columns=columns)
        again = pq.read_table(tmp_path / "imported" / f"{name}.parquet", columns=columns)
        assert original.equals(again), name
    assert "\n" in pq.read_table(tmp_path / "imported" / "items.parquet")["title"][0].as_py()
    for split in ("train", "validation", "test"):
        assert pq.read_table(release / "splits" / f"{split}.parquet").equals(
            pq.read_table(tmp_path / "imported" / "splits" / f"{split}.parquet"))
    assert pixelrec("verify", "--release", tmp_path / "imported").returncode == 0
    assert pixelrec("export", "--release", tmp_path / "imported", "--format", "pixelrec-csv",
                    "--out", tmp_path / "csv2").returncode == 0
    assert (tmp_path / "csv2" / "imported.csv").read_bytes() == (tmp_path / "csv" / "all.csv").read_bytes()
    assert pixelrec("export", "--release", release, "--format", "recbole", "--out", tmp_path / "rb").returncode == 0
    train = (tmp_path / "rb" / "all" / "all.train.inter").read_text().splitlines()
    assert train[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert len(train) - 1 == pq.read_metadata(release / "splits" / "train.parquet").num_rows
    assert "benchmark_filename" in (tmp_path / "rb" / "all" / "all.yaml").read_text()
    assert all(len(line.split("\t")) == 11
               for line in (tmp_path / "rb" / "all" / "all.item").read_text().splitlines())


def test_import_official_old_files_missing_items_and_covers(tmp_path):
    inter = write_csv(tmp_path / "inter.csv", "item_id,user_id,timestamp\n" + "".join(
        f"i{i},u{u},{T0 + i}\n" for u in range(3) for i in range(5)))
    items = write_csv(tmp_path / "items.csv",
                      "item_id,view_number,comment_number,thumbup_number,share_number,coin_number,"
                      "favorite_number,barrage_number,title,tag\n" + "".join(
                          f'i{i},1,2,3,4,5,6,7,"a, ""b""\nc",t\n' for i in range(3)))
    covers = tmp_path / "covers"
    covers.mkdir()
    for name in ("i0.jpg", "i99.jpg", "evil.jpg", "i1.png"):
        (covers / name).write_bytes(b"jpg")
    (covers / "i2.jpg").symlink_to(tmp_path / "items.csv")
    proc = pixelrec("import-official", "--interactions", inter, "--items", items, "--covers", covers,
                    "--out", tmp_path / "rel")
    assert proc.returncode == 0, proc.stderr
    assert "2 items without item info" in proc.stdout and "i3, i4" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "rel" / "covers").iterdir()) == ["i0.jpg"]
    got = pq.read_table(tmp_path / "rel" / "items.parquet").to_pylist()
    assert [r["item_id"] for r in got] == ["i0", "i1", "i2", "i3", "i4"]
    assert got[0]["title"] == 'a, "b"\nc' and got[0]["description"] is None and got[4]["title"] is None
    manifest = json.loads((tmp_path / "rel" / "manifest.json").read_text())
    assert manifest["counts"]["items_missing_info"] == 2 and "covers/i0.jpg" in [f["path"] for f in manifest["files"]]


def test_import_official_keeps_title_en_where_the_official_file_has_it(tmp_path):
    inter = write_csv(tmp_path / "inter.csv", "item_id,user_id,timestamp\n" + "".join(
        f"i{i},u{u},{T0 + i}\n" for u in range(3) for i in range(4)))
    items = write_csv(tmp_path / "items.csv",  # Pixel200K's item_info.csv: title_en before title
                      "item_id,view_number,comment_number,thumbup_number,share_number,coin_number,"
                      "favorite_number,barrage_number,title_en,title,description,tag\n" + "".join(
                          f'i{i},1,2,3,4,5,6,7,"English, {i}",标题 {i},d,t\n' for i in range(3)))
    proc = pixelrec("import-official", "--interactions", inter, "--items", items, "--out", tmp_path / "rel")
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(tmp_path / "rel" / "items.parquet")
    assert table.column_names.index("title_en") == table.column_names.index("title") - 1
    assert table.column("title_en").to_pylist() == ["English, 0", "English, 1", "English, 2", None]
    assert table.column("title").to_pylist() == ["标题 0", "标题 1", "标题 2", None]
    assert pixelrec("verify", "--release", tmp_path / "rel").returncode == 0


GOOD_ITEMS = ("item_id,view_number,comment_number,thumbup_number,share_number,coin_number,"
              "favorite_number,barrage_number,title,tag,description\ni1,1,1,1,1,1,1,1,t,g,d\n")
BAD_OFFICIAL = {
    "missing column": ("item_id,user,timestamp\ni1,u1,1600000000\n", GOOD_ITEMS, "missing column 'user_id'"),
    "bad user id": ("item_id,user_id,timestamp\ni1,user1,1600000000\n", GOOD_ITEMS, "bad id"),
    "traversal id": ("item_id,user_id,timestamp\ni1,u1,1600000000\n",
                     GOOD_ITEMS.replace("\ni1,", "\n../i1,"), "bad item_id"),
    "text timestamp": ("item_id,user_id,timestamp\ni1,u1,yesterday\n", GOOD_ITEMS, "expected an integer"),
    "old timestamp": ("item_id,user_id,timestamp\ni1,u1,12\n", GOOD_ITEMS, "before 2000-01-01"),
    "empty file": ("", GOOD_ITEMS, "empty file"),
    "header only": ("item_id,user_id,timestamp\n", GOOD_ITEMS, "no data rows"),
    "non-UTF-8": ("item_id,user_id,timestamp\ni1,u1,1600000000\n",
                  GOOD_ITEMS.encode().replace(b",t,g,", b",\xff\xfe,g,"), "UTF-8"),
    "bad count": ("item_id,user_id,timestamp\ni1,u1,1600000000\n", GOOD_ITEMS.replace("i1,1,", "i1,many,"),
                  "column 'view_number'"),
}


@pytest.mark.parametrize("case", list(BAD_OFFICIAL))
def test_import_official_bad_input(tmp_path, case):
    inter_text, items_text, words = BAD_OFFICIAL[case]
    proc = pixelrec("import-official", "--interactions", write_csv(tmp_path / "i.csv", inter_text),
                    "--items", write_csv(tmp_path / "items.csv", items_text), "--out", tmp_path / "out" / "rel")
    assert_input_error(proc, words)
    assert not (tmp_path / "out" / "rel").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_commands_on_missing_release_folder(tmp_path):
    for command in ("verify", "stats", "build-splits"):
        assert_input_error(pixelrec(command, "--release", tmp_path / "nope"), "not found")
    assert_input_error(pixelrec("export", "--release", tmp_path / "nope", "--format", "recbole",
                                "--out", tmp_path / "x"), "not found")


def test_build_release_refuses_a_key_file_inside_the_output(tmp_path):
    raw = good_raw(tmp_path / "raw")
    proc = pixelrec("build-release", "--raw", raw, "--out", tmp_path / "data", "--key-file",
                    tmp_path / "data" / "key")
    assert_input_error(proc, "must live outside")
    assert not (tmp_path / "data").exists()
