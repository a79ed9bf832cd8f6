"""export: spreadsheet-safe official CSVs (no formula-leading cells, no NUL bytes) and RecBole's
atomic-file layout (OUT/<name>/<name>.*, `field:type` headers, a yaml whose data_path finds them)."""
import csv
import io
import sys
import unicodedata
from pathlib import Path

import duckdb

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.export import export_release
from pipelines.spreadsheet import (FORMULA_CHARACTERS, IGNORED_PREFIX, looks_like_formula, safe_sql,
                                   spreadsheet_safe)
from schemas.tables import INTERACTIONS, ITEMS, SPLIT

HOSTILE = ['=HYPERLINK("http://x.test","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
           "\tTAB", "\rCR", "nul\x00inside", "plain, \"quoted\"\nnewline"]
# a cell a spreadsheet runs once it strips blanks and invisible prefixes or folds full-width forms
DISGUISED = ["  =1+1", "\ufeff=cmd", "\u200b=cmd", "\u200b \u2060@SUM(A1)", "＝1+1", "＋1", "－1", "＠x",
             "\u3000＝x", "\xa0-1", "\n=x", "﹦x", "⁺1", "\u202e=x", "\x00=x", "\x00 \t=x"]
# cells that must stay as they are
PLAIN = ["plain", "a=b", "x-1", "'=already", "1 = 1", "", " ", "\ufeffplain", "−1", "é=", "ok ＝"]
RECBOLE_TYPES = {"token", "token_seq", "float", "float_seq"}


@pytest.fixture
def release(tmp_path):
    folder = tmp_path / "tiny"
    n = len(HOSTILE)
    items = {f.name: pa.nulls(n, f.type) for f in ITEMS}
    items.update(item_id=pa.array([f"i{i}" for i in range(n)]), title=pa.array(HOSTILE),
                 tag=pa.array(["-tag"] * n), description=pa.array(["ok"] * n),
                 view_number=pa.array(list(range(n)), pa.int64()))
    folder.mkdir()
    pq.write_table(pa.table(items, schema=ITEMS), folder / "items.parquet")
    rows = [(f"i{i}", f"u{u}", 1_600_000_000 + 60 * i) for u in range(3) for i in range(u, u + 5)]
    inter = pa.table({"item_id": [r[0] for r in rows], "user_id": [r[1] for r in rows],
                      "timestamp": [r[2] for r in rows], "source": ["comment"] * len(rows)}, schema=INTERACTIONS)
    pq.write_table(inter, folder / "interactions.parquet")
    (folder / "splits").mkdir()
    for split, position in (("train", slice(0, 3)), ("validation", slice(3, 4)), ("test", slice(4, 5))):
        part = [r for u in range(3) for r in rows[u * 5:(u + 1) * 5][position]]
        pq.write_table(pa.table({"item_id": [r[0] for r in part], "user_id": [r[1] for r in part],
                                 "timestamp": [r[2] for r in part]}, schema=SPLIT),
                       folder / "splits" / f"{split}.parquet")
    return folder


def test_official_csv_escapes_formula_cells_and_drops_nul(release, tmp_path):
    files = export_release(release, "pixelrec-csv", tmp_path / "csv")
    assert [f.name for f in files] == ["tiny.csv", "tiny_items.csv"]
    raw = (tmp_path / "csv" / "tiny_items.csv").read_bytes()
    assert b"\x00" not in raw
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    for row, original in zip(rows, HOSTILE):
        assert row["title"] == spreadsheet_safe(original)
        assert not looks_like_formula(row["title"]), row["title"]
        assert row["tag"] == "'-tag" and row["description"] == "ok"
    assert rows[0]["title"] == "'" + HOSTILE[0] and rows[6]["title"] == "nulinside"
    assert rows[7]["title"] == HOSTILE[7]  # commas, quotes and newlines are plain CSV quoting
    assert [r["view_number"] for r in rows] == [str(i) for i in range(len(HOSTILE))]


def test_disguised_formulas_are_escaped_and_plain_text_is_not():
    for cell in HOSTILE[:6] + DISGUISED:
        safe = spreadsheet_safe(cell)
        assert safe == "'" + cell.replace("\x00", ""), ascii(cell)
    for cell in PLAIN + HOSTILE[6:]:
        assert spreadsheet_safe(cell) == cell.replace("\x00", ""), ascii(cell)
    assert spreadsheet_safe(None) is None


def test_the_sql_escape_agrees_with_the_python_one():
    cells = HOSTILE + DISGUISED + PLAIN + [c + "=x" for c in IGNORED_PREFIX] + [
        p + c + "1" for p in ("", " ", "\ufeff") for c in FORMULA_CHARACTERS] + [None]
    con = duckdb.connect()
    con.execute("CREATE TABLE cells (n INTEGER, title VARCHAR)")
    con.executemany("INSERT INTO cells VALUES (?, ?)", list(enumerate(cells)))
    got = [row[0] for row in con.execute(f"SELECT {safe_sql('title')} FROM cells ORDER BY n").fetchall()]
    wrong = [ascii(c) for c, g in zip(cells, got) if g != spreadsheet_safe(c)]
    assert not wrong, f"{len(wrong)} of {len(cells)} cells differ: {wrong[:10]}"
    assert sum(g != c for g, c in zip(got, cells)) > len(cells) // 2  # the rule did act


def test_every_compatibility_form_and_every_space_is_covered():
    folded = {chr(c) for c in range(sys.maxunicode + 1)
              if unicodedata.normalize("NFKC", chr(c)) in ("=", "+", "-", "@")}
    assert folded == set(FORMULA_CHARACTERS), sorted(map(ascii, folded ^ set(FORMULA_CHARACTERS)))
    spaces = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert not spaces - set(IGNORED_PREFIX), sorted(map(ascii, spaces - set(IGNORED_PREFIX)))
    assert {"\ufeff", "\u200b", "\u200c", "\u200d", "\u2060"} <= set(IGNORED_PREFIX)


def read_atomic(path: Path) -> pd.DataFrame:
    """Read an atomic file the way RecBole's Dataset._load_feat does: tab-separated, the header's
    `field:type` names, types among token / token_seq / float / float_seq."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, engine="python")
    for header in frame.columns:
        field, _, kind = header.partition(":")
        assert field and kind in RECBOLE_TYPES, header
    return frame


def test_recbole_layout_headers_and_yaml(release, tmp_path):
    out = tmp_path / "recbole"
    files = export_release(release, "recbole", out)
    folder = out / "tiny"
    assert sorted(f.name for f in folder.iterdir()) == sorted(f.name for f in files) == sorted(
        ["tiny.train.inter", "tiny.valid.inter", "tiny.test.inter", "tiny.item", "tiny.yaml"])
    config = yaml.safe_load((folder / "tiny.yaml").read_text())
    # RecBole reads <data_path>/<dataset>/<dataset>.<suffix>.inter for each benchmark suffix
    base = Path(config["data_path"]) / config["dataset"]
    for suffix, split in zip(config["benchmark_filename"], ("train", "validation", "test")):
        frame = read_atomic(base / f"{config['dataset']}.{suffix}.inter")
        assert list(frame.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
        assert len(frame) == pq.read_metadata(release / "splits" / f"{split}.parquet").num_rows
        assert [c.split(":")[0] for c in frame.columns] == config["load_col"]["inter"]
    items = read_atomic(base / "tiny.item")
    assert [c.split(":")[0] for c in items.columns] == config["load_col"]["item"]
    assert len(items) == len(HOSTILE)
    assert not any("\t" in t or "\n" in t or "\x00" in t for t in items["title:token_seq"])
    assert config["USER_ID_FIELD"] == "user_id" and config["field_separator"] == "\t"


def test_rerun_replaces_the_folder_whole(release, tmp_path):
    export_release(release, "recbole", tmp_path / "rb")
    (tmp_path / "rb" / "tiny" / "stale.inter").write_text("x")
    export_release(release, "recbole", tmp_path / "rb")
    assert not (tmp_path / "rb" / "tiny" / "stale.inter").exists()
