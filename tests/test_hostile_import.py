"""import-official on inconsistent official files: one test per case, through the real command."""
from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from pipelines import csv_scan
from pipelines.official_checks import MAX_LINE_BYTES
from test_release_cli import GOOD_ITEMS, assert_input_error, pixelrec, write_csv

HEADER = "item_id,user_id,timestamp\n"
ITEMS2 = GOOD_ITEMS + "i2,1,1,1,1,1,1,1,t,g,d\n"


def run_import(tmp_path, inter_text, items_text=ITEMS2):
    out = tmp_path / "out" / "rel"
    proc = pixelrec("import-official", "--interactions", write_csv(tmp_path / "i.csv", inter_text),
                    "--items", write_csv(tmp_path / "items.csv", items_text), "--out", out)
    return proc, out


def assert_refused(tmp_path, proc, out, *words):
    assert_input_error(proc, *words)
    assert not out.exists()


def test_leading_zero_ids_that_collide_are_refused_naming_the_pair(tmp_path):
    proc, out = run_import(tmp_path, HEADER + "i1,u1,1600000000\ni1,u01,1600000001\n"
                                              "i2,u001,1600000002\n")
    assert_refused(tmp_path, proc, out, "'u001' and 'u1'", "canonical")


def test_a_leading_zero_without_a_twin_is_refused_too(tmp_path):
    proc, out = run_import(tmp_path, HEADER + "i01,u1,1600000000\n")
    assert_refused(tmp_path, proc, out, "'i01'", "leading zero")


def test_a_24_digit_id_is_one_line_not_a_traceback(tmp_path):
    proc, out = run_import(tmp_path, HEADER + "i1,u" + "9" * 24 + ",1600000000\n")
    assert_refused(tmp_path, proc, out, "24 digits")


def test_a_fractional_timestamp_is_refused_not_rounded(tmp_path):
    proc, out = run_import(tmp_path, HEADER + "i1,u1,1600000000\ni2,u1,1600000599.5\n")
    assert_refused(tmp_path, proc, out, "'1600000599.5'", "integer")


def test_duplicate_pairs_keep_the_earliest_and_are_counted(tmp_path):
    proc, out = run_import(tmp_path, HEADER + "i1,u1,1600000300\ni1,u1,1600000000\n"
                                              "i2,u1,1600000100\ni1,u1,1600000200\n"
                                              "i2,u2,1600000000\ni1,u2,1600000050\n")
    assert proc.returncode == 0, proc.stderr
    assert "2 rows repeated a (user, item) pair" in proc.stdout
    rows = pq.read_table(out / "interactions.parquet").to_pylist()
    assert [(r["user_id"], r["item_id"], r["timestamp"]) for r in rows] == [
        ("u1", "i1", 1600000000), ("u1", "i2", 1600000100),
        ("u2", "i2", 1600000000), ("u2", "i1", 1600000050)]
    assert json.loads((out / "manifest.json").read_text())["counts"]["duplicates_dropped"] == 2


def test_a_10_mb_title_names_the_file_the_line_and_the_reason(tmp_path):
    items = GOOD_ITEMS + 'i2,1,1,1,1,1,1,1,"' + "x" * (10 << 20) + '",g,d\n'
    proc, out = run_import(tmp_path, HEADER + "i1,u1,1600000000\n", items)
    assert_input_error(proc, "items.csv", "line ", "longer than")
    assert not out.exists()


def test_an_oversize_row_is_named_by_its_own_line_not_line_1(tmp_path):
    # line 3 holds a quoted newline, so the oversize row (the 4th row) starts on line 6
    rows = ['i2,1,1,1,1,1,1,1,"two\nlines",g,d\n', "i3,1,1,1,1,1,1,1,t,g,d\n",
            'i4,1,1,1,1,1,1,1,"' + "x" * (MAX_LINE_BYTES + 10) + '",g,d\n', "i5,1,1,1,1,1,1,1,t,g,d\n"]
    proc, out = run_import(tmp_path, HEADER + "i1,u1,1600000000\n", GOOD_ITEMS + "".join(rows))
    assert_refused(tmp_path, proc, out, "items.csv: line 6:", "longer than")


def reference_oversize_line(text: str, limit: int) -> int | None:
    """The line where the first row over `limit` bytes starts, by Python's csv module."""
    reader, start = csv.reader(io.StringIO(text, newline="")), 1
    for row in reader:
        if len(",".join(f'"{v}"' if "\n" in v else v for v in row).encode()) > limit:
            return start
        start = reader.line_num + 1
    return None


@pytest.mark.parametrize("chunk", [3, 7, 64])
def test_the_oversize_row_scan_agrees_with_the_csv_module_across_chunk_edges(tmp_path, monkeypatch,
                                                                             chunk):
    monkeypatch.setattr(csv_scan, "_CHUNK_BYTES", chunk)
    rows = ["a,b", '"x\ny",2', "c," + "z" * 9, '"q\n\nr",' + "w" * 8, "d,e", "f," + "v" * 20]
    for first in range(len(rows)):
        text = "".join(row + "\n" for row in rows[first:])
        path = write_csv(tmp_path / "rows.csv", text)
        for limit in (3, 8, 11, 12, 15, 40):
            expected = reference_oversize_line(text, limit)
            assert csv_scan.oversize_row_line(path, limit) == expected, (first, limit, expected)
    assert csv_scan.oversize_row_line(write_csv(tmp_path / "tail.csv", "a\n" + "b" * 9), 8) == 2


@pytest.mark.parametrize("value, words", [
    ("1600000000000", ("'1600000000000'", "milliseconds (13 digits)", "unix seconds")),
    ("1600000000000000", ("microseconds (16 digits)",)),
    ("-1600000000", ("'-1600000000'", "negative timestamp")),
    ("99999999999999", ("14 digits", "at most 12")),
])
def test_integer_timestamps_that_are_not_seconds_say_what_is_wrong(tmp_path, value, words):
    proc, out = run_import(tmp_path, HEADER + f"i1,u1,1600000000\ni2,u1,{value}\n")
    assert_refused(tmp_path, proc, out, *words)
    assert "expected an integer" not in proc.stderr


@pytest.mark.parametrize("header", ["item_id,user_id,timestamp,user_id", "item_id,user_id,User_ID,timestamp"])
def test_a_column_named_twice_is_refused(tmp_path, header):
    proc, out = run_import(tmp_path, header + "\ni1,u1,1600000000,u2\n")
    assert_refused(tmp_path, proc, out, "i.csv", "column 'user_id' appears more than once")


def test_a_column_named_twice_in_the_item_info_is_refused(tmp_path):
    items = GOOD_ITEMS.replace(",description\n", ",title\n")
    proc, out = run_import(tmp_path, HEADER + "i1,u1,1600000000\n", items)
    assert_refused(tmp_path, proc, out, "items.csv", "column 'title' appears more than once")


def test_a_broken_csv_is_one_line_naming_the_file(tmp_path):
    proc, out = run_import(tmp_path, HEADER + 'i1,u1,1600000000\ni2,"u2,1600000001\ni3,x,y,z\n')
    assert_refused(tmp_path, proc, out, "i.csv")
    assert len(proc.stderr) < 400  # the dialect report of DuckDB is not passed on
